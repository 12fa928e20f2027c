"""Training heads side by side on backbone features, and reading the runs: the trainer, what a Train
may cost, metrics from predict(), diagnostics, and the `model.fit` reference it is checked against.

May import lib.common, lib.data, lib.backbones and lib.heads.
"""
