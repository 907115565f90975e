"""``f.profile()`` on both backends: rows name the user's nodes, scopes and lines; the
fractions add up; nothing changes; ``sg.format_profile`` prints them."""

from __future__ import annotations

import os

import numpy as np
import pytest

import symgraph as sg
from symgraph.graph import toposort

HERE = os.path.basename(__file__)


def _mlp(backend):
    x = sg.tensor("x", ("b", 6), "float32")
    w1 = sg.shared(np.linspace(-1, 1, 48, dtype="float32").reshape(6, 8), name="dense_1/W")
    w2 = sg.shared(np.linspace(1, -1, 24, dtype="float32").reshape(8, 3), name="dense_2/W")
    with sg.name_scope("dense_1"):
        h = sg.tanh(x @ w1)
    with sg.name_scope("dense_2"):
        z = h @ w2
    loss = sg.mean(z * z)
    g1, g2 = sg.grad(loss, [w1, w2])
    f = sg.function([x], loss, {w1: w1 - 0.1 * g1, w2: w2 - 0.1 * g2}, backend=backend)
    return f, (w1, w2), np.linspace(0, 1, 60, dtype="float32").reshape(10, 6)


def test_rows_name_user_nodes_scopes_and_lines(backend):
    f, weights, X = _mlp(backend)
    before = [w.get_value() for w in weights]
    rows = f.profile(X, n=3)
    assert abs(sum(r["fraction"] for r in rows) - 1.0) < 1e-9
    assert [r["seconds"] for r in rows] == sorted((r["seconds"] for r in rows), reverse=True)
    for w, value in zip(weights, before):  # profiling changes no parameter
        np.testing.assert_array_equal(w.get_value(), value)
    scopes = {s for r in rows for s in r["scopes"]}
    assert {"dense_1", "dense_2"} <= scopes
    assert all(site.startswith(HERE + ":") for r in rows for site in r["sites"])
    # the forward tanh is named as the user's node, with its layer
    tanh_rows = [r for r in rows if "tanh in dense_1" in r["nodes"]]
    assert len(tanh_rows) == 1
    # gradient nodes say which forward op's bprop made them
    assert any("(d/d tanh) in dense_1" in label for r in rows for label in r["nodes"])
    matmul_rows = [r for r in rows if "matmul in dense_2" in r["nodes"]]
    assert matmul_rows and all(r["blas"] for r in matmul_rows)
    assert f.last_profile is rows


def test_llvm_rows_are_its_kernels_and_numpy_rows_its_nodes():
    f, _, X = _mlp("llvm")
    assert {r["kernel"] for r in f.profile(X, n=2)} == {k.name for k in f.kernels}
    g, _, X = _mlp("numpy")
    nodes = toposort(g.graph_outputs + g.graph_updates)
    rows = g.profile(X, n=2)
    assert sorted(r["kernel"] for r in rows) == sorted(f"n{k}" for k in range(len(nodes)))
    for row in rows:
        assert row["ops"] == [nodes[int(row["kernel"][1:])].op.name]


def test_numpy_profile_times_the_reference_evaluator(monkeypatch):
    # an op made slow on purpose dominates the numpy profile: the timer is around each node
    import time

    from symgraph.ops import elemwise

    f, _, X = _mlp("numpy")
    tanh_op = next(n.op for n in toposort(f.graph_outputs) if n.op.name == "tanh")
    original = type(tanh_op).perform

    def slow(self, inputs, ctx):
        if self is tanh_op:
            time.sleep(0.004)
        return original(self, inputs, ctx)

    monkeypatch.setattr(type(tanh_op), "perform", slow)
    assert isinstance(tanh_op, elemwise.Elemwise)
    rows = f.profile(X, n=3)
    assert rows[0]["nodes"] == ["tanh in dense_1"]
    assert rows[0]["fraction"] > 0.5 and rows[0]["seconds"] >= 0.004


def test_format_profile_table():
    f, _, X = _mlp("llvm")
    rows = f.profile(X, n=2)
    text = sg.format_profile(rows, limit=3)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["share", "time", "unit"]
    assert lines[1].lstrip().startswith(f"{100 * rows[0]['fraction']:.1f}%")
    assert f"({len(rows) - 3} more)" in text
    assert rows[0]["kernel"] in lines[1]


def test_profile_rejects_bad_n(backend):
    f, _, X = _mlp(backend)
    for n in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n must be"):
            f.profile(X, n=n)
