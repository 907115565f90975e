"""Elementwise loops on OpenBLAS's threads (codegen/native/parallel.py): where does it pay?

Every comparison is the same graph compiled twice in one process -- with split loops (the
default; ``SYMGRAPH_THREADS_MIN`` lowered where the sweep needs it) and with
``SYMGRAPH_THREADS=1`` (the serial code) -- timed in interleaved rounds; a row prints the
ratio split / serial of each round (median and range: the machine is shared and switches speed
modes, so single figures mean little). Sections:

* ``sweep``: an Adam update (p, m, v in place) and a light loop (``p + x``) at several sizes,
  each call right after a small gemm (OpenBLAS's worker is then spinning, as in a training
  step) -- ``MIN_ELEMENTS`` belongs where the light loop's ratio crosses 1;
* ``asleep``: the same loops called 150 ms apart, when OpenBLAS's worker has gone to sleep
  (waking it is the cost a step without gemms pays on its first split loop);
* ``w1``: the W1-Adam step (bench/workloads.py) both ways, and the gemm floor in the same
  rounds;
* ``small``: W2 and W3 steps (tiny: nothing is split, the ratio must be 1.00).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/parallel.py [--rounds 11]
        [--only sweep,asleep,w1,small]

Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads as wl  # noqa: E402
from timing import LoadMeter  # noqa: E402

import symgraph as sg  # noqa: E402
from codegen.native import blas, parallel  # noqa: E402


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Environment variables set while compiling (they are part of the program cache key)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v


def both(build: Callable[[], object], minimum: int | None = None) -> tuple[object, object]:
    """``build()`` compiled with split loops and serially."""
    extra = {} if minimum is None else {"SYMGRAPH_THREADS_MIN": str(minimum)}
    with environ(SYMGRAPH_THREADS="2", **extra):
        split = build()
    with environ(SYMGRAPH_THREADS="1"):
        serial = build()
    return split, serial


def per_call(call: Callable[[], object], seconds: float) -> float:
    """Median seconds per call over ~``seconds`` of calls in 5 chunks."""
    t0 = time.perf_counter()
    call()
    est = max(time.perf_counter() - t0, 1e-7)
    reps = max(3, int(seconds / 5 / est))
    chunks = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            call()
        chunks.append((time.perf_counter() - t0) / reps)
    return statistics.median(chunks)


def rounds(variants: dict[str, Callable[[], object]], n: int, seconds: float
           ) -> dict[str, list[float]]:
    """Seconds per call of each variant in ``n`` interleaved rounds, and the background load
    of each round under ``"bg"``."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    out["bg"] = []
    for _ in range(n):
        with LoadMeter() as lm:
            for name, call in variants.items():
                out[name].append(per_call(call, seconds))
        out["bg"].append(lm.bg)
    return out


def ratio_text(num: list[float], den: list[float]) -> str:
    r = sorted(a / b for a, b in zip(num, den))
    return f"{statistics.median(r):.2f} [{r[0]:.2f}..{r[-1]:.2f}]"


def adam_update(n: int):
    """``sg.function([g], [], updates=...)``: Adam over ``n`` float32 parameters in place."""
    rng = np.random.default_rng(0)
    p = sg.shared(rng.standard_normal(n).astype(np.float32), name="p")
    m = sg.shared(np.zeros(n, np.float32), name="m")
    v = sg.shared(np.zeros(n, np.float32), name="v")
    g = sg.tensor("g", shape=(n,), dtype="float32")
    b1, b2, lr, eps = (np.float32(c) for c in (0.9, 0.999, 1e-3, 1e-8))
    m1 = b1 * m + (1 - b1) * g
    v1 = b2 * v + (1 - b2) * g * g
    f = sg.function([g], [], updates={m: m1, v: v1, p: p - lr * m1 / (sg.sqrt(v1) + eps)})
    return f, rng.standard_normal(n).astype(np.float32)


def light_update(n: int):
    p = sg.shared(np.zeros(n, np.float32), name="p")
    x = sg.tensor("x", shape=(n,), dtype="float32")
    return sg.function([x], [], updates={p: p + x}), np.ones(n, np.float32)


SIZES = (16384, 32768, 65536, 131072, 262144, 535552)


def section_sweep(args: argparse.Namespace) -> None:
    print("\n== sweep: each call after a 64x256x256 gemm (OpenBLAS's worker spinning); "
          "ratio split / serial of (gemm + loop - gemm)")
    a, b = np.ones((64, 256), np.float32), np.ones((256, 256), np.float32)
    c = np.empty((64, 256), np.float32)

    def gemm() -> None:
        np.matmul(a, b, out=c)

    print(f"{'loop':>6} {'elements':>9} {'serial us':>10} {'split us':>9} "
          f"{'ratio med [min..max]':>24}  bg")
    for kind, build in (("adam", adam_update), ("light", light_update)):
        for n in SIZES:
            (fs, x), (fo, _) = both(lambda n=n, build=build: build(n), minimum=1)
            r = rounds({"gemm": gemm,
                        "split": lambda fs=fs, x=x: (gemm(), fs(x)),
                        "serial": lambda fo=fo, x=x: (gemm(), fo(x))}, args.rounds, 0.05)
            split = [t - g for t, g in zip(r["split"], r["gemm"])]
            serial = [t - g for t, g in zip(r["serial"], r["gemm"])]
            print(f"{kind:>6} {n:>9} {statistics.median(serial) * 1e6:>10.1f} "
                  f"{statistics.median(split) * 1e6:>9.1f} {ratio_text(split, serial):>24}  "
                  f"{statistics.median(r['bg']):.2f}")


def section_asleep(args: argparse.Namespace) -> None:
    print("\n== asleep: calls 150 ms apart (OpenBLAS's worker sleeps after ~0.1 s idle); "
          "one call each, median of --rounds")
    print(f"{'loop':>6} {'elements':>9} {'serial us':>10} {'split us':>9} {'ratio':>6}")
    for kind, build in (("adam", adam_update), ("light", light_update)):
        for n in (65536, 535552):
            (fs, x), (fo, _) = both(lambda n=n, build=build: build(n), minimum=1)
            times: dict[str, list[float]] = {"split": [], "serial": []}
            for _ in range(args.rounds):
                for name, f in (("split", fs), ("serial", fo)):
                    time.sleep(0.15)
                    t0 = time.perf_counter()
                    f(x)
                    times[name].append(time.perf_counter() - t0)
            s, o = statistics.median(times["split"]), statistics.median(times["serial"])
            print(f"{kind:>6} {n:>9} {o * 1e6:>10.1f} {s * 1e6:>9.1f} {s / o:>6.2f}")


def section_w1(args: argparse.Namespace) -> None:
    print("\n== W1-Adam step, split loops and serial, vs the gemm floor (same rounds)")
    p = wl.make_problem("W1")
    split, serial = both(lambda: wl.build_sg_step(p, "adam", "llvm"))
    floor, _ = wl.gemm_floor()
    X, y = p["X"][:128], p["y"][:128]
    r = rounds({"floor": floor, "serial": lambda: serial(X, y), "split": lambda: split(X, y)},
               args.rounds, 0.3)
    for name in ("serial", "split"):
        print(f"{name:>7}: {statistics.median(r[name]) * 1e3:.3f} ms, x gemm floor "
              f"{ratio_text(r[name], r['floor'])}")
    print(f"floor {statistics.median(r['floor']) * 1e3:.3f} ms; split / serial "
          f"{ratio_text(r['split'], r['serial'])}; bg {statistics.median(r['bg']):.2f}")


def section_small(args: argparse.Namespace) -> None:
    print("\n== tiny steps (W2, W3): split loops allowed / serial code (should be 1.00)")
    for name in ("W2", "W3"):
        p = wl.make_problem(name)
        f, s = both(lambda p=p: wl.build_sg_step(p, "sgd", "llvm"))
        X, y = p["X"], p["y"]
        r = rounds({"serial": lambda s=s, X=X, y=y: s(X, y),
                    "split": lambda f=f, X=X, y=y: f(X, y)}, args.rounds, 0.05)
        print(f"{name}: {statistics.median(r['serial']) * 1e6:.2f} us -> "
              f"{statistics.median(r['split']) * 1e6:.2f} us, ratio "
              f"{ratio_text(r['split'], r['serial'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--only", default="sweep,asleep,w1,small")
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
        print("warning: run with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE")
    if not parallel.available():
        sys.exit("numpy's BLAS cannot run loops (not a pthreads OpenBLAS)")
    info = blas.blas_info()
    print(f"BLAS {info['corename']} threads {info['num_threads']}; cpus "
          f"{len(os.sched_getaffinity(0))}; MIN_ELEMENTS {parallel.MIN_ELEMENTS}")
    sections = {"sweep": section_sweep, "asleep": section_asleep, "w1": section_w1,
                "small": section_small}
    for name in args.only.split(","):
        sections[name](args)


if __name__ == "__main__":
    main()
