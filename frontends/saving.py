"""Model files: one ``.npz`` with the architecture as JSON and the weights as arrays.

This module knows the file format only; building a model from the architecture it
holds is ``frontends.model.load_model``'s job (model -> saving, never the reverse).

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
import zlib

import numpy as np

import symgraph

FORMAT = "symgraph.model"
VERSION = 1
_KEY = "symgraph_model"


class ModelFileError(ValueError):
    """The file is not a symgraph model, is damaged, or does not fit the model."""


def folder_problem(folder: str) -> str | None:
    """Why files cannot be written in ``folder`` (made with its parents when missing), or
    None: its nearest existing ancestor must be a writable directory, not a file or a link
    to nothing.  ``symgraph train --out`` and ``ModelCheckpoint`` ask before training."""
    existing = os.path.abspath(folder)
    while not os.path.lexists(existing):  # (lexists: a dangling link is not "to be made")
        existing = os.path.dirname(existing)
    if os.path.islink(existing) and not os.path.exists(existing):
        return f"{existing} is a link to nothing"
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def save_model(model, path) -> None:
    path = os.fspath(path)
    # found before writing: the errors of the write itself name the temporary file
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save the model to {path!r}: no directory {folder}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save the model to {path!r}: it is a directory; "
                                "name a file in it (e.g. model.npz)")
    header = {
        "format": FORMAT, "version": VERSION, "written_by": symgraph.__version__,
        "class": type(model).__name__,
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
    try:
        np.savez_compressed(tmp, **{_KEY: np.array(json.dumps(header))}, **arrays)
        os.replace(tmp, path)  # a crash mid-write never leaves half a file under the name
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _compile_config(model) -> dict | None:
    if not model.compiled:
        return None
    schedule = model.optimizer.schedule
    return {
        # a host-side schedule's history (ReduceOnPlateau's best value and counters), so
        # a resumed fit reduces the rate when the uninterrupted one would
        "schedule_state": None if schedule is None else schedule.get_state(),
        "loss": model.loss.get_config(), "optimizer": model.optimizer.get_config(),
        "regularizer": None if model.regularizer is None else model.regularizer.get_config(),
        "metrics": [m.get_config() for m in model.metrics],
        # (only when there are some: a file without them reads as before)
        **({"weighted_metrics": [m.get_config() for m in model.weighted_metrics]}
           if getattr(model, "weighted_metrics", None) else {}),
        # the backend it ran on (None: symgraph's default), so a resumed fit is the same
        # arithmetic: llvm's fast-math sums differ from numpy's in the last bits
        "backend": model.backend,
        "flush_denormals": model.flush_denormals,
    }


def read_file(path) -> tuple[dict, dict[str, np.ndarray]]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file {path!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy: one array, not ours
            raise ModelFileError(f"{path!r} is not a symgraph model file (one array, not an "
                                 "archive)")
        with loaded as data:
            if _KEY not in data.files:
                raise ModelFileError(f"{path!r} is not a symgraph model file (no {_KEY!r} entry)")
            header = json.loads(str(data[_KEY]))
            arrays = {k: data[k] for k in data.files if k != _KEY}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError, ValueError,
            KeyError) as err:  # (damaged compressed data: zlib.error, NotImplementedError)
        raise ModelFileError(f"{path!r} is not a readable symgraph model file (truncated or "
                             f"another format): {err}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is not a symgraph model file")
    if header.get("version") != VERSION:
        raise ModelFileError(f"{path!r} is model format version {header.get('version')}; this "
                             f"symgraph reads version {VERSION}")
    _check_header(header, path)
    return header, arrays


def _check_header(header: dict, path: str) -> None:
    """The entries ``load_model`` reads, each of its type: a hand-edited or damaged header
    fails here, naming the file and the entry, not with a bare KeyError while loading."""
    def damaged(entry: str, wanted: str):
        return ModelFileError(f"{path!r} has a damaged header: {entry} should be {wanted}, "
                              f"got {header.get(entry, 'nothing')!r:.80}")
    if not isinstance(header.get("class"), str):
        raise damaged("class", "a model class name")
    if not isinstance(header.get("config"), dict):
        raise damaged("config", "a dict (the architecture)")
    weights = header.get("weights")
    if not isinstance(weights, list) or not all(
            isinstance(w, list) and len(w) == 3 and isinstance(w[0], str)
            and isinstance(w[1], list) and all(isinstance(d, int) for d in w[1])
            for w in weights):
        raise damaged("weights", "a list of [name, shape, dtype]")
    compiled = header.get("compile")
    if compiled is not None and not (isinstance(compiled, dict) and all(
            key in compiled for key in ("loss", "optimizer", "regularizer", "metrics"))):
        raise damaged("compile", "None or a dict with loss, optimizer, regularizer and metrics")


def _release(version: str) -> tuple[int, ...]:
    """``"0.10.2rc1"`` -> ``(0, 10, 2)``: the leading numbers, for ordering releases."""
    numbers = []
    for part in version.split("."):
        digits = len(part) - len(part.lstrip("0123456789"))
        if not digits:
            break
        numbers.append(int(part[:digits]))
    while numbers and numbers[-1] == 0:  # 1.0.0 is 1.0
        numbers.pop()
    return tuple(numbers)


def unreadable(path, header: dict, entry: str, err: Exception) -> ModelFileError:
    """The error for an ``entry`` (architecture, compile) that ``load_model`` could not
    build. A file from a newer symgraph most likely uses a layer, option or loss this one
    does not have: that, not "damaged", is what the user needs to hear."""
    writer = header.get("written_by")
    detail = repr(err) if entry == "architecture" else str(err)  # (a KeyError's str is 'x')
    if isinstance(writer, str) and _release(writer) > _release(symgraph.__version__):
        return ModelFileError(
            f"{os.fspath(path)!r} was written by symgraph {writer}, newer than this one "
            f"({symgraph.__version__}), and its {entry} entry uses something this version does "
            f"not know ({detail}): upgrade symgraph to load it")
    return ModelFileError(f"{os.fspath(path)!r} has a damaged {entry} entry: {detail}")


def assign_weights(model, header: dict, arrays: dict, path) -> None:
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
    header, arrays = read_file(path)
    assign_weights(model, header, arrays, path)
