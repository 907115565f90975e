"""Time ``sg.render`` on deep chains: does a large graph still draw, and how fast?

The graph is a training step of a chain of ``Dense`` + tanh layers, each in its own
``sg.name_scope`` (as the model API builds them): forward, ``sg.grad`` and SGD updates,
about 20 nodes a layer, so 5 / 50 / 500 layers make ~100 / 1,000 / 10,000 nodes. For the
ops and layers views, capped (``max_nodes=400``) and uncapped, collapse on and off, it
prints the nodes drawn, the time to build the DOT text (``render_source``: reading the
graph, finding repeats) and the time ``dot`` takes to draw it as SVG. ``dot`` runs under a
timeout; "failed" is dot giving up (it does on ~10,000 uncollapsed nodes).

Not a test and not in CI. From the repository root:

    python bench/render.py [--layers 5 50 500] [--timeout 120]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time

import numpy as np

import symgraph as sg
from symgraph.export import to_networkx


def dense_chain(depth: int, width: int = 16):
    """(outputs, updates) of a ``depth``-layer tanh chain's training step."""
    x, y = sg.matrix("x", dtype="float32"), sg.matrix("y", dtype="float32")
    h, params = x, []
    for i in range(1, depth + 1):
        W = sg.shared(np.zeros((width, width), "float32"), name=f"dense_{i}/W")
        b = sg.shared(np.zeros(width, "float32"), name=f"dense_{i}/b")
        params += [W, b]
        with sg.name_scope(f"dense_{i}"):
            h = sg.tanh(h @ W + b)
    cost = sg.mean((h - y) ** 2)
    grads = sg.grad(cost, params)
    updates = [(p, p - np.float32(0.1) * g) for p, g in zip(params, grads, strict=True)]
    return [cost, *grads], updates


def draw(source: str, timeout: float) -> str:
    """Seconds ``dot -Tsvg`` takes, or why it did not finish."""
    start = time.perf_counter()
    try:
        done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f">{timeout:.0f} s"
    if done.returncode != 0:
        return "failed"
    return f"{time.perf_counter() - start:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[5, 50, 500])
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    header = (f"{'layers':>6} {'nodes':>6} {'view':>6} {'max_nodes':>9} {'collapse':>8} "
              f"{'drawn':>6} {'DOT text':>9} {'dot':>9}")
    print(header)
    print("-" * len(header))
    for depth in args.layers:
        outputs, updates = dense_chain(depth)
        total = to_networkx(outputs, updates=updates).number_of_nodes()
        for view in ("ops", "layers"):
            for max_nodes in (400, None):
                for collapse in (True, False):
                    start = time.perf_counter()
                    source = sg.render_source(outputs, view=view, updates=updates,
                                              max_nodes=max_nodes, collapse=collapse)
                    text_s = time.perf_counter() - start
                    drawn = len(set(re.findall(r"^\s*([vbr]\w*) \[", source, re.M)))
                    print(f"{depth:>6} {total:>6} {view:>6} {max_nodes or '-':>9} "
                          f"{'on' if collapse else 'off':>8} {drawn:>6} {text_s:>7.2f} s "
                          f"{draw(source, args.timeout):>9}", flush=True)


if __name__ == "__main__":
    main()
