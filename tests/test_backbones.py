"""Backbone registry and weights status, decided without the network; offline failures never reach the user."""

import hashlib

import pytest

from lib.backbones import registry as backbones
from lib.common.errors import BackboneError


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    backbones.weights_status.cache_clear()
    yield tmp_path / "models"
    backbones.weights_status.cache_clear()


def test_registry_has_the_seed_articles_backbones():
    assert {"mobilenet_v2", "resnet50", "vgg16", "inception_v3", "efficientnet_b0"} <= set(backbones.REGISTRY)
    assert backbones.get_spec("inception_v3").sizes()[0] >= 75


def test_status_comes_from_the_keras_cache_and_its_hash(keras_home):
    assert backbones.weights_status("mobilenet_v2") == backbones.BUNDLED
    assert backbones.weights_status("resnet50") == backbones.WILL_DOWNLOAD
    name, md5 = backbones.get_spec("resnet50").weight_file(224)
    keras_home.mkdir(parents=True)
    (keras_home / name).write_bytes(b"not the real weights")
    backbones.weights_status.cache_clear()
    assert hashlib.md5(b"not the real weights").hexdigest() != md5
    assert backbones.weights_status("resnet50") == backbones.WILL_DOWNLOAD  # a wrong file is not 'cached'
    # Keras checks no hash for MobileNetV2's files, so presence is what counts there
    tiny_name, tiny_hash = backbones.get_spec("mobilenet_v2_035").weight_file(96)
    assert tiny_hash is None
    (keras_home / tiny_name).write_bytes(b"x")
    backbones.weights_status.cache_clear()
    assert backbones.weights_status("mobilenet_v2_035", 96) == backbones.CACHED
    assert backbones.weights_status("mobilenet_v2_035", 64) == backbones.RANDOM  # Keras has no 64 px weights


def test_a_failed_download_falls_back_to_random_with_a_note(keras_home, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")  # what Keras raises offline: a bare Exception

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    monkeypatch.setattr(keras.src.applications.mobilenet_v2.file_utils, "get_file", offline)
    backbones.load_backbone.cache_clear()
    try:
        bb = backbones.load_backbone("mobilenet_v2_035", 96, "imagenet")
    finally:
        backbones.load_backbone.cache_clear()
    assert bb.weights.startswith("random")
    assert "could not be loaded" in bb.note and "weights fetch" in bb.note


def test_bad_requests_are_user_errors():
    with pytest.raises(BackboneError, match="unknown backbone 'alexnet'"):
        backbones.get_spec("alexnet")
    with pytest.raises(BackboneError, match="takes input sizes"):
        backbones.load_backbone("inception_v3", 32)
