"""Ops compare and hash by their props (merging and the program cache rely on it); the key
and hash are computed once per op, and a pickled op hashes afresh in a new process."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np

import symgraph as sg
from symgraph.graph import toposort


def test_equal_props_are_equal_ops_and_merge():
    x = sg.tensor("x", (3, 4), "float32")
    a, b = sg.sum(x, axis=1).owner.op, sg.sum(x, axis=1).owner.op
    c = sg.sum(x, axis=0).owner.op
    assert a is not b and a == b and hash(a) == hash(b) and a != c
    assert len({a, b, c}) == 2
    # merged by the rewrites: one reduction computes both
    f = sg.function([x], [sg.sum(x, axis=1), sg.sum(x, axis=1) * 2], backend="numpy")
    assert [n.op.name for n in toposort(f.graph_outputs)] == ["sum", "mul"]
    v = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = f(v)
    np.testing.assert_array_equal(got[0], v.sum(axis=1))
    np.testing.assert_array_equal(got[1], 2 * v.sum(axis=1))


_PICKLE = ("import pickle, sys, symgraph as sg\n"
           "op = sg.cast(sg.tensor('x', (3,), 'float32'), 'float64').owner.op\n"
           "hash(op)\n"
           "sys.stdout.buffer.write(pickle.dumps(op))\n")
_LOOKUP = ("import pickle, sys, symgraph as sg\n"
           "op = pickle.loads(sys.stdin.buffer.read())\n"
           "fresh = sg.cast(sg.tensor('x', (3,), 'float32'), 'float64').owner.op\n"
           "print({fresh: 'found'}.get(op), op == fresh)\n")


def test_a_pickled_op_hashes_afresh_in_another_process():
    """A string's hash differs between processes (PYTHONHASHSEED): an op's cached hash must
    not travel with it."""
    env = dict(os.environ)
    made = subprocess.run([sys.executable, "-c", _PICKLE], capture_output=True, check=True,
                          env=dict(env, PYTHONHASHSEED="1"))
    looked = subprocess.run([sys.executable, "-c", _LOOKUP], input=made.stdout,
                            capture_output=True, check=True, env=dict(env, PYTHONHASHSEED="2"))
    assert looked.stdout.decode().split() == ["found", "True"]
    assert pickle.loads(made.stdout) == sg.cast(sg.tensor("y", (2,), "float32"),
                                               "float64").owner.op
