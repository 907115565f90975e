"""sg.render's "kernels" and "profile" views: fused kernels as clusters around the user's
nodes (through the rewrites' provenance), BLAS kernels marked, kernels shaded by their
share of ``f.profile()`` with percentages that add up, and the numpy backend's profile."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import frontends as fe
import symgraph as sg
from symgraph.kernel_view import BLAS_CLUSTER

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def mlp():
    model = fe.Sequential([fe.layers.Dense(8, activation="tanh"), fe.layers.Dense(3)],
                          input_shape=(4,), seed=0)
    model.compile(loss="cross_entropy", optimizer="sgd", backend="llvm")
    X = np.linspace(-1, 1, 40, dtype="float32").reshape(10, 4)
    Y = np.arange(10) % 3
    return model, X, Y


def clusters(path) -> dict[str, tuple[str, list[str], set[str]]]:
    """{cluster id: (its label text, the texts of the nodes inside, its fills)}."""
    root = ET.parse(path).getroot()
    groups = list(root.iter(f"{SVG}g"))
    found = {}
    for g in groups:
        if "cluster" not in g.get("class", "").split():
            continue
        title = g.find(f"{SVG}title").text
        label = " ".join(t.text or "" for t in g.iter(f"{SVG}text"))
        fills = {e.get("fill") for e in g if e.get("fill")}
        found[title] = (label, [], fills)
    # nodes follow their cluster in the SVG; dot writes each node's <g> after its cluster's
    return found


def node_cluster_map(dot_text: str) -> dict[str, str]:
    """{node id: kernel cluster it is declared in} from the DOT text."""
    where, current = {}, None
    for line in dot_text.splitlines():
        m = re.match(r"\s*subgraph (cluster_\w+) \{", line)
        if m:
            current = m.group(1)
            continue
        if line.strip() == "}":
            current = None
            continue
        m = re.match(r"\s*(v\d+) \[", line)
        if m and current is not None:
            where[m.group(1)] = current
    return where


def test_kernel_clusters_hold_the_user_nodes_each_kernel_computes(mlp):
    model, _, _ = mlp
    f = model.train_function
    text = sg.render_source(f, view="kernels", max_nodes=None)
    where = node_cluster_map(text)
    mode = f.program.analysis.mode
    computes = {k.name: {id(u) for n in k.nodes if mode[n.outputs[0]] != "view"
                         for u in sg.graph.user_nodes(n)} for k in f.kernels}
    views = {id(u) for k in f.kernels for n in k.nodes if mode[n.outputs[0]] == "view"
             for u in sg.graph.user_nodes(n)}
    drawn = 0
    for kernel in f.kernels:
        for user in kernel.user_nodes:
            var = user.outputs[0]
            first = next((k.name for k in f.kernels if id(user) in computes[k.name]), None)
            if first is None:  # only a view (a transpose read as a BLAS flag)
                assert id(user) in views and f"v{var.id}" not in where
                continue
            # each user node sits in the first kernel computing it (cheap nodes may be
            # recomputed by several)
            assert where.get(f"v{var.id}") == f"cluster_{first}"
            drawn += 1
    assert drawn >= len(f.kernels)
    # the forward matmul of the first layer is named as the user's node, in a BLAS kernel
    dense = next(k for k in f.kernels
                 if any(u.op.name == "matmul" and u.scope == "dense_1" and u.grad_of is None
                        for u in k.user_nodes))
    assert dense.blas
    block = text[text.index(f"subgraph cluster_{dense.name} {{"):]
    block = block[: block.index("}")]
    assert f'color="{BLAS_CLUSTER["color"]}"' in block and "BLAS" in block
    assert "dense_1" in block


@needs_dot
def test_kernels_view_svg(mlp, tmp_path):
    model, _, _ = mlp
    f = model.train_function
    path = sg.render(f, tmp_path / "k.svg", view="kernels", max_nodes=None)
    found = clusters(path)
    names = {label.split(" ")[0] for label, _, _ in found.values()}
    assert {k.name for k in f.kernels} <= names | {""}
    texts = " ".join(t.text or "" for t in ET.parse(path).getroot().iter(f"{SVG}text"))
    assert "tanh" in texts and "legend" in texts


def _percentages(text: str) -> list[float]:
    return [float(p) for p in re.findall(r"\\n(\d+\.\d)% · ", text)]


@needs_dot
@pytest.mark.parametrize("backend", ["llvm", "numpy"])
def test_profile_view_percentages_sum_to_100(backend, tmp_path):
    model = fe.Sequential([fe.layers.Dense(8, activation="relu"), fe.layers.Dense(3)],
                          input_shape=(4,), seed=1)
    model.compile(loss="cross_entropy", optimizer="adam", backend=backend)
    f = model.train_function
    X = np.linspace(-1, 1, 64, dtype="float32").reshape(16, 4)
    rows = f.profile(X, np.arange(16) % 3, n=3)
    text = sg.render_source(f, view="profile", max_nodes=None)
    if backend == "llvm":
        shares = _percentages(text)
        assert len(shares) == len(f.kernels)
    else:  # each user node carries the share of the evaluator nodes computing it
        shares = [float(p) for p in re.findall(r"\\n(\d+\.\d)%\"", text)]
    assert abs(sum(shares) - 100) < 0.1 * len(shares) + 0.5
    path = sg.render(f, tmp_path / "p.svg", view="profile", max_nodes=None, profile=rows)
    ET.parse(path)  # valid SVG
    if backend == "llvm":  # a unit is a kernel, one profile row each: the slowest is shown
        slowest = rows[0]
        assert f"{100 * slowest['fraction']:.1f}%" in text
    # (numpy: a unit is a user node carrying the shares of the evaluator nodes computing it,
    # so the slowest row's own share need not be any node's; under load it was not)


def test_profile_view_needs_timings():
    x = sg.tensor("x", (3,))
    f = sg.function([x], sg.tanh(x), backend="llvm")
    with pytest.raises(ValueError, match="f.profile"):
        sg.render_source(f, view="profile")
    g = sg.function([x], sg.exp(x), backend="llvm")
    g.profile(np.ones(3), n=1)
    with pytest.raises(ValueError, match="units this function does not have"):
        sg.render_source(f, view="profile", profile=g.last_profile + [
            {"kernel": "k99", "fraction": 0.0, "seconds": 0.0}])


def test_kernels_view_errors():
    x = sg.tensor("x", (3,))
    with pytest.raises(TypeError, match="compiled sg.function"):
        sg.render_source(sg.tanh(x), view="kernels")
    f = sg.function([x], sg.tanh(x), backend="numpy")
    with pytest.raises(ValueError, match="llvm"):
        sg.render_source(f, view="kernels")


def test_removed_alias_and_view_nodes_are_placed_by_what_computes_them():
    x = sg.tensor("x", (4, 3), "float32")
    w = sg.shared(np.ones((4, 2), "float32"), name="w")
    y = sg.tanh(x) * 1.0              # the mul is removed by the rewrites
    r = sg.reshape(y, (3, 4))         # an alias: the same bytes, no kernel
    z = r @ w
    t = sg.transpose(w) @ sg.transpose(r)  # transposes read as BLAS flags (views)
    f = sg.function([x], [z, t], backend="llvm")
    text = sg.render_source(f, view="kernels", max_nodes=None)
    where = node_cluster_map(text)
    # the removed mul is accounted for by the tanh kernel (provenance)
    tanh_kernel = next(k for k in f.kernels if any(n.op.name == "tanh" for n in k.nodes))
    assert y.owner in tanh_kernel.user_nodes
    assert where[f"v{y.id}"] == f"cluster_{tanh_kernel.name}"
    # the reshape is computed by no kernel: outside every cluster, saying why
    assert f"v{r.id}" not in where
    line = next(s for s in text.splitlines() if s.strip().startswith(f"v{r.id} ["))
    assert "alias (no copy)" in line
    # a transpose is a view the gemm reads as a BLAS flag: it is in the gemm kernel's
    # nodes, but no kernel computes it, so it is drawn outside, as a view
    gemm = next(k for k in f.kernels if t.owner in k.user_nodes)
    view = t.owner.inputs[0]
    assert gemm.blas and view.owner in gemm.user_nodes
    assert f"v{view.id}" not in where
    line = next(s for s in text.splitlines() if s.strip().startswith(f"v{view.id} ["))
    assert "view (no copy)" in line


def test_rewritten_kernels_view_draws_the_rewritten_nodes():
    x = sg.tensor("x", (3,))
    y = sg.tanh(x) * 1.0
    f = sg.function([x], y, backend="llvm")
    text = sg.render_source(f, view="kernels", rewritten=True)
    assert f"v{f.graph_outputs[0].id} [" in text
    assert f"v{y.id} [" not in text  # the user's mul is gone from the rewritten graph


@needs_dot
def test_update_target_names_draw_as_written(tmp_path):
    """The kernels view's 'W (new)' node was the one label not escaped: a parameter named
    'a\\lb' was drawn as two lines ('a', 'b (new)': dot's left-justified break)."""
    x = sg.vector("x", 3)
    W = sg.shared(np.ones(3), name="a\\lb")
    loss = (x * W).sum()
    f = sg.function([x], loss, updates={W: W - 0.1 * sg.grad(loss, W)}, backend="llvm")
    path = tmp_path / "k.svg"
    sg.render(f, str(path), view="kernels")
    texts = [t.text for t in ET.parse(path).getroot().iter(f"{SVG}text")]
    assert "a\\lb (new)" in texts, texts
