"""Model files: one ``.npz`` with the architecture as JSON and the weights as arrays.

Loaded with ``allow_pickle=False``: a model file can hold no code. The JSON
(``symgraph_model``) has the model class and config (layer configs, and for a
functional model which layer's output feeds which), the compile settings,
and the names and shapes of the weights, so a file that is not ours, is
truncated, or belongs to another architecture is refused with a message
naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

import symgraph as sg

FORMAT = "symgraph.model"
VERSION = 1
_KEY = "symgraph_model"


class ModelFileError(ValueError):
    """The file is not a symgraph model, is damaged, or does not fit the model."""


def save_model(model, path) -> None:
    path = os.fspath(path)
    header = {
        "format": FORMAT, "version": VERSION, "class": type(model).__name__,
        "config": model.get_config(),
        "weights": [[w.name, [int(d) for d in w.shape], w.dtype.name] for w in model.weights],
        "compile": _compile_config(model),
    }
    arrays = {f"weight_{i}": w.get_value() for i, w in enumerate(model.weights)}
    if model.compiled:
        for i, var in enumerate(model.optimizer.variables()):
            arrays[f"optimizer_{i}"] = var.get_value()
    for i, var in enumerate(v for layer in model.layers for v in layer.state):
        arrays[f"state_{i}"] = var.get_value()
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **{_KEY: np.array(json.dumps(header))}, **arrays)
    os.replace(tmp, path)  # a crash mid-write never leaves half a file under the name


def _compile_config(model) -> dict | None:
    if not model.compiled:
        return None
    return {
        "loss": model.loss.get_config(), "optimizer": model.optimizer.get_config(),
        "regularizer": None if model.regularizer is None else model.regularizer.get_config(),
        "metrics": [m.get_config() for m in model.metrics],
    }


def _read(path) -> tuple[dict, dict[str, np.ndarray]]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if _KEY not in data.files:
                raise ModelFileError(f"{path!r} is not a symgraph model file (no {_KEY!r} entry)")
            header = json.loads(str(data[_KEY]))
            arrays = {k: data[k] for k in data.files if k != _KEY}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as err:
        raise ModelFileError(f"{path!r} is not a readable symgraph model file (truncated or "
                             f"another format): {err}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is not a symgraph model file")
    if header.get("version") != VERSION:
        raise ModelFileError(f"{path!r} is model format version {header.get('version')}; this "
                             f"symgraph reads version {VERSION}")
    return header, arrays


def _assign_weights(model, header: dict, arrays: dict, path) -> None:
    weights = model.weights
    saved = header["weights"]
    if len(saved) != len(weights):
        raise ModelFileError(f"{os.fspath(path)!r} holds {len(saved)} weights, the model has "
                             f"{len(weights)}: another architecture")
    values = []
    for i, (var, (name, shape, _)) in enumerate(zip(weights, saved)):
        value = arrays.get(f"weight_{i}")
        if value is None or list(value.shape) != list(shape):
            raise ModelFileError(f"{os.fspath(path)!r} is damaged: weight {name} is missing or "
                                 "has the wrong shape")
        if tuple(shape) != tuple(var.shape):
            raise ModelFileError(f"{os.fspath(path)!r}: weight {name} has shape {tuple(shape)}, "
                                 f"the model's {var.name} {tuple(var.shape)}: another "
                                 "architecture")
        values.append(value)
    model.set_weights(values)
    state = [v for layer in model.layers for v in layer.state]
    for i, var in enumerate(state):
        if f"state_{i}" in arrays:
            var.set_value(arrays[f"state_{i}"])


def load_weights(model, path) -> None:
    header, arrays = _read(path)
    _assign_weights(model, header, arrays, path)


def load_model(path, compile: bool = True):
    """A model saved with ``model.save``: same architecture, weights and (when it was
    compiled and ``compile``) the same compile settings and optimizer state.

    >>> model = fe.load_model("digits.npz"); model.evaluate(Xt, yt)
    """
    from frontends import layers as layer_lib
    from frontends.model import Input, Model, Sequential

    header, arrays = _read(path)
    config = header["config"]
    try:
        if header["class"] == "Sequential":
            built = [layer_lib.get(c["type"])(**_args(c)) for c in config["layers"]]
            model = Sequential(built, input_shape=config["input_shape"], dtype=config["dtype"],
                               seed=config["seed"], name=config["name"])
        elif header["class"] == "Model":
            inputs = [Input(shape, dtype, name) for name, shape, dtype in config["inputs"]]
            made = [layer_lib.get(c["type"])(**_args(c)) for c in config["layers"]]
            values: list[sg.Variable] = []
            for layer_index, refs in config["calls"]:
                args = [inputs[k] if kind == "input" else values[k] for kind, k in refs]
                layer = made[layer_index]
                values.append(layer(args if getattr(layer, "merge", None) else args[0]))
            out = values[config["output"][1]] if config["output"][0] == "call" \
                else inputs[config["output"][1]]
            model = Model(inputs, out, seed=config["seed"], name=config["name"])
        else:
            raise ModelFileError(f"{os.fspath(path)!r}: unknown model class {header['class']!r}")
    except (KeyError, TypeError, IndexError) as err:
        raise ModelFileError(f"{os.fspath(path)!r} has a damaged architecture entry: "
                             f"{err!r}") from None
    _assign_weights(model, header, arrays, path)
    if compile and header.get("compile"):
        c = header["compile"]
        model.compile(loss=c["loss"], optimizer=c["optimizer"], regularizer=c["regularizer"],
                      metrics=c["metrics"])
        opt_vars = model.optimizer.variables()
        for i, var in enumerate(opt_vars):
            if f"optimizer_{i}" in arrays and arrays[f"optimizer_{i}"].shape == \
                    tuple(var.shape):
                var.set_value(arrays[f"optimizer_{i}"])
    return model


def _args(layer_config: dict) -> dict:
    return {k: v for k, v in layer_config.items() if k != "type"}


def functional_config(model) -> dict:
    """A functional model as layer configs plus who feeds whom; only graphs made of layer
    calls can be saved this way (raw symgraph ops between layers cannot)."""
    calls: list = []
    index_of_call: dict[int, int] = {}
    layer_index = {id(layer): i for i, layer in enumerate(model.layers)}

    def ref(var):
        if var in model.inputs:
            return ["input", model.inputs.index(var)]
        layer = getattr(var, "layer", None)
        if layer is None:
            raise NotImplementedError(
                f"model.save: the graph has symgraph ops between layers (at {var!r}, created "
                f"at {var.site}); such a model cannot be rebuilt from a file. Use layers for "
                "every step (fe.layers.Add for residuals), or rebuild it in code and use "
                "model.load_weights(path)")
        if var.id not in index_of_call:
            sources = var.layer_input if isinstance(var.layer_input, list) else [var.layer_input]
            refs = [ref(s) for s in sources]
            index_of_call[var.id] = len(calls)
            calls.append([layer_index[id(layer)], refs])
        return ["call", index_of_call[var.id]]

    output = ref(model.output)
    return {"name": model.name, "seed": model.seed,
            "inputs": [[x.name, [int(d) for d in x.shape[1:]], x.dtype.name]
                       for x in model.inputs],
            "layers": [layer.get_config() for layer in model.layers],
            "calls": calls, "output": output}
