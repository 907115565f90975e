"""Convolutions on the direct route (codegen/lower_conv.py: depthwise, few channels per group)
against torch eager, forward + both gradients, timed in the same process, interleaved.

Each case is ``sum(conv2d(x, w) ** 2)`` and its gradients with respect to ``x`` and ``w``,
float32, NCHW; the ratio is symgraph / torch (below 1: symgraph is faster).  Needs torch in
this interpreter (a test-only dependency: ``pip install torch``); not a test, nothing here
runs in CI.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/direct_conv.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
for _p in (str(BENCH), str(BENCH.parent)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from timing import TimingConfig, interleaved_ratio  # noqa: E402

import symgraph as sg  # noqa: E402

# (name, x shape, filters, kernel, padding, groups)
CASES = [
    ("depthwise 3x3, 16 ch 16x16", (32, 16, 16, 16), 16, 3, 1, 16),
    ("depthwise 3x3, 32 ch 8x8", (64, 32, 8, 8), 32, 3, 1, 32),
    ("depthwise 5x5 valid, 8 ch 28x28", (16, 8, 28, 28), 8, 5, 0, 8),
    ("1 -> 8 channels, 1x3", (32, 1, 28, 28), 8, (1, 3), (0, 1), 1),
]


def build(shape, filters, kernel, padding, groups):
    """The symgraph function and a torch closure computing the same three values."""
    import torch

    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    rng = np.random.default_rng(0)
    xv = rng.standard_normal(shape).astype(np.float32)
    wv = (rng.standard_normal((filters, shape[1] // groups, kh, kw)) * 0.3).astype(np.float32)
    x = sg.tensor("x", ("n", *shape[1:]), "float32")
    w = sg.tensor("w", wv.shape, "float32")
    loss = sg.sum(sg.nn.conv2d(x, w, padding=padding, groups=groups) ** 2)
    gx, gw = sg.grad(loss, [x, w])
    f = sg.function([x, w], [loss, gx, gw], backend="llvm")
    tx = torch.from_numpy(xv).requires_grad_()
    tw = torch.from_numpy(wv).requires_grad_()

    def torch_step():
        tx.grad = tw.grad = None
        out = torch.nn.functional.conv2d(tx, tw, padding=padding, groups=groups)
        tl = (out ** 2).sum()
        tl.backward()
        return tl

    got = f(xv, wv)
    tl = torch_step()
    scale = float(abs(tl.detach()))
    np.testing.assert_allclose(got[0], tl.detach().numpy(), rtol=1e-4 * max(1.0, scale))
    np.testing.assert_allclose(got[2], tw.grad.numpy(), rtol=2e-3, atol=1e-2)
    return (lambda: f(xv, wv)), torch_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'case':36s} {'symgraph ms':>12s} {'torch ms':>10s} {'ratio':>7s}  min..max")
    cfg = TimingConfig()
    for name, shape, filters, kernel, padding, groups in CASES:
        ours, theirs = build(shape, filters, kernel, padding, groups)
        r = interleaved_ratio(ours, theirs, cfg, rounds=args.rounds, settle_s=0.05)
        if not r:
            print(f"{name:36s} no clean rounds")
            continue
        print(f"{name:36s} {r['a_ms']:12.3f} {r['b_ms']:10.3f} {r['ratio']:6.2f}x  "
              f"{r['lo']:.2f}..{r['hi']:.2f}")


if __name__ == "__main__":
    main()
