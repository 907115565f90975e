"""The ``symgraph`` command line.

* ``symgraph train [SPEC] [--epochs N] [--out DIR] [--seed S] [--tensorboard DIR]`` —
  the main job: trains the model a spec file describes (default: an MLP on the
  embedded digits), shows progress, prints the test metrics, and with ``--out``
  writes the trained model, the history (JSON and CSV) and the learning curves
  (PNG, with the ``[plot]`` extra); ``--tensorboard`` logs the run for TensorBoard
  (``frontends.tensorboard``, the ``[tensorboard]`` extra).
* ``symgraph info [SPEC]`` — the model summary (layers, shapes, parameters,
  graph sizes); without a spec, versions of symgraph and its dependencies.
* ``symgraph graph SPEC -o FILE [--view ops|layers|kernels|profile]`` — the training graph drawn by
  ``sg.render`` (svg, png, pdf through Graphviz's ``dot``; .dot for the text).

A bad spec or a missing file, data that does not fit the model, an unusable
``--out``, ``--seed`` or ``-o``: each exits with status 2 and one line, no
traceback, and is found before training starts where it can be. Only the
frontends' own ``UserInputError`` is reported that way; any other exception is a
bug and keeps its traceback. Training that diverges (its loss NaN or inf) exits
with status 1 and one line; Ctrl-C with 130. Both still write ``--out``: the
model as ``fit`` left it and the history of the epochs completed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy
import sympy

import symgraph as sg
from frontends import datasets, layers
from frontends.callbacks import EarlyStopping
from frontends.errors import TrainingDiverged, UserInputError
from frontends.saving import folder_problem
from frontends.spec import DEFAULT_SPEC, SpecError, data_error, load_spec
from frontends.tensorboard import TensorBoard


class UsageError(Exception):
    """A mistake of the user's (bad spec, missing file): one line, exit status 2."""


def _versions() -> int:
    print(f"symgraph {sg.__version__}")
    print(f"python   {platform.python_version()} ({platform.machine()})")
    print(f"numpy    {numpy.__version__}")
    print(f"sympy    {sympy.__version__}")
    try:
        import llvmlite  # lazy: the numpy backend works without it; report, don't fail
        import llvmlite.binding as llvm
        llvm_version = ".".join(map(str, llvm.llvm_version_info))
        print(f"llvmlite {llvmlite.__version__} (LLVM {llvm_version})")
    except ImportError as err:  # the llvm backend needs it; the numpy reference does not
        print(f"llvmlite not importable: {err}")
    return 0


def _load(spec: str | None, backend: str | None = None, require_data: bool = True):
    path = DEFAULT_SPEC if spec is None else spec
    if spec is not None and not os.path.exists(spec):
        raise UsageError(f"no spec file {spec!r}")
    try:
        model, cfg = load_spec(path, backend=backend, require_data=require_data)
    except SpecError as err:
        raise UsageError(str(err)) from None
    return model, cfg, ("the default digits MLP" if spec is None else spec)


def _tensorboard(log_dir: str | None) -> list:
    """The TensorBoard callback for ``--tensorboard DIR`` (checked before any training)."""
    if log_dir is None:
        return []
    try:
        return [TensorBoard(log_dir)]
    except (ImportError, ValueError) as err:
        raise UsageError(f"--tensorboard: {err}") from None


def _check_out_dir(out: str | None) -> None:
    """``--out`` must be (or become) a writable directory: found out now, not after the
    training whose model it was to keep."""
    if out is None:
        return
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--out {out}: is a file, not a directory")
    problem = folder_problem(path)
    if problem:
        raise UsageError(f"--out {out}: {problem}")


def _check_output_file(output: str) -> None:
    """``-o FILE`` needs an existing directory to write into."""
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UsageError(f"-o {output}: no directory {folder}")


def _train(args) -> int:
    start = time.perf_counter()
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    _check_out_dir(args.out)
    callbacks = _tensorboard(args.tensorboard)
    model, cfg, label = _load(args.spec, args.backend)
    if cfg["compile"] is None:
        raise UsageError(f"{label}: the spec has no 'compile' section (loss, optimizer); "
                         "nothing to train")
    if args.seed is not None:
        model.seed = args.seed
        model.initialize(args.seed)
    try:
        return _fit_and_report(args, model, cfg, label, callbacks, start)
    except UserInputError as err:  # the data does not fit the model, or fit's arguments
        raise UsageError(f"{label}: {err}") from None


def _fit_and_report(args, model, cfg: dict, label, callbacks: list, start: float) -> int:
    """Train on the spec's data (all of it checked first), print the test metrics, write
    ``--out``."""
    fit = dict(cfg["fit"])
    if args.epochs is not None:
        fit["epochs"] = args.epochs
    data = _load_data(args.spec, cfg, label)
    (X, y), test = data.train, data.test
    _adapt(model, X)
    _check_data(model, data)
    print(f"symgraph train: {label}: {model.count_params():,} parameters, "
          f"{len(X)} training / {0 if data.validation is None else len(data.validation[0])} "
          f"validation / {len(test[0])} test examples "
          f"(compiled in {time.perf_counter() - start:.2f} s)", flush=True)
    # fit's early stopping, made here to tell which epoch's parameters it restored
    # (``is None``: the spec's "false" is None by now, and 0 is a patience, though 0 == False)
    stopping = None if fit["early_stopping"] is None else EarlyStopping(
        monitor="loss" if data.validation is None else "val_loss",
        patience=fit["early_stopping"], restore_best_weights=True)
    try:
        history = model.fit(X, y, batch_size=fit["batch_size"], epochs=fit["epochs"],
                            validation_data=data.validation, shuffle=fit["shuffle"],
                            class_weight=fit["class_weight"],
                            progress=not args.quiet, verbose=not args.quiet,
                            callbacks=callbacks + ([stopping] if stopping else []))
    except (KeyboardInterrupt, TrainingDiverged) as err:
        diverged = isinstance(err, TrainingDiverged)
        what = str(err) if diverged else "interrupted"
        # (before on_train_begin, as in fit's checks of the data, it has no best_weights)
        holds = (f"epoch {stopping.best_epoch + 1}'s parameters (early stopping's best)"
                 if getattr(stopping, "best_weights", None) is not None else
                 f"the parameters at the start of epoch {err.epoch + 1}"
                 if diverged and err.restored else
                 f"epoch {err.epoch + 1}'s diverged parameters" if diverged else
                 "the parameters of the last completed steps")
        print(f"symgraph train: {what}; the model holds {holds}", file=sys.stderr)
        if args.out:
            # (no History yet when Ctrl-C came during fit's checks of the data)
            _write(args.out, model, getattr(model, "history", None),
                   {"stopped": "diverged" if diverged else "interrupted", "spec": str(label),
                    "data": cfg["data"]})
        return 1 if diverged else 130
    results = model.evaluate(*test)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in results.items())
    epochs = len(history.epoch)
    restored = (f" (early stopping: epoch {stopping.best_epoch + 1}'s parameters restored)"
                if stopping is not None and stopping.best_weights is not None
                and stopping.best_epoch != history.epoch[-1] else "")
    print(f"test: {shown}   [{epochs} epochs{restored}, {time.perf_counter() - start:.1f} s]")
    if args.out:
        _write(args.out, model, history, {"test": results, "spec": str(label),
                                          "data": cfg["data"]})
        if cfg["data"].get("standardize"):  # the statistics live outside the model file
            print("(model.npz takes standardized inputs, as data.standardize gave it; for a "
                  "model file that takes raw inputs, make {type: Normalization} its first "
                  "layer and set standardize: false)")
    else:
        print("(--out DIR saves the model, the history and the learning curves)")
    for board in callbacks:
        print(f"TensorBoard logs in {board.run_dir} (view: tensorboard --logdir {board.log_dir})")
    return 0


def _check_data(model, data) -> None:
    """The data set against the model (shapes, dtypes, labels, NaN/inf), before training:
    ``fit`` checks its own arrays, but the test set is only used once training is over."""
    parts = [("training data", data.train), ("validation data", data.validation),
             ("test data", data.test)]
    for what, pair in parts:
        if pair is not None:
            model._check_finite(model._arrays(*pair, what), what)


def _adapt(model, X) -> None:
    """A first-layer Normalization without statistics takes the training inputs' (Keras's
    adapt before fit); one deeper in the model needs its mean and variance in the spec."""
    first = model.layers[0]
    if isinstance(first, layers.Normalization) and not first.adapted:
        first.adapt(X)


def _load_data(spec: str | None, cfg: dict, label: str):
    """The spec's data set; a file that does not hold what the spec's ``data`` section
    promises is a usage error at that section's line."""
    data_cfg = dict(cfg["data"])
    try:
        return datasets.load(data_cfg.pop("name"), **data_cfg)
    except ValueError as err:
        try:
            located = data_error(spec, err) if spec is not None else None
        except SpecError:  # the spec changed since it was read
            located = None
        raise UsageError(str(located or f"{label}: data: {err}")) from None


def _write(out: str, model, history, extra: dict | None = None) -> None:
    try:
        _write_files(out, model, history, extra)
    except OSError as err:  # checked before training; the disk can still fill up or vanish
        raise UsageError(f"--out {out}: {err.strerror or err}") from None


def _write_files(out: str, model, history, extra: dict | None) -> None:
    import json
    os.makedirs(out, exist_ok=True)
    model.save(os.path.join(out, "model.npz"))
    written = ["model.npz"]
    if history is not None:
        with open(os.path.join(out, "history.json"), "w") as fh:
            payload = json.loads(history.to_json())
            payload.update(extra or {})
            json.dump(payload, fh, indent=1)
        with open(os.path.join(out, "history.csv"), "w") as fh:
            fh.write(history.to_csv())
        written += ["history.json", "history.csv"]
        try:
            history.plot(os.path.join(out, "curves.png"))
            written.append("curves.png")
        except ImportError:
            print("(learning curves need matplotlib: pip install 'symgraph[plot]')")
    print(f"wrote {', '.join(written)} to {out}")


def _info(args) -> int:
    if args.spec is None:
        return _versions()
    model, cfg, _ = _load(args.spec, args.backend, require_data=False)
    model.summary()
    return 0


def _graph(args) -> int:
    compiled = args.view in ("kernels", "profile")
    # ops and layers draw the graph only (no native compile); kernels are the llvm program's
    backend = (args.backend or "llvm") if compiled else "numpy"
    if args.view == "kernels" and backend != "llvm":
        raise UsageError("--view kernels draws the llvm backend's fused kernels; "
                         "drop --backend numpy or use --view profile")
    _check_output_file(args.output)
    model, cfg, label = _load(args.spec, backend, require_data=args.view == "profile")
    if cfg["compile"] is None:
        raise UsageError(f"{label}: the spec has no 'compile' section: there is no training "
                         "graph to draw")
    f = model.train_function
    if args.view == "profile":
        rows = _profile_train_step(args.spec, model, cfg, label)
        print(sg.format_profile(rows, limit=8))
    try:
        max_nodes = "auto" if args.max_nodes is None else args.max_nodes
        written = sg.render(f, args.output, view=args.view, max_nodes=max_nodes,
                            timeout=args.timeout or None)
    except sg.GraphvizNotFound as err:
        raise UsageError(str(err).splitlines()[0] + f" (DOT text in {err.dot_path})") from None
    except sg.GraphvizTimeout as err:
        raise UsageError(str(err)) from None
    except ValueError as err:
        raise UsageError(str(err)) from None
    except OSError as err:
        raise UsageError(f"-o {args.output}: {err.strerror or err}") from None
    print(f"wrote {written}")
    return 0


def _profile_train_step(spec: str | None, model, cfg, label) -> list[dict]:
    """``f.profile`` of one training step on the spec's first minibatch (no parameter
    changes)."""
    X, y = _load_data(spec, cfg, label).train
    _adapt(model, X)
    batch = cfg["fit"]["batch_size"]
    try:
        return model.profile(X[:batch], y[:batch], n=200)
    except UserInputError as err:
        raise UsageError(f"{label}: {err}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="symgraph",
                                     description=__doc__.splitlines()[0].replace("``", ""))
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model from a spec file (default: the "
                                "digits MLP on the embedded data set)")
    train.add_argument("spec", nargs="?", help="a YAML or TOML spec file")
    train.add_argument("--epochs", type=int, help="override the spec's fit.epochs")
    train.add_argument("--out", help="directory for the model, history and learning curves")
    train.add_argument("--seed", type=int, help="override the model seed")
    train.add_argument("--backend", choices=("llvm", "numpy"), default=None)
    train.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    train.add_argument("--tensorboard", metavar="DIR", help="log scalars, the learning rate and "
                       "histograms for TensorBoard under DIR/<run> (needs symgraph[tensorboard])")
    info = commands.add_parser("info", help="model summary of a spec (versions without one)")
    info.add_argument("spec", nargs="?")
    info.add_argument("--backend", choices=("llvm", "numpy"), default="numpy")
    graph = commands.add_parser("graph", help="draw the training graph of a spec")
    graph.add_argument("spec")
    graph.add_argument("-o", "--output", required=True, help="FILE.svg|.png|.pdf|.dot")
    graph.add_argument("--view", default="ops", choices=("ops", "layers", "kernels", "profile"),
                       help="ops: every node; layers: one box per layer (forward | gradient); "
                       "kernels: the compiled step's fused kernels around the nodes they "
                       "compute; profile: kernels shaded by their share of a step's time")
    graph.add_argument("--backend", choices=("llvm", "numpy"), default=None,
                       help="for --view profile: whose step to time (default llvm)")
    graph.add_argument("--max-nodes", type=int, default=None,
                       help="elide nodes beyond this (default 400; --view layers: no limit)")
    graph.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                       help="stop Graphviz's layout after this long (0: no limit); "
                       "the DOT text is written instead")
    args = parser.parse_args(argv)
    if getattr(args, "epochs", None) is not None and args.epochs < 0:
        parser.error("--epochs must be >= 0")
    try:
        return {"train": _train, "info": _info, "graph": _graph}[args.command](args)
    except UsageError as err:
        print(f"symgraph {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
