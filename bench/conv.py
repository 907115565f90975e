#!/usr/bin/env python
"""Convnet training-step benchmark: symgraph (llvm) against torch eager, torch.compile and
jax.jit, in one run.

The net (LeNet-style, NCHW, float32): conv 3x3 x16 (padding 1) -> relu -> max pool 2 ->
conv 3x3 x32 (padding 1) -> relu -> global average pool -> dense 10, softmax
cross-entropy, one plain SGD step (lr 0.05), batch 64.  Two inputs: 16x16x1 synthetic
images (``default_rng(0)``) and the 8x8 digits (the first 64 of the embedded set, scaled
to [0, 1]).  Every framework starts from the same weights (``default_rng(1)``) and its loss
after the first step is checked against the others.

Each framework runs in its own subprocess (``llvm``, ``torch``, ``compile`` in this
interpreter; ``jax`` in ``--peers-python``, the peers venv), timed by ``bench/timing.py``
(chunks with low background load on this shared machine; the figure is the median step).
Ratios compare symgraph with the fastest peer measured in the same run (target <= 1.0x).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/conv.py
        [--only llvm,torch,compile,jax] [--peers-python /work/bench-venv/bin/python]
        [--target-s 1.0] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
from timing import TimingConfig, measure  # noqa: E402  (stdlib + numpy only: the jax venv)

SECTIONS = ("llvm", "torch", "compile", "jax")
PEERS = ("torch", "compile", "jax")
LABELS = {"llvm": "symgraph llvm", "torch": "torch eager", "compile": "torch.compile",
          "jax": "jax.jit"}
DEFAULT_PEERS_PYTHON = "/work/bench-venv/bin/python"
BATCH, LR, C1, C2, CLASSES = 64, 0.05, 16, 32, 10
INPUTS = {"16x16": 16, "digits 8x8": 8}


def make_problem(side: int) -> dict[str, np.ndarray]:
    """The batch and the initial weights (same bits in every process)."""
    if side == 8:
        d = np.load(ROOT / "frontends" / "datasets" / "digits.npz")
        x = (d["images"][:BATCH].astype(np.float32) / 16.0).reshape(BATCH, 1, 8, 8)
        y = d["labels"][:BATCH].astype(np.int64)
    else:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH, 1, side, side), dtype=np.float32)
        y = rng.integers(0, CLASSES, BATCH).astype(np.int64)
    rng = np.random.default_rng(1)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return dict(x=x, y=y, w1=he((C1, 1, 3, 3), 9), b1=np.zeros(C1, np.float32),
                w2=he((C2, C1, 3, 3), 9 * C1), b2=np.zeros(C2, np.float32),
                w3=he((C2, CLASSES), C2), b3=np.zeros(CLASSES, np.float32))


PARAMS = ("w1", "b1", "w2", "b2", "w3", "b3")


# ============================================================================ workers
def step_symgraph(p: dict) -> tuple:
    import symgraph as sg

    params = {k: sg.shared(p[k].copy(), k) for k in PARAMS}
    x = sg.tensor("x", ("batch", *p["x"].shape[1:]), "float32")
    y = sg.tensor("y", ("batch",), "int64")
    h = sg.nn.relu(sg.nn.conv2d(x, params["w1"], params["b1"], padding=1))
    h = sg.nn.max_pool2d(h, 2)
    h = sg.nn.relu(sg.nn.conv2d(h, params["w2"], params["b2"], padding=1))
    logits = sg.mean(h, axis=(2, 3)) @ params["w3"] + params["b3"]
    loss = sg.nn.cross_entropy(logits, y)
    grads = sg.grad(loss, [params[k] for k in PARAMS])
    f = sg.function([x, y], loss, updates={params[k]: params[k] - LR * g
                                           for k, g in zip(PARAMS, grads)}, backend="llvm")
    xb, yb = p["x"], p["y"]
    return (lambda: f(xb, yb)), {"kernels": len(f.kernels),
                                 "blas_kernels": sum(k.blas for k in f.kernels)}


def step_torch(p: dict, compiled: bool) -> tuple:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    params = [torch.tensor(p[k], requires_grad=True) for k in PARAMS]
    xb, yb = torch.from_numpy(p["x"]), torch.from_numpy(p["y"])

    def loss_fn(x, y, w1, b1, w2, b2, w3, b3):
        h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=1)), 2)
        h = F.relu(F.conv2d(h, w2, b2, padding=1))
        return F.cross_entropy(h.mean(dim=(2, 3)) @ w3 + b3, y)

    fn = torch.compile(loss_fn) if compiled else loss_fn

    def step():
        loss = fn(xb, yb, *params)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-LR)
        return loss.detach().numpy()
    return step, {"torch": torch.__version__, "threads": torch.get_num_threads()}


def step_jax(p: dict) -> tuple:
    import jax
    import jax.numpy as jnp
    from jax import lax

    def loss_fn(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        dn = ("NCHW", "OIHW", "NCHW")
        h = lax.conv_general_dilated(x, w1, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
        h = jax.nn.relu(h + b1[None, :, None, None])
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = lax.conv_general_dilated(h, w2, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
        h = jax.nn.relu(h + b2[None, :, None, None])
        logits = h.mean(axis=(2, 3)) @ w3 + b3
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def update(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return [w - LR * g for w, g in zip(params, grads)], loss

    state = {"params": [jnp.asarray(p[k]) for k in PARAMS]}
    xb, yb = jnp.asarray(p["x"]), jnp.asarray(p["y"].astype(np.int32))

    def step():
        state["params"], loss = update(state["params"], xb, yb)
        return np.asarray(loss.block_until_ready())
    return step, {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}


def worker_main(args: argparse.Namespace) -> int:
    cfg = TimingConfig(target_s=args.target_s)
    rows = []
    for label, side in INPUTS.items():
        problem = make_problem(side)
        t0 = time.perf_counter()
        if args.worker == "llvm":
            step, info = step_symgraph(problem)
        elif args.worker == "jax":
            step, info = step_jax(problem)
        else:
            step, info = step_torch(problem, compiled=args.worker == "compile")
        build = time.perf_counter() - t0
        row = measure(step, cfg)
        first_loss = float(row.pop("r1"))
        row.pop("r2")
        rows.append(dict(input=label, build_s=build, first_loss=first_loss, info=info, **row))
    with open(args.out, "w") as fh:
        json.dump(rows, fh, default=float)
    return 0


# ============================================================================ orchestration
def run_section(section: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    python = args.peers_python if section == "jax" else sys.executable
    if not os.path.exists(python):
        return dict(section=section, status=f"skipped: no interpreter {python}")
    out = os.path.join(tmp, f"{section}.json")
    cmd = [python, str(Path(__file__).resolve()), "--worker", section, "--out", out,
           "--target-s", str(args.target_s)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)])}
    print(f"[{section}] {python}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s,
                              env=env)
    except subprocess.TimeoutExpired:
        return dict(section=section, status="timed out")
    print(f"  ({time.perf_counter() - t0:.1f} s, exit {proc.returncode})", flush=True)
    if proc.returncode != 0 or not os.path.exists(out):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return dict(section=section, status=f"failed (exit {proc.returncode}): "
                    + " / ".join(tail)[-400:])
    with open(out) as fh:
        return dict(section=section, status="ok", rows=json.load(fh))


def report(results: list[dict[str, Any]]) -> str:
    lines = [f"\n{'input':<12}{'framework':<16}{'step ms':>9}{'p10..p90 ms':>16}{'clean':>7}"
             f"{'vs fastest peer':>17}{'build s':>9}{'loss@1':>9}"]
    ok = [r for r in results if r["status"] == "ok"]
    for label in INPUTS:
        per = {r["section"]: next(x for x in r["rows"] if x["input"] == label) for r in ok}
        peers = {s: v["med_ms"] for s, v in per.items() if s in PEERS}
        fastest = min(peers.values()) if peers else None
        for section, row in per.items():
            ratio = f"{row['med_ms'] / fastest:.2f}x" if fastest else "n/a"
            spread = f"{row['p10_ms']:.3f}..{row['p90_ms']:.3f}"
            lines.append(f"{label:<12}{LABELS[section]:<16}{row['med_ms']:>9.3f}{spread:>16}"
                         f"{row['clean']:>7.0%}{ratio:>17}{row['build_s']:>9.2f}"
                         f"{row['first_loss']:>9.4f}")
        losses = [row["first_loss"] for row in per.values()]
        if losses:
            agree = max(losses) - min(losses) < 1e-4 * max(1.0, abs(losses[0]))
            lines.append(f"{'':<12}first-step losses agree: {'yes' if agree else 'NO'}")
        if "llvm" in per and fastest:
            best = min(peers, key=peers.get)
            ratio = per["llvm"]["med_ms"] / fastest
            lines.append(f"{'':<12}target: symgraph llvm <= 1.0x the fastest peer "
                         f"({LABELS[best]}): {ratio:.2f}x -> {'PASS' if ratio <= 1 else 'MISS'}")
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{LABELS[r['section']]}: {r['status']}")
        else:
            lines.append(f"{LABELS[r['section']]}: {json.dumps(r['rows'][0]['info'])}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SECTIONS), help="llvm,torch,compile,jax")
    ap.add_argument("--peers-python", default=DEFAULT_PEERS_PYTHON,
                    help="interpreter of the peers venv (jax); skipped if missing")
    ap.add_argument("--target-s", type=float, default=1.0, help="clean seconds per timing")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="per-section time limit")
    ap.add_argument("--json", default=None, help="write every row to this file")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s) {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    print(f"convnet training step: conv3x3x{C1}-relu-maxpool2-conv3x3x{C2}-relu-GAP-dense"
          f"{CLASSES}, cross-entropy, SGD, batch {BATCH}, float32; inputs "
          f"{', '.join(INPUTS)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_section(s, args, tmp) for s in sections]
    print(report(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
