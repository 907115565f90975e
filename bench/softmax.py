"""Row kernels on both cores (codegen/lower_rows.py): softmax, log_softmax, their gradients,
and sums along an axis, split against serial in one process.

Each graph is compiled twice -- with split row kernels (the default) and with
``SYMGRAPH_THREADS=1`` (the serial code) -- and timed in interleaved rounds (bench/parallel.py's
``rounds``: each round times every variant for ~``--seconds``, so they see the same machine);
a row prints the ratio split / serial (median and range over rounds) and, for softmax and
log_softmax, split / ``torch.softmax``/``torch.log_softmax`` (+ ``backward`` for the gradient
rows) in the same rounds, torch with its default threads. Sections:

* ``ops``: forward and forward + gradient at the shapes of the task (attention scores
  (32, 4, 128, 128) and (32, 4, 32, 32), classifier rows (128, 10), (4096, 1000)), float32 and
  float64, and sums: a bias gradient (4096, 512) -> (512,), row sums (4096, 512) -> (4096,);
* ``sweep``: softmax forward over (rows, 128) and (rows, 10) float32, split from any size
  (``SYMGRAPH_THREADS_MIN=1``) against serial: where the ratio crosses 1 is where
  :data:`codegen.lower_rows.SOFTMAX_SHARE` belongs;
* ``sums``: column and row sums likewise (:data:`codegen.lower_rows.SUM_FACTOR`);
* ``transformer``: bench/transformer.py's T = 128 step with row kernels split and serial.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/softmax.py [--rounds 7]
        [--only ops,sweep,sums,transformer] [--no-torch] [--budget 30]
        [--shapes 32x4x128x128,4096x1000] [--no-sums]

The numbers of 2026-12-04 (this 2-core AVX-512 VM) are in codegen/lower_rows.py's docstring.
Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from parallel import both, per_call, ratio_text  # noqa: E402
from timing import LoadMeter, TimingConfig, wait_quiet  # noqa: E402

import symgraph as sg  # noqa: E402

Call = Callable[[], object]


def softmax_graph(shape: tuple, dtype: str, log: bool, grad: bool) -> Callable[[], Call]:
    """A builder of ``f(x, g)`` -> softmax (or log_softmax) over the last axis, and with
    ``grad`` the gradient of ``sum(y * g)`` w.r.t. x; returns a call on fixed data."""
    rng = np.random.default_rng(0)
    xv = rng.standard_normal(shape).astype(dtype)
    gv = rng.standard_normal(shape).astype(dtype)

    def build() -> Call:
        x = sg.tensor("x", shape=shape, dtype=dtype)
        g = sg.tensor("g", shape=shape, dtype=dtype)
        y = (sg.nn.log_softmax if log else sg.nn.softmax)(x, axis=-1)
        outs = [y, sg.grad(sg.sum(y * g), [x])[0]] if grad else [y]
        f = sg.function([x, g], outs)
        call = lambda: f(xv, gv)  # noqa: E731
        call.f = f
        return call
    return build


def torch_call(shape: tuple, dtype: str, log: bool, grad: bool) -> Call | None:
    try:
        import torch  # lazy: a peer, not a dependency
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    xt = torch.from_numpy(rng.standard_normal(shape).astype(dtype))
    gt = torch.from_numpy(rng.standard_normal(shape).astype(dtype))
    fn = torch.log_softmax if log else torch.softmax
    if not grad:
        return lambda: fn(xt, -1)
    xg = xt.clone().requires_grad_(True)

    def step() -> None:
        xg.grad = None
        y = fn(xg, -1)
        y.backward(gt)
    return step


def sum_graph(shape: tuple, axis: int, dtype: str = "float32") -> Callable[[], Call]:
    xv = np.random.default_rng(0).standard_normal(shape).astype(dtype)

    def build() -> Call:
        x = sg.tensor("x", shape=shape, dtype=dtype)
        f = sg.function([x], sg.sum(x * 2, axis=axis))
        call = lambda: f(xv)  # noqa: E731
        call.f = f
        return call
    return build


def split_kernels(call: Call) -> int:
    """How many kernels of the compiled function behind ``call`` (its ``f``) are split."""
    return sum(bool(k.parallel) for k in call.f.kernels)


def clean_rounds(variants: dict[str, Call], args: argparse.Namespace) -> dict[str, list]:
    """Seconds per call of each variant in ``args.rounds`` interleaved rounds during which
    other processes used under 0.3 cores (a split call waits for OpenBLAS's worker, which a
    busy core runs only after another process's time slice: 8-12 ms instead of 0.1); the
    least loaded others fill up when ``args.budget`` seconds pass first.  ``"bg"``: load."""
    cfg = TimingConfig(quiet_wait_s=2.0)
    kept: list[tuple[float, dict[str, float]]] = []
    dirty: list[tuple[float, dict[str, float]]] = []
    for call in variants.values():
        call()
    end = time.perf_counter() + args.budget
    while len(kept) < args.rounds and time.perf_counter() < end:
        wait_quiet(cfg)
        with LoadMeter() as lm:
            times = {name: per_call(call, args.seconds) for name, call in variants.items()}
        (kept if lm.bg < 0.3 else dirty).append((lm.bg, times))
    kept += sorted(dirty, key=lambda r: r[0])[:max(0, args.rounds - len(kept))]
    out: dict[str, list] = {name: [t[name] for _, t in kept] for name in variants}
    out["bg"] = [bg for bg, _ in kept]
    return out


def compare(name: str, build: Callable[[], Call], peer: Call | None, args: argparse.Namespace,
            minimum: int | None = None) -> None:
    split, serial = both(build, minimum)
    # torch first: its OpenMP threads spin after it, which a serial call minds least
    variants = {} if peer is None else {"torch": peer}
    variants.update(serial=serial, split=split)
    r = clean_rounds(variants, args)
    line = (f"{name:<34} {statistics.median(r['serial']) * 1e6:>9.1f} "
            f"{statistics.median(r['split']) * 1e6:>9.1f} {split_kernels(split):>3}  "
            f"{ratio_text(r['split'], r['serial']):>19}")
    if peer is not None:
        line += f"  {ratio_text(r['split'], r['torch']):>19}"
    print(f"{line}  {statistics.median(r['bg']):.2f}", flush=True)


HEADER = (f"{'graph':<34} {'serial us':>9} {'split us':>9} {'k':>3}  {'split/serial':>19}  "
          f"{'split/torch':>19}  bg")


def section_ops(args: argparse.Namespace) -> None:
    print("\n== ops (k: kernels split; ratios: median [min..max] over rounds)")
    print(HEADER)
    for shape in (tuple(int(d) for d in text.split("x")) for text in args.shapes.split(",")):
        for dtype in ("float32", "float64"):
            for log in (False, True):
                for grad in (False, True):
                    name = (f"{'log_softmax' if log else 'softmax'}{'+grad' if grad else ''} "
                            f"{shape} {dtype[5:]}")
                    peer = None if args.no_torch else torch_call(shape, dtype, log, grad)
                    compare(name, softmax_graph(shape, dtype, log, grad), peer, args)
    for shape, axis in (((4096, 512), 0), ((4096, 512), 1), ((32 * 128, 256), 0),
                        ((64, 64, 32, 32), 0)) if args.sums else ():
        compare(f"sum{shape} axis {axis}", sum_graph(shape, axis), None, args)


def section_sweep(args: argparse.Namespace) -> None:
    print("\n== sweep: split from any size (SYMGRAPH_THREADS_MIN=1) / serial")
    print(HEADER)
    for n in (10, 128):
        for rows in (64, 128, 256, 512, 1024, 4096):
            compare(f"softmax ({rows}, {n}) 32 [{rows * n} el]",
                    softmax_graph((rows, n), "float32", False, False), None, args, minimum=1)


def section_sums(args: argparse.Namespace) -> None:
    print("\n== sums: split from any size (SYMGRAPH_THREADS_MIN=1) / serial")
    print(HEADER)
    for shape, axis in (((128, 512), 0), ((256, 512), 0), ((512, 512), 0), ((1024, 512), 0),
                        ((2048, 512), 0), ((4096, 64), 0), ((512, 128), 1), ((1024, 256), 1),
                        ((2048, 256), 1), ((4096, 256), 1)):
        elements = shape[0] * shape[1]
        compare(f"sum{shape} axis {axis} [{elements} el]", sum_graph(shape, axis), None, args,
                minimum=1)


def section_transformer(args: argparse.Namespace) -> None:
    """bench/transformer.py's step (T = 128, d = 64, 4 heads), compiled with row kernels split
    and with them serial (``lower_rows``' factors set to infinity: elementwise loops split in
    both), interleaved in one process."""
    import transformer  # lazy: imports torch and the model API

    from codegen import lower_rows

    print("\n== transformer step (bench/transformer.py, batch 32, T=128, d=64): row kernels "
          "split / serial")
    rng = np.random.default_rng(0)
    for causal in (False, True):
        X = rng.normal(size=(transformer.BATCH, 128, 64)).astype(np.float32)
        y = rng.integers(0, transformer.CLASSES, transformer.BATCH)
        steps = {}
        for name, factors in (("split", (lower_rows.SOFTMAX_FACTOR, lower_rows.SUM_FACTOR)),
                              ("serial", (float("inf"), float("inf")))):
            old = lower_rows.SOFTMAX_FACTOR, lower_rows.SUM_FACTOR
            lower_rows.SOFTMAX_FACTOR, lower_rows.SUM_FACTOR = factors
            try:
                model = transformer._ours(128, 64, 4, causal)
                model.compile(loss="cross_entropy", optimizer="adam")
                fn = model.train_function
                fn(X, y)
            finally:
                lower_rows.SOFTMAX_FACTOR, lower_rows.SUM_FACTOR = old
            steps[name] = (lambda fn=fn, X=X, y=y: fn(X, y))
            steps[name].f = fn
        split_rows = sum(bool(k.parallel) for k in steps["split"].f.kernels)
        serial_rows = sum(bool(k.parallel) for k in steps["serial"].f.kernels)
        r = clean_rounds(steps, args)
        print(f"causal={causal!s:<5} split {statistics.median(r['split']) * 1e3:.3f} ms "
              f"({split_rows} split kernels), serial rows "
              f"{statistics.median(r['serial']) * 1e3:.3f} ms ({serial_rows}): "
              f"{ratio_text(r['split'], r['serial'])}  bg {statistics.median(r['bg']):.2f}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.04, help="per variant per round")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per row at most")
    ap.add_argument("--only", default="ops,sweep,sums,transformer")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--shapes", default="32x4x128x128,32x4x32x32,128x10,4096x1000",
                    help="softmax shapes of the ops section")
    ap.add_argument("--sums", action=argparse.BooleanOptionalAction, default=True,
                    help="the ops section's sums")
    args = ap.parse_args()
    for section in args.only.split(","):
        {"ops": section_ops, "sweep": section_sweep, "sums": section_sums,
         "transformer": section_transformer}[section](args)


if __name__ == "__main__":
    main()
