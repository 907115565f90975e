"""Compile time of W1-SGD by stage, cold and warm, each in a fresh process.

``train_step.py --workloads C`` gives one number per process (graph + grad + sg.function +
first call); this script splits it: ``import symgraph``, graph + grad, ``sg.function``
(``f.compile_seconds`` is the backend's part; ``f.compile_stats`` its stages, ``rewrite``
runs before it), the first call, and the Python imports ``sg.function`` triggers
(``imports``: ``sg.function`` minus rewrite minus the stages the backend times).

Run from the repository root::

    python bench/compile.py [--reps 5] [--pyc both|on|off]

``--pyc off`` runs with ``PYTHONDONTWRITEBYTECODE=1`` (as this machine's shells do): the
project's modules are compiled from source in each process when the checkout has no
``__pycache__`` (installed libraries keep theirs); ``on`` gives the processes a bytecode cache
of their own (``PYTHONPYCACHEPREFIX`` in a temporary directory, warmed by one process first),
as an installed package has.  Every rep uses a fresh cache directory: ``cold`` is the first process
on it, ``warm`` the next ones.  Numbers are medians over reps, in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import symgraph as sg
t_import = time.perf_counter() - t0
sys.path.insert(0, sys.argv[1])
import workloads as wk
p = wk.make_problem("W1")
sgf = sys.modules["symgraph.function"]
marks = {}
_orig = sgf.Function.__init__
def init(self, *a, **k):
    marks["fn0"] = time.perf_counter()
    _orig(self, *a, **k)
    marks["fn1"] = time.perf_counter()
sgf.Function.__init__ = init
t0 = time.perf_counter()
f = wk.build_sg_step(p, "sgd", "llvm")
t1 = time.perf_counter()
loss = f(p["X"], p["y"])
t2 = time.perf_counter()
for _ in range(3):
    f(p["X"], p["y"])
t3 = time.perf_counter()
out = {k: v for k, v in f.compile_stats.items() if isinstance(v, (int, float, str))}
out.update(import_symgraph=t_import, graph_grad=marks["fn0"] - t0,
           function=marks["fn1"] - marks["fn0"], backend=f.compile_seconds,
           first_call=t2 - t1, later_call=(t3 - t2) / 3, loss=float(loss))
print(json.dumps(out))
"""

STAGES = ["import_symgraph", "graph_grad", "function", "rewrite", "backend", "imports",
          "analyse", "llvm_init", "signature", "program_load", "lower", "llvm_optimize",
          "machine_code", "load", "first_call", "later_call", "plan"]


def run_child(cache: str, pyc: str, pycache: str, root: Path = ROOT) -> dict:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=cache)
    if pyc == "on":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # the project's own modules have no bytecode
        env.pop("PYTHONPYCACHEPREFIX", None)   # unless the checkout has __pycache__ dirs
    out = subprocess.run([sys.executable, "-c", CHILD, str(root / "bench")], env=env,
                         cwd=root, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    timed = sum(row.get(k) or 0.0 for k in ("analyse", "llvm_init", "signature",
                                            "program_load", "lower", "llvm_optimize",
                                            "machine_code", "load"))
    row["imports"] = row["backend"] - timed
    row["plan"] = row["first_call"] - row["later_call"]  # plan building (noisy: BLAS load)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warm", type=int, default=2, help="warm processes per rep")
    ap.add_argument("--pyc", choices=["both", "on", "off"], default="both")
    ap.add_argument("--json", help="write every row to this file")
    ap.add_argument("--base", help="another checkout (e.g. `git archive` of an older commit) "
                    "to run interleaved with this one: before/after in one run")
    args = ap.parse_args(argv)
    modes = ["off", "on"] if args.pyc == "both" else [args.pyc]
    roots = {"": ROOT} if not args.base else {"base ": Path(args.base).resolve(), "": ROOT}
    tmp = tempfile.mkdtemp(prefix="sg-compile-bench-")
    rows: list[dict] = []
    try:
        pycache = os.path.join(tmp, "pyc")
        if "on" in modes:  # fill the bytecode cache once
            for root in roots.values():
                run_child(os.path.join(tmp, "prime"), "on", pycache, root)
        for rep in range(args.reps):
            for pyc in modes:  # interleaved, so load changes hit all alike
                for label, root in roots.items():
                    cache = os.path.join(tmp, f"cache-{rep}-{pyc}-{label.strip()}")
                    for n in range(1 + args.warm):
                        row = run_child(cache, pyc, pycache, root)
                        row.update(state=label + ("cold" if n == 0 else "warm"), pyc=pyc,
                                   rep=rep)
                        rows.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    groups = [(lb + s, p) for s in ("cold", "warm") for p in modes for lb in roots]
    print(f"W1-SGD compile by stage, ms, median of {args.reps} reps "
          f"(warm: {args.warm} processes per rep); {time.strftime('%H:%M:%S')}")
    print(f"{'stage':<16}" + "".join(f"{s + ' pyc=' + p:>17}" for s, p in groups))
    for stage in STAGES + ["fn+call", "all"]:
        cells = []
        for s, p in groups:
            vals = []
            for r in rows:
                if (r["state"], r["pyc"]) != (s, p):
                    continue
                if stage == "fn+call":
                    vals.append(r["function"] + r["first_call"])
                elif stage == "all":
                    vals.append(r["graph_grad"] + r["function"] + r["first_call"])
                else:
                    vals.append(r.get(stage) or 0.0)
            cells.append(f"{statistics.median(vals) * 1e3:17.2f}" if vals else f"{'':>17}")
        print(f"{stage:<16}" + "".join(cells))
    print("fn+call = sg.function (incl. rewrite) + first call; all = graph + grad + fn+call "
          "(what train_step.py's C row reports); import symgraph is apart")
    caches = {(r["state"], r["pyc"], r.get("cache_level")) for r in rows}
    print("cache levels seen:", sorted(map(str, caches)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
