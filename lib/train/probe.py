"""One head trained the plain-Keras way, on whichever Keras backend this process runs, and what it did.

Head Lab's own trainer runs on TensorFlow only. The pairing table's sentences speak of other backends
too, so they are measured with the code any Keras user writes — the head's `keras.Model`, `compile`,
`fit`, `predict` — which runs unchanged on TensorFlow and JAX. A `Probe` records everything a claim
about the pairing may need: the refusal, the warnings, the curves, what predict() returned before and
after, the pre-activation values, how far the weights moved and each image's loss as training computes it.

Run as a program it reads features (numpy, from the TensorFlow backbone) and writes probes as JSON, so a
test can measure a claim on another backend in a subprocess (`KERAS_BACKEND=jax`). It never imports
TensorFlow itself: on the JAX backend nothing here needs it.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from lib.heads.config import HeadConfig
from lib.heads.pairings import encode_targets


@dataclass(frozen=True)
class ProbeData:
    """Pooled features and targets of one task, split as the sample's card splits them."""

    task: str
    n_outputs: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass
class Probe:
    """What one run showed: plain Keras on any backend (`run_probe`), or Head Lab's trainer on TensorFlow
    (`lib.train.claims.probe_of_run`). Arrays are validation-set arrays; lists are per epoch."""

    backend: str
    versions: dict[str, str]
    config: dict
    seed: int
    epochs: int
    error: str = ""  # the first line of the exception Keras raised, "" when it trained
    warnings: list[str] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # training loss per epoch, as training reports it
    out_before: np.ndarray | None = None  # predict() before training
    out: np.ndarray | None = None  # predict() after training
    z: np.ndarray | None = None  # the output layer's pre-activation values after training
    z_before: np.ndarray | None = None
    sample_loss: np.ndarray | None = None  # each validation image's loss, as training computes it
    y_val: np.ndarray | None = None
    symptoms: list[str] = field(default_factory=list)  # Head Lab's diagnostics (runs of its own trainer only)

    def to_json(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, np.ndarray):
                d[k] = {"array": np.nan_to_num(v, nan=0.0).tolist(), "nan": np.isnan(v).tolist(),
                        "dtype": str(v.dtype)}
        return d

    @classmethod
    def from_json(cls, d: dict) -> Probe:
        d = dict(d)
        for k, v in d.items():
            if isinstance(v, dict) and "array" in v:
                a = np.asarray(v["array"], dtype=v["dtype"])
                if a.dtype.kind == "f":
                    a[np.asarray(v["nan"], bool)] = np.nan
                d[k] = a
        return cls(**d)


def versions() -> dict[str, str]:
    """Keras's version and its backend's, as the run used them."""
    import keras

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, backend)
    return {"keras": keras.__version__, backend: getattr(sys.modules.get(module), "__version__", "?")}


def run_probe(config: HeadConfig, data: ProbeData, *, epochs: int = 20, seed: int = 0, batch_size: int = 32,
              start: list[tuple[np.ndarray, np.ndarray]] | None = None) -> Probe:
    """Train one head on `data` with compile/fit/predict and record what happened; never raises for what
    Keras refuses (the refusal is the record's `error`). start: (kernel, bias) of each Dense layer to begin
    from (another backend's initializers draw other numbers from the same seed)."""
    import keras

    from lib.heads.build import build_head
    from lib.train.keras_objects import make_loss, make_optimizer

    keras.utils.set_random_seed(seed)
    probe = Probe(backend=keras.backend.backend(), versions=versions(), config=config.to_dict(), seed=seed,
                  epochs=epochs, y_val=np.asarray(data.y_val))
    y_tr = encode_targets(config, data.y_train, data.n_outputs)
    y_va = encode_targets(config, data.y_val, data.n_outputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model, out_layer, _ = build_head(config, data.x_train.shape[1:], data.n_outputs, data.y_train, seed,
                                             pooled=True)
            if start is not None:
                dense = [layer for layer in model.layers if hasattr(layer, "kernel")]
                for layer, (k, b) in zip(dense, start, strict=True):
                    layer.set_weights([np.asarray(k, np.float32), np.asarray(b, np.float32)])
            loss = make_loss(config)
            model.compile(optimizer=make_optimizer(config), loss=loss)
            # Outputs and losses by calling the model eagerly: fit() is the only compiled function, since on
            # any backend compiling (not arithmetic) is most of a small head's cost.
            probe.out_before, probe.z_before = _outputs(keras, model, out_layer, data.x_val)
            history = model.fit(data.x_train, y_tr, epochs=epochs, batch_size=batch_size, shuffle=False,
                                verbose=0).history
            probe.loss = [float(v) for v in history["loss"]]
            probe.out, probe.z = _outputs(keras, model, out_layer, data.x_val)
            # The loss as training applies it, image by image: the same loss object, reduction off, on the
            # model's own output tensor (on TensorFlow that tensor carries its pre-activation values).
            kwargs = {k: v for k, v in loss.get_config().items() if k not in ("name", "reduction", "dtype")}
            each = type(loss)(reduction=None, **kwargs)
            probe.sample_loss = keras.ops.convert_to_numpy(each(y_va, model(data.x_val, training=False))).reshape(-1)
        except Exception as e:  # what Keras refuses is the measurement
            probe.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    probe.warnings = sorted({str(w.message).splitlines()[0] for w in caught})
    return probe


def _outputs(keras, model, out_layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """predict()'s values (the model called eagerly) and the output layer's pre-activation values."""
    out = keras.ops.convert_to_numpy(model(x, training=False))
    hidden = keras.ops.convert_to_numpy(keras.Model(model.input, out_layer.input)(x, training=False))
    z = hidden @ keras.ops.convert_to_numpy(out_layer.kernel) + keras.ops.convert_to_numpy(out_layer.bias)
    return out, z


def probe_data(path: str) -> dict[str, ProbeData]:
    """The datasets a features file holds (written by `save_probe_data`), by name."""
    with np.load(path) as f:
        names = sorted({k.split("::")[0] for k in f.files})
        return {n: ProbeData(task=str(f[f"{n}::task"]), n_outputs=int(f[f"{n}::n_outputs"]),
                             x_train=f[f"{n}::x_train"], y_train=f[f"{n}::y_train"],
                             x_val=f[f"{n}::x_val"], y_val=f[f"{n}::y_val"]) for n in names}


def save_probe_data(path: str, datasets: dict[str, ProbeData]) -> None:
    """Write datasets for a probe subprocess (one .npz, arrays under "<name>::<field>")."""
    arrays = {}
    for name, d in datasets.items():
        arrays.update({f"{name}::task": np.array(d.task), f"{name}::n_outputs": np.array(d.n_outputs),
                       f"{name}::x_train": d.x_train, f"{name}::y_train": d.y_train,
                       f"{name}::x_val": d.x_val, f"{name}::y_val": d.y_val})
    np.savez(path, **arrays)


def main(argv: list[str] | None = None) -> int:
    """`python -m lib.train.probe DATA.npz JOBS.json OUT.json`: each job is {dataset, config, epochs, seed,
    start} (start: the Dense layers' starting [kernel, bias], or absent)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data")
    parser.add_argument("jobs")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    datasets = probe_data(args.data)
    with open(args.jobs) as f:
        jobs = json.load(f)
    probes = [run_probe(HeadConfig.from_dict(j["config"]), datasets[j["dataset"]], epochs=j["epochs"],
                        seed=j["seed"], start=j.get("start")).to_json() for j in jobs]
    with open(args.out, "w") as f:
        json.dump(probes, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
