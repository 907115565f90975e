"""Provenance through the rewrites: each rewritten node records the user's nodes it
replaces (``Apply.origins``, ``sg.graph.user_nodes``), so kernels and profiles can name
the user's code. The oracle is the user's own graph: every node of it is accounted for."""

from __future__ import annotations

import inspect

import numpy as np

import symgraph as sg
from symgraph.graph import toposort, user_nodes
from symgraph.rewrites import rewrite_graph


def _covered(outputs) -> set[int]:
    """ids of the user nodes some node of the rewritten graph stands for."""
    return {id(u) for node in toposort(outputs) for u in user_nodes(node)}


def test_a_user_node_is_its_own_origin():
    x = sg.tensor("x", (3,))
    y = sg.tanh(x)
    assert y.owner.origins == ()
    assert user_nodes(y.owner) == (y.owner,)


def test_rebuilt_nodes_point_at_the_user_nodes_and_keep_their_sites():
    x = sg.tensor("x", (3,))
    y = sg.exp(sg.tanh(x))
    (new,), _ = rewrite_graph([y])
    assert new.owner is not y.owner  # the rewrites copy the graph
    assert user_nodes(new.owner) == (y.owner,)
    assert user_nodes(new.owner.inputs[0].owner) == (y.owner.inputs[0].owner,)
    assert new.owner.site == y.owner.site


def test_an_eliminated_identity_is_recorded_on_the_node_that_now_computes_it():
    x = sg.tensor("x", (3,))
    t = sg.tanh(x)
    y = t * 1.0  # mul_by_one: the result is t itself
    (new,), report = rewrite_graph([y])
    assert report.fired["mul_by_one"] == 1
    assert new.owner.op.name == "tanh"
    assert set(user_nodes(new.owner)) == {t.owner, y.owner}


def test_merged_equal_nodes_record_both_user_nodes():
    x = sg.tensor("x", (3,))
    a, b = sg.exp(x), sg.exp(x)  # built twice: merged by CSE
    (total,), report = rewrite_graph([a + b])
    na, nb = total.owner.inputs
    assert report.fired["merge"] >= 1 and na is nb
    assert set(user_nodes(na.owner)) == {a.owner, b.owner}


def test_provenance_survives_several_stages_and_names_only_user_nodes():
    x = sg.tensor("x", (4, 3))
    w = sg.shared(np.ones((3, 2)), name="w")
    loss = sg.mean(sg.tanh(x @ w) * 1.0 + 0.0)
    g = sg.grad(loss, w)
    outs, _ = rewrite_graph([loss, g])
    user = {id(n) for n in toposort([loss, g])}
    covered = _covered(outs)
    assert covered <= user  # nothing but the user's own nodes
    # the forward ops are all still computed, by nodes that name them
    for var in (loss, g):
        assert id(var.owner) in covered


def test_kernels_name_the_user_nodes_and_account_for_every_one():
    x = sg.tensor("x", ("b", 4), "float32")
    w = sg.shared(np.ones((4, 3), "float32"), name="w")
    with sg.name_scope("dense"):
        h = sg.tanh(x @ w) * 1.0
    loss = sg.mean(h * h)
    f = sg.function([x], loss, {w: w - 0.1 * sg.grad(loss, w)}, backend="llvm")
    in_kernels = {id(u) for k in f.kernels for u in k.user_nodes}
    an = f.program.analysis
    computed = 0
    for node in an.all_nodes:
        if an.mode[node.outputs[0]] in ("buffer", "inline"):
            # whatever a kernel computes names the user's nodes it stands for
            for user in user_nodes(node):
                assert id(user) in in_kernels, (node, user)
                computed += 1
    assert computed >= len(f.kernels)
    user_ids = {id(n) for n in toposort(f.outputs + [e for _, e in f.updates])}
    assert in_kernels <= user_ids
    tanh_kernel = next(k for k in f.kernels if any(n.op.name == "tanh" for n in k.nodes))
    names = {u.op.name for u in tanh_kernel.user_nodes}
    assert {"tanh", "mul"} <= names  # the `* 1.0` the rewrites removed is named here
    assert all(u.scope == "dense" for u in tanh_kernel.user_nodes if u.op.name == "tanh")
    matmul = next(k for k in f.kernels if k.nodes[0].op.name == "matmul")
    assert matmul.blas and not tanh_kernel.blas


def test_at_site_sets_the_site_of_nodes_built_inside_it_and_nests():
    x = sg.tensor("x", (3,))
    here = sg.tanh(x).owner.site  # this file, this line
    spec = sg.graph.Site("model.yaml", 7)
    with sg.graph.at_site(spec):
        a = sg.exp(x)
        with sg.graph.at_site(None):  # None: the enclosing site stays
            b = sg.log(x)
        with sg.graph.at_site(sg.graph.Site("model.yaml", 9)):
            c = sg.sin(x)
        d = sg.cos(x)
    e, line = sg.sqrt(x), inspect.currentframe().f_lineno  # after the block: this line again
    assert here.filename == __file__
    assert [v.owner.site for v in (a, b, c, d)] == [spec, spec, sg.graph.Site("model.yaml", 9),
                                                   spec]
    assert (e.owner.site.filename, e.owner.site.lineno) == (__file__, line)
