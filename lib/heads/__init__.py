"""Heads: `HeadConfig` and its parsing, **the** pairing table (a verdict for every combination),
building a head's Keras model, and "Show Keras code".

May import lib.common, lib.data and lib.backbones (code export carries the backbone's cut rule).
"""
