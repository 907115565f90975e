"""sg.render: the ops and layers views of a small MLP's training graph, as SVG and DOT text;
max_nodes elision; the missing-dot fallback (DOT text written, install hint raised)."""

from __future__ import annotations

import os
import re
import shutil
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import frontends as fe
import symgraph as sg
from symgraph.export import DOT_STYLES
from symgraph.rendering import GraphvizNotFound, GraphvizTimeout, render, render_source

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
SVG = "{http://www.w3.org/2000/svg}"
GRADIENT_FILL = DOT_STYLES["gradient"]["fillcolor"]


@pytest.fixture(scope="module")
def model():
    m = fe.Sequential([fe.layers.Dense(8, activation="relu"), fe.layers.Dense(3)],
                      input_shape=(4,), seed=0)
    m.compile(loss="cross_entropy", optimizer="sgd", backend="numpy")
    return m


def svg_nodes(path) -> dict[str, tuple[list[str], set[str]]]:
    """{graphviz node id: (text lines, fill colours)} from an SVG dot wrote."""
    root = ET.parse(path).getroot()
    nodes = {}
    for group in root.iter(f"{SVG}g"):
        if "node" not in group.get("class", "").split():
            continue
        title = group.find(f"{SVG}title").text
        texts = [t.text or "" for t in group.iter(f"{SVG}text")]
        fills = {e.get("fill") for e in group.iter() if e.get("fill")}
        nodes[title] = (texts, fills)
    return nodes


def svg_clusters(path) -> list[str]:
    root = ET.parse(path).getroot()
    return [" ".join(t.text or "" for t in g.iter(f"{SVG}text"))
            for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"]


def dot_nodes(text: str) -> dict[str, str]:
    """{node id: attribute text} of the node statements in DOT text."""
    return dict(re.findall(r"^\s*(v\d+|b\d+|u\d+|elided) \[(.*)\]$", text, re.M))


# --------------------------------------------------------------------------- ops view


@needs_dot
def test_ops_view_svg_labels_clusters_and_gradient_fill(model, tmp_path):
    _, grads, _ = model.train_graph
    path = render(model.train_function, tmp_path / "g.svg", view="ops")
    assert path == str(tmp_path / "g.svg")
    nodes = svg_nodes(path)
    gW = grads[0]
    texts, fills = nodes[f"v{gW.id}"]
    assert "d(cost)/d(dense_1/W)" in texts
    assert GRADIENT_FILL in fills
    # every node grad made carries the gradient fill, and no forward node does
    for var in sg.graph.toposort(grads):
        for out in var.outputs:
            if f"v{out.id}" in nodes:
                assert (GRADIENT_FILL in nodes[f"v{out.id}"][1]) == (out.role == "gradient")
    clusters = svg_clusters(path)
    assert any(c.startswith("dense_1") for c in clusters)
    assert any(c.startswith("dense_2") for c in clusters)
    assert any(c.startswith("gradient of cost") for c in clusters)
    legend_text, legend_fills = nodes["legend"]
    assert {"input", "parameter", "forward", "gradient", "update"} <= set(legend_text)
    assert GRADIENT_FILL in legend_fills


def test_ops_view_dot_text(model, tmp_path):
    path = render(model.train_function, tmp_path / "g.dot", view="ops")
    text = open(path).read()
    assert text.startswith("digraph")
    nodes = dot_nodes(text)
    _, grads, updates = model.train_graph
    assert 'class="gradient"' in nodes[f"v{grads[0].id}"]
    assert "d(cost)/d(dense_1/W)" in nodes[f"v{grads[0].id}"]
    # parameters sit in their layer's cluster; the gradient compartment nests inside it
    dense_1 = text[text.index("label=dense_1"):]
    assert dense_1.index("dense_1/W\\n") < dense_1.index("label=\"gradient of cost\"")
    # each kept update gets a dashed "(new)" node fed by its expression
    assert text.count("(new)") == len(updates)
    # edges carry the source's shape; positions only where the op is not symmetric
    assert re.search(r'-> v\d+ \[label="\(batch, 8\)"', text)
    assert re.search(r'label="1: \(8, 3\)"', text) or re.search(r'label="0: \(', text)
    if HAS_DOT:
        import subprocess
        done = subprocess.run(["dot", "-Tplain"], input=text.encode(), capture_output=True)
        assert done.returncode == 0, done.stderr


def test_nested_scopes_make_nested_clusters(tmp_path):
    x = sg.matrix("x")
    W = sg.shared(np.ones((3, 2), dtype="float32"), name="W")
    with sg.name_scope("a"):
        h = sg.tanh(x @ W)
        with sg.name_scope("b"):
            y = sg.sum(h * h)
    (gW,) = sg.grad(y, [W])
    text = render_source([y, gW], view="ops")
    a = re.search(r"subgraph (cluster_\d+) \{\n[^\n]*label=a ", text)
    b = re.search(r"subgraph (cluster_\d+) \{\n[^\n]*label=b ", text)
    assert a and b and a.start() < b.start()
    # cluster b is closed before a: count braces between a's start and b's start
    between = text[a.end():b.start()]
    assert between.count("{") >= between.count("}")


def test_two_grad_calls_get_their_own_compartments():
    x = sg.vector("x")
    cost = sg.sum(sg.exp(x))
    (g1,) = sg.grad(cost, [x])
    (g2,) = sg.grad(sg.sum(g1 * g1), [x])
    text = render_source([cost, g1, g2], view="ops")
    labels = sorted(set(re.findall(r'label="(gradient \d of [^"]*)"', text)))
    assert labels == ["gradient 1 of sum(exp(x))", "gradient 2 of cost"]
    lines = text[text.index('label="gradient 2'):].splitlines()
    compartment_2 = "\n".join(lines[:next(i for i, ln in enumerate(lines) if ln.strip() == "}")])
    assert f"v{g2.id} " in compartment_2 and f"v{g1.id} " not in compartment_2


def test_grad_compartments_are_numbered_in_call_order_not_drawing_order():
    x, y = sg.vector("x"), sg.vector("y")
    (gx,) = sg.grad(sg.sum(sg.exp(x)), [x])  # the first grad call
    (gy,) = sg.grad(sg.sum(sg.sin(y)), [y])
    text = render_source([gy, gx], view="ops")  # drawn first: gy
    labels = set(re.findall(r'label="(gradient \d of [^"]*)"', text))
    assert labels == {"gradient 1 of sum(exp(x))", "gradient 2 of sum(sin(y))"}


# --------------------------------------------------------------------------- layers view


@needs_dot
def test_layers_view_svg(model, tmp_path):
    path = render(model.train_function, tmp_path / "layers.svg", view="layers")
    nodes = svg_nodes(path)
    texts = {title: " ".join(t) for title, (t, _) in nodes.items()}
    fills = {title: f for title, (_, f) in nodes.items()}
    grad_boxes = [t for t, text in texts.items() if text.startswith("∂ dense_")]
    assert sorted(texts[t].split()[1] for t in grad_boxes) == ["dense_1", "dense_2"]
    assert all(GRADIENT_FILL in fills[t] for t in grad_boxes)
    clusters = svg_clusters(path)
    for name in ("dense_1", "dense_2", "loss", "updates"):
        assert any(c.startswith(name) for c in clusters), name
    assert any("W (4, 8)" in text for text in texts.values())


def test_layers_view_dot_boxes_and_flows(model, tmp_path):
    text = open(render(model.train_function, tmp_path / "layers.gv", view="layers")).read()
    nodes = dot_nodes(text)
    by_label = {re.search(r'label="([^"\\]*)', attrs).group(1): box
                for box, attrs in nodes.items()}
    # the data flows dense_1 -> dense_2 -> loss, the gradient back the other way
    fwd1 = next(b for lab, b in by_label.items() if lab.startswith("W (4, 8)"))
    fwd2 = next(b for lab, b in by_label.items() if lab.startswith("W (8, 3)"))
    grad1, grad2 = by_label["∂ dense_1"], by_label["∂ dense_2"]
    assert re.search(rf"\b{fwd1} -> {fwd2} \[", text)
    assert re.search(rf"\b{grad2} -> {grad1} \[", text)
    assert not re.search(rf"\b{fwd2} -> {fwd1} \[", text)
    assert by_label["∂ loss"]
    n_updates = len(model.train_function.updates)  # 4 weights and SGD's step counter
    updates = next(a for a in nodes.values() if f"{n_updates} parameters updated" in a)
    assert 'class="update"' in updates or "class=update" in updates


# --------------------------------------------------------------------------- large graphs


def chain(depth: int):
    x = sg.matrix("x")
    h, weights = x, []
    for i in range(depth):
        W = sg.shared(np.eye(4, dtype="float32"), name=f"W{i}")
        weights.append(W)
        h = sg.tanh(h @ W)
    cost = sg.sum(h)
    return [cost, *sg.grad(cost, weights)]


@pytest.mark.parametrize("view", ["ops", "layers"])
def test_max_nodes_elides_with_a_note(tmp_path, view):
    outputs = chain(20)
    full = render_source(outputs, view="ops", max_nodes=None, collapse=False)
    total = len(dot_nodes(full))
    assert total == sg.export.to_networkx(outputs).number_of_nodes()
    text = render_source(outputs, view=view, max_nodes=30, collapse=False)
    note = re.search(r'elided \[label="(\d+) of (\d+) nodes elided\\n\(max_nodes=30\)', text)
    assert note, text[-500:]
    assert int(note.group(2)) == total and int(note.group(1)) == total - 30
    if view == "ops":
        assert len([n for n in dot_nodes(text) if n.startswith("v")]) == 30
    assert "elided" not in render_source(outputs, view=view, max_nodes=total, collapse=False)


def test_long_labels_are_capped():
    x = sg.vector("x_" + "very_long_name" * 6)
    text = render_source(sg.exp(x), view="ops")
    label = re.search(r'label="(x_very[^"\\]*)', text).group(1)
    assert len(label) <= 36 and label.endswith("…")


# --------------------------------------------------------------------------- errors


def test_without_dot_the_dot_text_is_written_and_the_hint_raised(model, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    target = tmp_path / "train.svg"
    with pytest.raises(GraphvizNotFound) as info:
        render(model.train_function, target, view="layers")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "conda" in message and str(tmp_path / "train.dot") in message
    assert info.value.dot_path == str(tmp_path / "train.dot")
    assert not target.exists()
    written = (tmp_path / "train.dot").read_text()
    assert written.startswith("digraph") and "∂ dense_1" in written


def test_dot_rank_failure_is_retried_with_global_ranking(tmp_path, monkeypatch):
    """dot 2.43 fails on some graphs with per-cluster ranking ("trouble in init_rank");
    render retries with -Gnewrank=true.  A stand-in dot fails exactly like that and records
    its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.txt"
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\n"
                    f'echo "$*" >> "{log}"\n'
                    'case "$*" in *newrank*) cat; exit 0;; esac\n'
                    'echo "Error: trouble in init_rank" >&2; exit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    x = sg.vector("x")
    target = tmp_path / "g.svg"
    render(sg.exp(x), target)
    calls = log.read_text().splitlines()
    assert calls == ["-Tsvg", "-Tsvg -Gnewrank=true"]
    assert target.read_text().startswith("digraph")  # the stand-in echoes its input


def _slow_dot(tmp_path, monkeypatch, seconds=30):
    """A stand-in ``dot`` on PATH that takes ``seconds`` to draw anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text(f"#!/bin/sh\nexec sleep {seconds}\n")  # killed itself
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_a_layout_past_the_timeout_is_stopped_and_the_dot_text_written(tmp_path, monkeypatch):
    """dot 2.43 took over 100 s for a 350-node LSTM step (1.5 s at 100 nodes): render stops
    it at ``timeout`` and leaves the DOT text, instead of hanging."""
    _slow_dot(tmp_path, monkeypatch)
    target = tmp_path / "g.svg"
    x = sg.vector("x")
    start = time.monotonic()
    with pytest.raises(GraphvizTimeout) as info:
        render(sg.exp(x) + x, target, timeout=0.5)
    assert time.monotonic() - start < 10
    assert "dot did not draw" in str(info.value) and "in 0.5 s (3 nodes" in str(info.value)
    assert "max_nodes" in str(info.value) and info.value.dot_path == str(tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text().startswith("digraph") and not target.exists()
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0 or None"):
        render(x, target, timeout=0)


def test_symgraph_graph_reports_a_layout_timeout_in_one_line(tmp_path, monkeypatch, capsys):
    from frontends.cli import main
    from frontends.spec import DEFAULT_SPEC

    _slow_dot(tmp_path, monkeypatch)
    spec = tmp_path / "digits.yaml"
    spec.write_text(DEFAULT_SPEC.read_text())
    assert main(["graph", str(spec), "-o", str(tmp_path / "g.svg"), "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("symgraph graph: error: dot did not draw") and err.count("\n") == 1
    assert str(tmp_path / "g.dot") in err


def test_bad_arguments(model, tmp_path):
    with pytest.raises(ValueError, match="unknown view 'kernel'"):
        render(model.train_function, tmp_path / "g.svg", view="kernel")
    with pytest.raises(ValueError, match="format of .*g.jpeg"):
        render(model.train_function, tmp_path / "g.jpeg")
    with pytest.raises(ValueError, match="max_nodes"):
        render(model.train_function, tmp_path / "g.dot", max_nodes=0)
    with pytest.raises(TypeError, match="rewritten=True .* not a Function"):
        render(model.train_graph[0], tmp_path / "g.dot", rewritten=True)
    with pytest.raises(TypeError, match="Variables"):
        render([1.0], tmp_path / "g.dot")


def test_rewritten_graph_of_a_function(model):
    before = render_source(model.train_function, view="ops", max_nodes=None)
    after = render_source(model.train_function, view="ops", rewritten=True, max_nodes=None)
    f = model.train_function
    after_ids = {f"v{v.id}" for v in f.graph_outputs + f.graph_updates}
    assert after_ids <= set(dot_nodes(after))
    assert not after_ids & set(dot_nodes(before))
    assert after.count("(new)") == before.count("(new)") == len(f.updates)


def test_sg_render_is_the_function_even_after_its_module_is_imported():
    import symgraph.rendering  # noqa: F401  (a submodule named like the function would shadow it)
    assert callable(sg.render) and sg.render is render


# --------------------------------------------------------------------------- repeated structure


def scoped_chain(kinds: list[str], width: int = 4):
    """Layers ``layer_<i>`` (activation ``kinds[i - 1]``), mse cost, its gradient and SGD
    updates; returns (outputs, updates, each layer's output)."""
    x, y = sg.matrix("x", dtype="float32"), sg.matrix("y", dtype="float32")
    h, params, outs = x, [], []
    for i, kind in enumerate(kinds, start=1):
        W = sg.shared(np.eye(width, dtype="float32"), name=f"layer_{i}/W")
        b = sg.shared(np.zeros(width, dtype="float32"), name=f"layer_{i}/b")
        params += [W, b]
        with sg.name_scope(f"layer_{i}"):
            h = getattr(sg.nn, kind)(h @ W + b)
        outs.append(h)
    cost = sg.mean((h - y) ** 2)
    grads = sg.grad(cost, params)
    updates = [(p, p - np.float32(0.1) * g) for p, g in zip(params, grads, strict=True)]
    return [cost, *grads], updates, outs


@pytest.fixture(scope="module")
def deep():
    return scoped_chain(["tanh"] * 100)


def repeated_nodes(text: str) -> dict[str, str]:
    """{node id: label} of the collapsed blocks' nodes in DOT text."""
    return {name: re.search(r'label="([^"]*)"', attrs).group(1)
            for name, attrs in dot_nodes_any(text).items() if "repeated" in attrs}


def dot_nodes_any(text: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*(\w+) \[(.*)\]$", text, re.M))


@needs_dot
def test_a_100_layer_chain_draws_first_and_last_layers_and_one_block(deep, tmp_path):
    outputs, updates, _ = deep
    total = sg.export.to_networkx(outputs, updates=updates).number_of_nodes()
    path = render(outputs, tmp_path / "deep.svg", updates=updates)
    nodes = svg_nodes(path)  # parses as XML
    assert len(nodes) < total / 8
    clusters = svg_clusters(path)
    for name in ("layer_1", "layer_2", "layer_100", "layer_3 … layer_99"):
        assert any(c.split(" ×")[0].startswith(name) for c in clusters), name
    # the layers in the block have no cluster of their own
    assert "layer_3" not in clusters and "layer_50" not in clusters
    texts = [" ".join(t) for t, _ in nodes.values()]
    # layer_1 reads x, so its gradient has no input part: layers 2..100 are alike
    assert sum("×97 like layer_2" in t for t in texts) == 2  # forward and gradient
    assert "elided" not in nodes


def test_edges_into_and_out_of_a_block_carry_the_shape(deep):
    outputs, updates, outs = deep
    text = render_source(outputs, updates=updates)
    blocks = repeated_nodes(text)
    forward = next(n for n, label in blocks.items() if "matmul, add, tanh" in label)
    assert "W (4, 4), b (4,)" in blocks[forward]
    into = re.findall(rf"^\s*(\w+) -> {forward} \[(.*)\]$", text, re.M)
    assert [(src, attrs) for src, attrs in into if src != forward and "d84315" not in attrs] \
        == [(f"v{outs[1].id}", 'label="(?, 4)" penwidth=1.6 weight=8')]
    nodes = dot_nodes(text)
    out_of = [dst for dst, attrs in re.findall(rf"^\s*{forward} -> (\w+) \[(.*)\]$", text, re.M)
              if dst.startswith("v") and 'class="forward"' in nodes[dst]]
    matmul_100 = outs[99].owner.inputs[0].owner.inputs[0].owner  # tanh(add(matmul, b))
    assert out_of == [f"v{matmul_100.outputs[0].id}"]
    # the chain inside the block: 96 links from one layer to the next
    assert re.search(rf"{forward} -> {forward} \[label=\"×96\"", text)
    # the block's 97 layers update 194 parameters through the update block
    assert re.search(r'label="\d+ parameters \(new\)"', text)


def test_collapse_false_is_the_node_per_variable_picture(deep):
    outputs, updates, _ = deep
    text = render_source(outputs, updates=updates, collapse=False, max_nodes=None)
    total = sg.export.to_networkx(outputs, updates=updates).number_of_nodes()
    assert len([n for n in dot_nodes(text) if n.startswith("v")]) == total
    assert "repeated" not in text and "×" not in text


def test_collapsing_happens_before_max_nodes_and_the_note_counts_what_is_left_out(deep):
    outputs, updates, _ = deep
    total = sg.export.to_networkx(outputs, updates=updates).number_of_nodes()
    text = render_source(outputs, updates=updates, max_nodes=40)
    note = re.search(r'elided \[label="(\d+) of (\d+) nodes elided', text)
    assert note and int(note.group(2)) == total
    drawn = [n for n in dot_nodes_any(text) if re.fullmatch(r"v\d+|r\d+[fgu]\d*", n)]
    assert len(drawn) <= 40
    # the forward block is among the first 40 drawn nodes, and stands for 97 layers
    assert any("×97 like layer_2" in label for label in repeated_nodes(text).values())
    uncapped = render_source(outputs, updates=updates, max_nodes=None)
    assert "elided" not in uncapped


def test_two_layer_kinds_are_not_collapsed_together():
    outputs, updates, _ = scoped_chain(["tanh"] * 6 + ["relu"] * 6)
    text = render_source(outputs, updates=updates)
    titles = set(re.findall(r'label="(layer_\d+ … layer_\d+)"', text))
    # layer_1 reads x (no input gradient), so the tanh run is layer_2..6 and the relu run
    # layer_7..12; each draws its first and last layer in full
    assert titles == {"layer_3 … layer_5", "layer_8 … layer_11"}
    blocks = [label for label in repeated_nodes(text).values() if "add" in label]
    assert sorted(b.split("\\n")[0] for b in blocks) == ["×3 like layer_2", "×4 like layer_7"]
    assert all(("tanh" in b) != ("relu" in b) for b in blocks)


@pytest.mark.parametrize("view", ["ops", "layers"])
def test_different_widths_are_different_structure(view):
    x = sg.matrix("x", dtype="float32")
    h = x
    for i, width in enumerate([4, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8]):
        W = sg.shared(np.ones((h.shape[1] or 4, width), dtype="float32"), name=f"layer_{i}/W")
        with sg.name_scope(f"layer_{i}"):
            h = sg.tanh(h @ W)
    text = render_source(sg.sum(h), view=view)
    assert set(re.findall(r"(layer_\d+ … layer_\d+)", text)) == {
        "layer_2 … layer_4", "layer_8 … layer_10"}  # layer_6 has the (4, 8) weight


def test_a_loop_without_scopes_collapses_by_source_line():
    import inspect

    outputs = chain(20)
    lines, first = inspect.getsourcelines(chain)
    loop_line = first + next(k for k, ln in enumerate(lines) if "h = sg.tanh(h @ W)" in ln)
    text = render_source(outputs, view="ops")
    blocks = repeated_nodes(text)
    site = f"test_render.py:{loop_line}"
    forward = [label for label in blocks.values() if "matmul, tanh" in label]
    assert len(forward) == 1 and site in forward[0]
    repeats = int(re.match(r"×(\d+) iterations", forward[0]).group(1))
    # 20 iterations, the first and last drawn; the first reads x, so it may stand apart
    assert repeats in (17, 18)
    drawn_ops = [n for n in dot_nodes(text) if n.startswith("v")]
    assert len(drawn_ops) < sg.export.to_networkx(outputs).number_of_nodes() / 2
    assert len(set(re.findall(r"v\d+ -> (r\d+f) ", text))) == 1  # one block, entered once


def test_an_unrolled_recurrence_reading_its_own_step_collapses_forward_and_gradient():
    """Each step reads x[:, t] for its own t (and its gradient scatters into that slot):
    the steps differ only in that index, and are drawn as one unit (the steps of an
    unrolled RNN were drawn in full: 400 nodes that dot could not lay out in 100 s)."""
    T = 12
    x = sg.tensor("x", ("batch", T, 3))
    U = sg.shared(np.full((3, 3), 0.1), name="U")
    h = sg.tanh(x[:, 0])
    for t in range(1, T):
        h = sg.tanh(x[:, t] + h @ U)
    gx, gU = sg.grad(sg.sum(h), [x, U])
    text = render_source([gx, gU], view="ops", max_nodes=None)
    blocks = list(repeated_nodes(text).values())
    counts = [int(re.match(r"×(\d+) iterations", label).group(1)) for label in blocks
              if re.match(r"×\d+ iterations", label)]
    forward = [label for label in blocks if "getitem" in label and "tanh" in label]
    assert forward, blocks
    # the 11 steps after the first: two drawn in full, at least 7 in one block each way
    assert sum(c >= 7 for c in counts) >= 2, blocks
    drawn = [n for n in dot_nodes(text) if n.startswith("v")]
    assert len(drawn) < render_source([gx, gU], view="ops", max_nodes=None,
                                      collapse=False).count("[label") / 2


def test_layers_view_collapses_the_run_into_one_box_pair(deep, tmp_path):
    outputs, updates, _ = deep
    text = render_source(outputs, view="layers", updates=updates)
    assert len(set(re.findall(r"^\s*(b\d+) \[", text, re.M))) < 20
    labels = re.findall(r'^\s*b\d+ \[.*label="([^"]*)"', text, re.M)
    assert any(lab.startswith("×97 like layer_2") for lab in labels)
    assert any(lab.startswith("∂ ×97 like layer_2") for lab in labels)
    assert "label=\"layer_3 … layer_99\"" in text or "label=layer_3" not in text
    assert re.search(r'(b\d+) -> \1 \[label="×96"', text)


@needs_dot
def test_png_dpi_sets_the_resolution(model, tmp_path):
    import struct

    def width(path) -> int:  # the PNG header's IHDR width
        return struct.unpack(">I", path.read_bytes()[16:20])[0]

    small = render(model.train_function, tmp_path / "a.png", view="layers", dpi=40)
    large = render(model.train_function, tmp_path / "b.png", view="layers", dpi=80)
    ratio = width(tmp_path / "b.png") / width(tmp_path / "a.png")
    assert small.endswith("a.png") and large.endswith("b.png")
    assert 1.9 < ratio < 2.1
    with pytest.raises(ValueError, match="dpi"):
        render(model.train_function, tmp_path / "c.png", dpi=5000)


@needs_dot
@pytest.mark.parametrize("view", ["ops", "layers"])
def test_names_with_brackets_ampersands_and_backslashes_draw_as_written(tmp_path, view):
    """Layer (scope) names, update targets and the graph name reached the graphviz package
    unescaped: '<logits>' became an HTML label (drawn 'logits'), '<p&q>' made dot fail, and
    a trailing backslash ended the quoted string (a syntax error)."""
    for name in ("<logits>", "<p&q>", "dense\\"):
        m = fe.Sequential([fe.layers.Dense(2, name=name)], input_shape=(3,), seed=0)
        m.compile(optimizer="sgd", backend="numpy")
        path = tmp_path / f"{view}.svg"
        render(m.train_function, str(path), view=view)
        texts = [t.text for t in ET.parse(path).getroot().iter(f"{SVG}text")]
        assert name in texts, (name, texts)
    x = sg.vector("x", 3)
    loss = (x * 2.0).sum()
    loss.name = "loss\\"
    render(loss, str(tmp_path / "name.svg"), view=view)


def test_a_layer_named_like_a_gradient_compartment_keeps_its_own_cluster():
    """The compartment of grad call 1 was keyed by the string 'grad1': a layer of that name
    shared its cluster, and the gradient nodes were drawn inside the layer's box."""
    def clusters(name):
        m = fe.Sequential([fe.layers.Dense(3, activation="tanh", name=name)], input_shape=(2,),
                          seed=0)
        m.compile(optimizer="sgd", backend="numpy")
        source = render_source(m.train_function, view="ops")
        labels = re.findall(r'^\t+color=.*?\blabel=("[^"]*"|\S+)', source, re.M)
        return source.count("subgraph cluster_"), sorted(labels)

    count, labels = clusters("grad1")
    assert (count, labels) == (clusters("dense_out")[0],
                               sorted(lab.replace("dense_out", "grad1")
                                      for lab in clusters("dense_out")[1]))


@needs_dot
@pytest.mark.parametrize("view", ["ops", "layers"])
def test_names_that_look_like_html_entities_draw_as_written(tmp_path, view):
    """dot decodes entities in quoted labels: a scope and variable named 'R&amp;D' were
    drawn 'R&D' (and 'x&#65;' as 'xA'). The oracle is the SVG's text."""
    for name in ("R&amp;D", "x&#65;"):
        x = sg.vector(name, 3)
        W = sg.shared(np.ones(3), name="W")
        with sg.name_scope(name):
            loss = (x * W).sum()
        path = tmp_path / f"{view}.svg"
        render([loss, sg.grad(loss, W)], str(path), view=view)
        texts = [t.text for t in ET.parse(path).getroot().iter(f"{SVG}text")]
        assert name in texts, (name, texts)
