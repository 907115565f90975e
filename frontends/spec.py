"""Declarative spec files: a model, its training set-up and its data in YAML or TOML.

``load_spec(path)`` reads the file, checks every key against what the Python
API accepts (layer constructors by ``inspect.signature``, the optimizer,
loss, regularizer and metric registries, the embedded data sets' options) and
returns the built, compiled ``Sequential`` and the normalised configuration.
The keys mirror the Python API (api.md, "Spec files"):

    model:   {input_shape: [64], dtype: float32, seed: 0, name: null,
              layers: [{type: Dense, units: 128, activation: relu}, {type: Dense, units: 10}]}
    compile: {loss: cross_entropy, optimizer: {type: Adam, lr: 0.001}, metrics: [accuracy],
              regularizer: {type: L2, l: 1.0e-4}}
    data:    {name: digits, standardize: true, validation_split: 0.1}
             (or your arrays: {name: npz, path: my_data.npz}, the path relative to the spec)
    fit:     {batch_size: 32, epochs: 30, early_stopping: 5, shuffle: true,
              class_weight: {0: 1.0, 1: 5.0}}   (TOML: class_weight = {"1" = 5.0})

Every mistake raises ``SpecError`` (a ``ValueError``) whose message reads like a
compiler's: ``digits.yaml:7: model.layers[1].units: expected an integer, got 'abc'``
-- the file, the line, the key path and what was expected. Reading the file and
finding each key's line is ``frontends.spec_source``'s job; this module checks.
"""

from __future__ import annotations

import inspect
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from frontends import datasets, losses, metrics, optimizers, regularizers, sample_weights
from frontends import layers as layer_registry
from frontends.config import suggest
from frontends.errors import UserInputError
from frontends.model import Model, Sequential
from frontends.spec_source import KeyPath, Source, SpecError, parse
from frontends.training import fit
from symgraph.graph import Site, at_site

try:
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

__all__ = ["DEFAULT_SPEC", "SpecError", "load_spec"]

#: The spec ``symgraph train`` runs by default: an MLP on the embedded digits data set.
DEFAULT_SPEC: Traversable = resources.files("frontends.datasets").joinpath("digits_mlp.yaml")


_SECTIONS = ("model", "compile", "data", "fit")
_DTYPES = ("float32", "float64", "int32", "int64")  # ints: token ids for Embedding


# --------------------------------------------------------------------------- checking


def _describe(value) -> str:
    """``'abc'`` -> ``'abc'``; a list -> ``a list``: what the user wrote, briefly."""
    if isinstance(value, (dict, list)):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        text = repr(value)
        return f"{kind} {text}" if len(text) <= 40 else kind
    return repr(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    """Validation helpers that raise ``SpecError`` at the right line."""

    def __init__(self, source: Source):
        self.source = source

    def fail(self, path: KeyPath, problem: str, key: bool = False) -> typing.NoReturn:
        # a graph error's "\n  at <Python line>" is the line that loaded the spec (the
        # symgraph script's, from the command line): the spec's own line replaces it
        raise self.source.error(path, problem.split("\n  at ")[0], key)

    def site(self, path: KeyPath, key: bool = False) -> Site | None:
        """``path``'s line as the site its graph nodes record (tooltips, printed graphs)."""
        line = self.source.line(path, key)
        return Site(self.source.file, line) if line is not None else None

    def mapping(self, value, path: KeyPath, what: str) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping ({what}), got {_describe(value)}")
        for key in value:
            if not isinstance(key, str):
                self.fail(path, f"keys must be strings, got {key!r}")
        return value

    def keys(self, mapping: dict, path: KeyPath, valid: Sequence[str], what: str) -> None:
        for key in mapping:
            if key not in valid:
                self.fail(path + (key,), f"unknown key {key!r} in {what}{suggest(key, valid)}; "
                          f"valid keys: {', '.join(valid)}", key=True)

    def required(self, mapping: dict, path: KeyPath, key: str, what: str) -> Any:
        if key not in mapping:
            self.fail(path, f"missing required key {key!r} in {what}", key=True)
        return mapping[key]

    def positive_int(self, value, path: KeyPath) -> int:
        if not (_is_int(value) and value > 0):
            self.fail(path, f"expected a positive integer, got {_describe(value)}")
        return value

    def non_negative_int(self, value, path: KeyPath) -> int:
        if not (_is_int(value) and value >= 0):
            self.fail(path, f"expected a non-negative integer, got {_describe(value)}")
        return value

    def boolean(self, value, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {_describe(value)}")
        return value

    def string(self, value, path: KeyPath) -> str:
        if not isinstance(value, str) or not value:
            self.fail(path, f"expected a non-empty string, got {_describe(value)}")
        return value

    def arguments(self, factory, args: dict, path: KeyPath, what: str) -> tuple[dict, dict]:
        """Check ``args`` against ``factory``'s signature: names, required ones, and basic
        types where annotated. Returns ``(call_args, cfg_args)``: the values to call with
        (tuples where a tuple is annotated) and to record (lists, as a file has them)."""
        params = inspect.signature(factory).parameters
        named = [n for n, p in params.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            for key in args:
                if key not in named:
                    self.fail(path + (key,), f"unknown argument {key!r} for {what}"
                              f"{suggest(key, named)}; valid: {', '.join(named) or '(none)'}",
                              key=True)
        missing = [n for n in named if params[n].default is inspect.Parameter.empty
                   and n not in args]
        if missing:
            self.fail(path, f"{what} needs {', '.join(map(repr, missing))} "
                      f"(missing required argument{'s' * (len(missing) > 1)})", key=True)
        try:  # the constructors use postponed annotations: resolve them in their module
            hints = typing.get_type_hints(getattr(factory, "__init__", factory))
        except Exception:  # noqa: BLE001 -- an unresolvable annotation is simply not checked
            hints = {}
        call_args, cfg_args = {}, {}
        for key, value in args.items():
            call_args[key], cfg_args[key] = value, value
            if key in hints:
                ok, converted = _conform(value, hints[key])
                if not ok:
                    self.fail(path + (key,), f"expected {_expected(hints[key])}, "
                              f"got {_describe(value)}")
                call_args[key] = converted
                if isinstance(converted, float):
                    cfg_args[key] = converted
        return call_args, cfg_args

    def construct(self, factory, call_args: dict, path: KeyPath, what: str):
        """``factory(**call_args)``; its ValueError/TypeError becomes a SpecError at the
        argument its message names (if exactly one), else at the entry itself."""
        try:
            return factory(**call_args)
        except (ValueError, TypeError) as err:
            message = str(err) if str(err).startswith(what) else f"{what}: {err}"
            self.fail(self.blame(err, call_args, path), message)

    def blame(self, err: Exception, args: Mapping, path: KeyPath) -> KeyPath:
        """The argument an error message is about: the only one it names, else the only
        one whose (string) value it quotes, else none (``path`` itself)."""
        message = str(err)
        named = [k for k in args if k != "type" and re.search(rf"\b{re.escape(k)}\b", message)]
        if len(named) != 1:
            named = [k for k, v in args.items()
                     if k != "type" and isinstance(v, str) and repr(v) in message]
        return path + (named[0],) if len(named) == 1 else path

    def blame_layer(self, err: Exception, layers: list, cfg_layers: list[dict]) -> KeyPath:
        """Where a model-building error belongs: the layer its message names (layers are
        named by then), else the one layer argument whose value it quotes."""
        message = str(err)
        # "layer <name>: ..." is about that layer, whichever others it names (where a
        # padding mask came from)
        at = [i for i, layer in enumerate(layers)
              if layer.name and message.startswith(f"layer {layer.name}: ")] or \
            [i for i, layer in enumerate(layers)
             if layer.name and re.search(rf"\b{re.escape(layer.name)}\b", message)]
        if len(at) == 1:
            return self.blame(err, cfg_layers[at[0]], ("model", "layers", at[0]))
        quoted = [("model", "layers", i, k) for i, args in enumerate(cfg_layers)
                  for k, v in args.items()
                  if k != "type" and isinstance(v, str) and repr(v) in message]
        return quoted[0] if len(quoted) == 1 else ("model",)


_SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}


def _conform(value, hint) -> tuple[bool, Any]:
    """``(ok, converted)``: does ``value`` (as read from a file) fit the annotation
    ``hint``? Annotations this does not understand (callables, classes) accept anything:
    the constructor itself then has the last word."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        if not all(_understood(a) for a in args):
            return True, value
        for arm in args:
            ok, converted = _conform(value, arm)
            if ok:
                return True, converted
        return False, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return _is_int(value), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if hint is type(None):
        return value is None, value
    if hint in (tuple, list) or origin in (tuple, list, Sequence):
        if not isinstance(value, (list, tuple)):
            return False, value
        if args and args[-1] is Ellipsis:
            args = (args[0],) * len(value)
        if args and len(args) != len(value):
            return False, value
        items = []
        for item, arm in zip(value, args or [typing.Any] * len(value)):
            ok, converted = _conform(item, arm)
            if not ok:
                return False, value
            items.append(converted)
        return True, tuple(items) if (hint is tuple or origin is tuple) else items
    return True, value


def _understood(hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return all(_understood(a) for a in typing.get_args(hint))
    return (hint in _SCALARS or hint in (tuple, list)
            or origin in (tuple, list, Sequence))


def _expected(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in args)
    if hint in _SCALARS:
        return _SCALARS[hint]
    if args:
        return f"a list of {_expected(args[0]).removeprefix('an ').removeprefix('a ')}s"
    return "a list"


# --------------------------------------------------------------------------- sections


def _check_model(check: _Checker, section) -> tuple[dict, list]:
    """The normalised ``model`` section and the constructed layers."""
    path = ("model",)
    section = check.mapping(section, path, "the model section")
    check.keys(section, path, ("input_shape", "dtype", "seed", "name", "layers"), "model")
    shape = check.required(section, path, "input_shape", "model")
    if _is_int(shape):  # "input_shape: 64" is shorthand for [64]
        shape = [shape]
    if not isinstance(shape, list) or not shape:
        check.fail(path + ("input_shape",), "expected a non-empty list of positive integers "
                   f"(one example's shape, without the batch), got {_describe(shape)}")
    shape = [check.positive_int(d, path + ("input_shape", i)) for i, d in enumerate(shape)]
    dtype = section.get("dtype", "float32")
    if dtype not in _DTYPES:
        check.fail(path + ("dtype",), f"expected one of {', '.join(_DTYPES)}, "
                   f"got {_describe(dtype)}")
    seed = check.non_negative_int(section.get("seed", 0), path + ("seed",))
    name = section.get("name")
    if name is not None:
        check.string(name, path + ("name",))
    entries = check.required(section, path, "layers", "model")
    if not isinstance(entries, list) or not entries:
        check.fail(path + ("layers",), f"expected a non-empty list of layers, "
                   f"got {_describe(entries)}")
    valid = sorted(layer_registry.LAYERS)
    built, cfg_layers = [], []
    for i, entry in enumerate(entries):
        at = path + ("layers", i)
        entry = check.mapping(entry, at, "a layer: {type: <class name>, <its arguments>}")
        kind = check.required(entry, at, "type", "a layer")
        if not isinstance(kind, str) or kind not in layer_registry.LAYERS:
            check.fail(at + ("type",), f"unknown layer type {_describe(kind)}"
                       f"{suggest(kind, valid) if isinstance(kind, str) else ''}; "
                       f"valid types: {', '.join(valid)}")
        cls = layer_registry.LAYERS[kind]
        args = {k: v for k, v in entry.items() if k != "type"}
        call_args, cfg_args = check.arguments(cls, args, at, kind)
        built.append(check.construct(cls, call_args, at, kind))
        built[-1].site = check.site(at)
        cfg_layers.append({"type": kind, **cfg_args})
    cfg = {"input_shape": shape, "dtype": dtype, "seed": seed, "name": name,
           "layers": cfg_layers}
    return cfg, built


def _component(check: _Checker, get, value, path: KeyPath, kind: str):
    """``get(value)`` from a registry (a name or ``{type: ..., <arguments>}``), its
    errors placed at the key they are about."""
    if isinstance(value, dict):
        check.mapping(value, path, f"a {kind}: {{type: <name>, <its arguments>}}")
        check.required(value, path, "type", f"a {kind}")
    elif not isinstance(value, str):
        check.fail(path, f"expected a {kind} name or {{type: <name>, <arguments>}}, "
                   f"got {_describe(value)}")
    try:
        return get(dict(value) if isinstance(value, dict) else value)
    except (ValueError, TypeError) as err:
        if isinstance(value, dict) and str(err).startswith(f"unknown {kind} "):
            check.fail(path + ("type",), str(err))
        check.fail(check.blame(err, value if isinstance(value, dict) else {}, path), str(err))


def _check_compile(check: _Checker, section) -> tuple[dict | None, dict | None]:
    """The normalised ``compile`` section and ``model.compile``'s arguments (``None`` if
    the file has no compile section)."""
    if section is None:
        return None, None
    path = ("compile",)
    keys = ("loss", "optimizer", "metrics", "weighted_metrics", "regularizer",
            "flush_denormals")
    section = check.mapping(section, path, "the compile section")
    check.keys(section, path, keys, "compile")
    section = {**_defaults(Model.compile, keys), **section}
    loss = section["loss"]
    _component(check, losses.get, loss, path + ("loss",), "loss")
    optimizer = _component(check, optimizers.get, section["optimizer"], path + ("optimizer",),
                           "optimizer")
    regularizer = section["regularizer"]
    if regularizer is not None:
        regularizer = _component(check, regularizers.get, regularizer,
                                 path + ("regularizer",), "regularizer")
    names, weighted = (_metric_list(check, section[key], path + (key,))
                       for key in ("metrics", "weighted_metrics"))
    flush = section["flush_denormals"]
    if not isinstance(flush, bool):
        check.fail(path + ("flush_denormals",), f"expected true or false, got "
                   f"{_describe(flush)}")
    cfg = {"loss": loss, "optimizer": section["optimizer"], "metrics": names,
           "regularizer": section["regularizer"], "flush_denormals": flush}
    args = {"loss": loss, "optimizer": optimizer, "regularizer": regularizer,
            "metrics": list(names), "flush_denormals": flush}
    if weighted:  # (a spec without them reads as before)
        cfg["weighted_metrics"], args["weighted_metrics"] = weighted, list(weighted)
    return cfg, args


def _metric_list(check: _Checker, names, path: KeyPath) -> list:
    names = [] if names is None else names
    if not isinstance(names, list):
        check.fail(path, f"expected a list of metric names, got {_describe(names)}")
    for i, metric in enumerate(names):
        _component(check, metrics.get, metric, path + (i,), "metric")
    return names


def _check_data(check: _Checker, section, base: Path | None, require_file: bool) -> dict:
    """The ``data`` section; an ``npz`` path is read relative to the spec's folder
    (``base``; None: the working directory) and must name a file (if ``require_file``)."""
    path = ("data",)
    section = check.mapping({} if section is None else section, path, "the data section")
    name = section.get("name", "digits")
    if not isinstance(name, str) or name not in datasets.DATASETS:
        check.fail(path + ("name",), f"unknown data set {_describe(name)}; available: "
                   f"{', '.join(datasets.DATASETS)}")
    valid = ["name", *inspect.signature(datasets.DATASETS[name]).parameters]
    check.keys(section, path, valid, f"data (for {name!r})")
    if name == "npz":
        file = check.string(check.required(section, path, "path", "data (for 'npz')"),
                            path + ("path",))
        found = Path(file).expanduser()
        if base is not None and not found.is_absolute():
            found = base / found
        if require_file and not found.is_file():
            check.fail(path + ("path",), f"no file {str(found)!r}")
        section = {**section, "path": str(found)}
    try:
        options = datasets.options(name, **{k: v for k, v in section.items() if k != "name"})
    except datasets.DatasetError as err:
        check.fail(path + ((err.key,) if err.key else ()), str(err))
    return {"name": name, **options}


_FIT_KEYS = ("batch_size", "epochs", "early_stopping", "shuffle", "class_weight")


def _defaults(function, keys: Sequence[str]) -> dict:
    """The defaults of ``function``'s arguments ``keys``: a spec that leaves a key out
    gets what the Python call would (one source of truth)."""
    params = inspect.signature(function).parameters
    return {key: params[key].default for key in keys}


def _check_fit(check: _Checker, section) -> dict:
    path = ("fit",)
    section = check.mapping({} if section is None else section, path, "the fit section")
    if "validation_split" in section:  # fit's own argument in Python; a data set's here
        check.fail(path + ("validation_split",), "validation_split belongs to the data "
                   "section here (data: {name: ..., validation_split: 0.1}): the spec's data "
                   "set is split once, when it is loaded", key=True)
    check.keys(section, path, _FIT_KEYS, "fit")
    cfg = {**_defaults(fit, _FIT_KEYS), **section}
    check.positive_int(cfg["batch_size"], path + ("batch_size",))
    check.positive_int(cfg["epochs"], path + ("epochs",))
    if cfg["early_stopping"] is False:  # "early_stopping: false" reads naturally as "off"
        cfg["early_stopping"] = None
    if cfg["early_stopping"] is not None and not (_is_int(cfg["early_stopping"])
                                                  and cfg["early_stopping"] >= 0):
        check.fail(path + ("early_stopping",), "expected an integer >= 0 (epochs without "
                   f"improvement) or false, got {_describe(cfg['early_stopping'])}")
    check.boolean(cfg["shuffle"], path + ("shuffle",))
    cfg["class_weight"] = _class_weight(check, cfg["class_weight"], path + ("class_weight",))
    return cfg


def _class_weight(check: _Checker, value, path: KeyPath) -> dict | None:
    """``{class: weight}``, the classes as ints (a TOML key is a string: ``"1"`` is class
    1), each weight a number >= 0; load_spec checks the classes against the model."""
    if value is None:
        return None
    if not isinstance(value, dict):
        check.fail(path, f"expected a mapping {{class: weight}}, got {_describe(value)}")
    table = {}
    for key, weight in value.items():
        label = int(key) if isinstance(key, str) and key.isdigit() else key
        if not _is_int(label):
            check.fail(path + (key,), f"a class is an integer label, got {key!r}", key=True)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or \
                not 0 <= weight < float("inf"):
            check.fail(path + (key,), f"expected a number >= 0, got {_describe(weight)}")
        table[int(label)] = float(weight)
    return table


# --------------------------------------------------------------------------- entry point


def data_error(path: str | os.PathLike | Traversable, err: Exception) -> SpecError:
    """``err``, raised while loading the data of the spec at ``path`` (a file that does not
    hold what its ``data`` section promises: no ``y``, NaN rows, ...), as a ``SpecError`` at
    the line of the option at fault (``err.key`` of a ``datasets.DatasetError``; else the
    ``data`` section), so it points into the spec as its other errors do."""
    _, source = parse(path)
    key = getattr(err, "key", None)
    problem = str(err)
    if key and problem.startswith(f"{key}: "):  # "path: cannot read ..." under data.path
        problem = problem[len(key) + 2:]
    return source.error(("data", key) if key else ("data",), problem)


def _folder(path) -> Path | None:
    """The folder of a spec file on disk (its data paths are relative to it), else None."""
    return Path(path).resolve().parent if isinstance(path, (str, os.PathLike)) else None


def load_spec(path: str | os.PathLike | Traversable, *, backend: str | None = None,
              require_data: bool = True):
    """Build the model a spec file describes: ``(model, cfg)``.

    ``model`` is a ``Sequential`` with the file's layers, compiled when the file
    has a ``compile`` section; ``cfg`` holds all four sections checked and with
    defaults filled (``compile`` is ``None`` if absent), for the caller to load
    the data (``datasets.load(**cfg["data"])``) and fit (``cfg["fit"]``).
    ``backend`` is passed to ``model.compile`` (``None``: symgraph's default).
    ``require_data=False`` accepts an ``npz`` path that names no file yet, for callers
    that build the model without training it (``symgraph info``, ``symgraph graph``).
    Raises ``SpecError`` naming the file, line and key of any mistake.

    >>> model, cfg = load_spec("examples/digits.yaml")
    >>> cfg["fit"]["batch_size"], model.layers[0].units
    (32, 128)
    """
    data, source = parse(path)
    check = _Checker(source)
    root = check.mapping(data, (), "a spec with sections " + ", ".join(_SECTIONS))
    check.keys(root, (), _SECTIONS, "the spec file")
    check.required(root, (), "model", "the spec file")
    model_cfg, layers = _check_model(check, root["model"])
    compile_cfg, compile_args = _check_compile(check, root.get("compile"))
    cfg = {"model": model_cfg, "compile": compile_cfg,
           "data": _check_data(check, root.get("data"), _folder(path), require_data),
           "fit": _check_fit(check, root.get("fit"))}
    if model_cfg["dtype"].startswith("int") and cfg["data"].get("standardize"):
        check.fail(("data", "standardize"), f"the model's input is {model_cfg['dtype']} (ids "
                   "for an Embedding?), and standardizing would make it floats; expected false")

    try:
        model = Sequential(layers, input_shape=tuple(model_cfg["input_shape"]),
                           dtype=model_cfg["dtype"], seed=model_cfg["seed"],
                           name=model_cfg["name"])
    except (ValueError, TypeError) as err:  # e.g. a layer that does not fit its input
        check.fail(check.blame_layer(err, layers, model_cfg["layers"]), str(err), key=True)
    if compile_args is not None:
        try:
            # the site of the loss, its gradients and the updates
            with at_site(check.site(("compile",), key=True)):
                model.compile(**compile_args, backend=backend)
        except (ValueError, TypeError) as err:
            check.fail(("compile",), str(err), key=True)
        if cfg["fit"]["class_weight"] is not None:
            try:  # its classes are the model's
                sample_weights.class_table(model, cfg["fit"]["class_weight"], "class_weight")
            except UserInputError as err:
                check.fail(("fit", "class_weight"), str(err).split(": ", 1)[1])
    return model, cfg
