"""Compile time of a changed model: a cache that holds the model before the change, against
an empty cache, each in a fresh process.

The edits a user makes between two runs -- another optimizer, one layer's width, a layer
more, dropout off, a longer sequence -- keep most kernel bodies, which
``codegen.kernel_cache`` reuses.  For each edit of a model (the digits MLP of
``examples/digits_mlp.py``: 64-256-128-10, ReLU, dropout 0.2, Adam; ``bench/rnn.py``'s
LSTM(32) over 50 steps) this script times ``model.compile`` + the first training call in a
new process: ``cold`` on an empty cache, ``edited`` on a cache a process compiling the
model before the edit filled (the program cache misses: the program is another).  Reps are
interleaved; numbers are medians, ratios are of medians in this run.

Run from the repository root::

    python bench/recompile.py [--reps 5] [--base DIR]

``--base`` runs another checkout (``git archive`` of an older commit) interleaved with this
one: before the body cache, ``edited`` is a cold compile plus a miss of the IR cache.
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
import numpy as np
t0 = time.perf_counter()
import frontends as fe
kw = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
if "lstm" in kw:  # bench/rnn.py's model: LSTM(32) over (32, T, 16), Dense(10)
    model = fe.Sequential([fe.layers.LSTM(32), fe.layers.Dense(10)],
                          input_shape=(kw["lstm"], 16), seed=0)
    X = rng.normal(size=(32, kw["lstm"], 16)).astype("float32")
else:
    layers = []
    for units in kw.get("hidden", [256, 128]):
        layers.append(fe.layers.Dense(units, activation="relu", bias_init=0.1))
        if kw.get("dropout", 0.2):
            layers.append(fe.layers.Dropout(kw.get("dropout", 0.2)))
    layers.append(fe.layers.Dense(10))
    model = fe.Sequential(layers, input_shape=(64,), seed=0)
    X = rng.normal(size=(32, 64)).astype("float32")
opt = fe.optimizers.SGD(lr=0.05, momentum=0.9) if kw.get("opt") == "momentum" \
    else fe.optimizers.Adam(lr=1e-3)
y = rng.integers(0, 10, 32)
t1 = time.perf_counter()
model.compile(loss="cross_entropy", optimizer=opt, backend="llvm")
model.train_function(X, y)
t2 = time.perf_counter()
st = model.train_function.compile_stats
print(json.dumps({"seconds": t2 - t1, "bodies": st.get("bodies"),
                  "compiled": st.get("bodies_compiled"), "cache_level": st["cache_level"]}))
"""

#: edit -> (the model before, the model after)
EDITS = {
    "optimizer": ({}, {"opt": "momentum"}),
    "width": ({}, {"hidden": [256, 64]}),
    "depth": ({}, {"hidden": [256, 128, 64]}),
    "no dropout": ({}, {"dropout": 0.0}),
    "LSTM T 50->80": ({"lstm": 50}, {"lstm": 80}),
}


def run_child(root: Path, cache: str, kw: dict) -> dict:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=cache, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kw)], env=env, cwd=root,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--base", help="another checkout to run interleaved with this one")
    args = ap.parse_args(argv)
    roots = {"this": ROOT} if not args.base else {"base": Path(args.base).resolve(),
                                                   "this": ROOT}
    tmp = tempfile.mkdtemp(prefix="sg-recompile-bench-")
    rows: list[dict] = []
    try:
        for rep in range(args.reps):
            for edit, (before, kw) in EDITS.items():
                for label, root in roots.items():  # interleaved: load changes hit all alike
                    cold = os.path.join(tmp, f"cold-{rep}-{edit}-{label}")
                    rows.append(dict(run_child(root, cold, kw), root=label, edit=edit,
                                     state="cold"))
                    primed = os.path.join(tmp, f"primed-{rep}-{edit}-{label}")
                    run_child(root, primed, before)  # the model before the edit fills it
                    rows.append(dict(run_child(root, primed, kw), root=label, edit=edit,
                                     state="edited"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def median(label: str, edit: str, state: str, key: str = "seconds") -> float:
        return statistics.median(r[key] or 0 for r in rows
                                 if (r["root"], r["edit"], r["state"]) == (label, edit, state))

    print(f"model.compile + first call of an edited model, ms, median of {args.reps} "
          f"reps; {time.strftime('%H:%M:%S')}")
    head = "".join(f"{label + ' ' + s:>14}" for label in roots for s in ("cold", "edited"))
    print(f"{'edit':<12}{head}{'edited/cold':>14}{'bodies compiled':>18}")
    for edit in EDITS:
        cells = "".join(f"{median(label, edit, s) * 1e3:14.0f}" for label in roots
                        for s in ("cold", "edited"))
        ratio = median("this", edit, "edited") / median("this", edit, "cold")
        bodies = (f"{median('this', edit, 'edited', 'compiled'):.0f} of "
                  f"{median('this', edit, 'edited', 'bodies'):.0f}")
        print(f"{edit:<12}{cells}{ratio:14.2f}{bodies:>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
