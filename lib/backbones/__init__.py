"""Pretrained backbones: the registry and each one's offline weights status, the MobileNetV2 port and
its torch-free checkpoint reader, and backbone features (cut points, extraction, the caches).

May import lib.common and lib.data.
"""
