"""Printing: pprint, debugprint (symgraph.printing), to_dot, to_networkx (symgraph.export)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import symgraph as sg
import symgraph.export  # noqa: F401  (sg.export.DOT_STYLES)
from symgraph.graph import variables

# --------------------------------------------------------------------------- graphs


def _mlp():
    """A 2-layer MLP loss (named "loss") and its gradients."""
    x = sg.tensor("x", shape=("batch", 4), dtype="float32")
    y = sg.tensor("y", shape=("batch",), dtype="int64")
    W1 = sg.shared(np.zeros((4, 5), "float32"), name="W1")
    b1 = sg.shared(np.zeros(5, "float32"), name="b1")
    W2 = sg.shared(np.zeros((5, 3), "float32"), name="W2")
    b2 = sg.shared(np.zeros(3, "float32"), name="b2")
    h = sg.tanh(x @ W1 + b1)
    loss = sg.nn.cross_entropy(h @ W2 + b2, y)
    loss.name = "loss"
    grads = sg.grad(loss, [W1, b1, W2, b2])
    return dict(x=x, y=y, W1=W1, b1=b1, W2=W2, b2=b2, h=h, loss=loss, grads=grads)


def _tanh_chain(depth: int):
    x = sg.vector("x", 3)
    h = x
    for _ in range(depth):
        h = sg.tanh(h)
    cost = h.sum()
    return cost, sg.grad(cost, x)


# --------------------------------------------------------------------------- pprint


def test_pprint_affine_is_infix_with_parentheses():
    x = sg.tensor("x", shape=("batch", 784), dtype="float32")
    W = sg.shared(np.zeros((784, 10), "float32"), name="W")
    b = sg.shared(np.zeros(10, "float32"), name="b")
    assert sg.pprint(x @ W + b) == "(x @ W) + b"
    assert sg.pprint(x) == "x"


def test_pprint_cross_entropy_exact():
    x = sg.tensor("x", shape=("batch", 784), dtype="float32")
    y = sg.tensor("y", shape=("batch",), dtype="int64")
    W = sg.shared(np.zeros((784, 10), "float32"), name="W")
    assert (sg.pprint(sg.nn.cross_entropy(x @ W, y))
            == "-(mean(sum(where(one_hot(y, 10) != 0.0, log_softmax(x @ W), 0.0), axis=1)))")


def test_pprint_transpose_getitem_cast_constants():
    m = sg.matrix("m", (3, 4))
    v = sg.vector("v", 3)
    assert sg.pprint(sg.cast(m.T[0:2], "float32")) == "float32(m.T[0:2])"
    assert sg.pprint(m[:, 1]) == "m[:, 1]"
    assert sg.pprint((m + m).T) == "(m + m).T"
    assert sg.pprint(v * 2.0) == "v * 2.0"
    assert sg.pprint(-v) == "-v"
    assert sg.pprint(v - sg.exp(v)) == "v - exp(v)"
    assert sg.pprint(v + np.array([1.0, 2.0, 3.0])) == "v + [1.0, 2.0, 3.0]"
    assert sg.pprint(m + np.ones((3, 4))) == "m + const(3, 4)"
    assert sg.pprint(m.sum(axis=0, keepdims=True)) == "sum(m, axis=0, keepdims=True)"
    assert sg.pprint(sg.nn.softmax(m, axis=0)) == "softmax(m, axis=0)"
    assert sg.pprint(m.max()) == "max(m)"


def test_pprint_keeps_the_ops_on_a_constant_matrix():
    """A matrix constant prints as its shape, so an op on it stays visible (a gradient's
    ``A.T @ G`` printed as ``const(2, 2) @ G``); small constant arithmetic still folds."""
    c = sg.constant(np.arange(4.0).reshape(2, 2))
    w = sg.matrix("w", (2, 2))
    assert sg.pprint(c.T @ w) == "const(2, 2).T @ w"
    assert sg.pprint(c @ w) == "const(2, 2) @ w"
    assert sg.pprint(sg.constant(3.0) - 1.0 + w) == "2.0 + w"
    assert sg.pprint(sg.constant(np.arange(3.0)) * 2.0 + w[0, :1]) == "[0.0, 2.0, 4.0] + w[0, :1]"


def test_pprint_binds_shared_subexpressions_once_with_fresh_names():
    x = sg.vector("x", 3)
    taken = sg.vector("x1", 3)  # a user's name must not be reused for a binding
    h = sg.exp(x * taken + 1.0)
    assert sg.pprint(h / h.sum()) == "x2 := exp((x * x1) + 1.0)\nx2 / sum(x2)"
    small = sg.tanh(x)  # used twice but tiny: inlined
    assert sg.pprint(small * small) == "tanh(x) * tanh(x)"


def test_pprint_names_clashing_leaves_apart():
    a, b = sg.vector("x", 3), sg.vector("x", 3)
    assert sg.pprint(a + b) == "x + x_2"


def test_pprint_list_and_updates():
    x = sg.vector("x", 3)
    W = sg.shared(np.zeros(3), name="W")
    s = (x * W).sum()
    s.name = "s"
    text = sg.pprint([s, x], updates={W: W - 0.5 * x})
    assert text.splitlines() == ["s = sum(x * W)", "out1 = x", "W <- W - (0.5 * x)"]
    V = sg.shared(np.zeros(3), name="V")  # updated, but read by nothing printed
    assert sg.pprint(s, updates={V: x * 2}).splitlines() == ["s = sum(x * W)", "V <- x * 2.0"]


def test_pprint_mlp_gradient_mentions_gradient_names():
    g = _mlp()
    text = sg.pprint(g["grads"][0])
    assert "d(loss)/d(loss) := fill(" in text
    assert text.splitlines()[-1].startswith("x.T @ ")
    listing = sg.pprint([g["loss"], *g["grads"]]).splitlines()
    for name in ("loss", "d(loss)/d(W1)", "d(loss)/d(b1)", "d(loss)/d(W2)", "d(loss)/d(b2)"):
        assert sum(line.startswith(f"{name} = ") for line in listing) == 1
    # outputs come after what they use: the loss line precedes the seed that reads it
    names = [line.split(" ")[0] for line in listing]
    assert names.index("loss") < names.index("d(loss)/d(loss)")


def test_pprint_of_function_uses_outputs_and_updates():
    g = _mlp()
    W1, gW1 = g["W1"], g["grads"][0]
    f = sg.function([g["x"], g["y"]], g["loss"], updates={W1: W1 - 0.1 * gW1})
    lines = sg.pprint(f).splitlines()
    assert lines[-1] == "W1 <- W1 - (0.1 * (d(loss)/d(W1)))"
    assert any(line.startswith("d(loss)/d(W1) := x.T @ ") for line in lines)


def test_pprint_is_linear_in_depth():
    sizes = []
    for depth in (100, 400):
        _, g = _tanh_chain(depth)
        text = sg.pprint(g)
        assert len(text.splitlines()) < 3 * depth
        assert max(len(line) for line in text.splitlines()) < 200
        sizes.append(len(text))
    assert sizes[1] < 5 * sizes[0]


# --------------------------------------------------------------------------- debugprint


def test_debugprint_small_tree_exact():
    x = sg.tensor("x", shape=("batch", 784), dtype="float32")
    W = sg.shared(np.zeros((784, 10), "float32"), name="W")
    b = sg.shared(np.zeros(10, "float32"), name="b")
    assert sg.debugprint(x @ W + b).splitlines() == [
        "add float32(batch, 10)",
        "|- matmul float32(batch, 10)",
        "|  |- x float32(batch, 784) [input]",
        "|  `- W float32(784, 10) [parameter]",
        "`- b float32(10,) [parameter]",
    ]


def test_debugprint_prints_shared_subtree_once():
    x = sg.vector("x", 3)
    W = sg.shared(np.ones((3, 3)), name="W")
    h = sg.tanh(x @ W)
    text = sg.debugprint((h * h).sum() + h.max())
    assert sum("tanh" in line for line in text.splitlines()) == 1
    assert text.count("matmul") == 1
    assert "#1 tanh float64(3,)" in text
    assert len(re.findall(r"\*1\b", text)) == 2  # the two later uses


def test_debugprint_mlp_gradient_marks_gradient_nodes():
    g = _mlp()
    gW1 = g["grads"][0]
    text = sg.debugprint([g["loss"], gW1])
    lines = text.splitlines()
    assert "matmul float32(4, 5) 'd(loss)/d(W1)' [grad of matmul]" in lines
    assert any("'d(loss)/d(loss)' [grad]" in line for line in lines)
    assert lines[0].endswith("neg float32() 'loss'")
    assert "[grad of log_softmax]" in text and "[grad of tanh]" in text
    assert "softmax" in text and "one_hot{3}" in text
    # the forward tanh is printed once although the gradient reads it twice
    assert sum(" tanh float32(batch, 5)" in line for line in lines) == 1


def test_debugprint_omits_dead_code():
    x = sg.vector("x", 3)
    out = sg.exp(x)
    dead = sg.log(out) * 7.0  # built but not asked for
    assert dead is not None
    text = sg.debugprint(out)
    assert "log" not in text and "mul" not in text
    assert text.splitlines() == ["exp float64(3,)", "`- x float64(3,) [input]"]


def test_debugprint_is_linear_in_depth():
    counts, sizes = [], []
    for depth in (100, 400):
        cost, g = _tanh_chain(depth)
        text = sg.debugprint([cost, g])
        lines = text.splitlines()
        assert len(lines) < 10 * depth
        assert max(len(line) for line in lines) < 200  # indentation is capped
        assert sum(" tanh " in line for line in lines) == depth  # each forward node once
        counts.append(len(lines))
        sizes.append(len(text))
    assert counts[1] < 5 * counts[0] and sizes[1] < 5 * sizes[0]


def test_debugprint_deep_subtrees_are_continued_unindented():
    cost, _ = _tanh_chain(100)
    lines = sg.debugprint(cost).splitlines()
    defined = {m.group(1) for line in lines for m in [re.match(r"#(\d+) ", line.lstrip(" `|-"))]
               if m}
    used = {m for line in lines for m in re.findall(r"\*(\d+)", line)}
    assert used and used <= defined


def test_debugprint_of_function_shows_updates():
    g = _mlp()
    W1, gW1 = g["W1"], g["grads"][0]
    f = sg.function([g["x"], g["y"]], g["loss"], updates={W1: W1 - 0.1 * gW1})
    text = sg.debugprint(f)
    assert "W1 <- sub float32(4, 5) [update]" in text
    assert "'d(loss)/d(W1)' [grad of matmul]" in text


# --------------------------------------------------------------------------- to_dot


def _dot_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) tokens of DOT text; quoted strings are unescaped."""
    tokens, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == '"':
            j, value = i + 1, []
            while text[j] != '"':
                if text[j] == "\\":
                    nxt = text[j + 1]
                    value.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
                    j += 2
                else:
                    value.append(text[j])
                    j += 1
            tokens.append(("str", "".join(value)))
            i = j + 1
        elif text.startswith("->", i):
            tokens.append(("op", "->"))
            i += 2
        elif c in "{}[];=,":
            tokens.append(("op", c))
            i += 1
        else:
            m = re.match(r"[A-Za-z0-9_.#]+", text[i:])
            assert m, f"unexpected character {c!r} in DOT text"
            tokens.append(("id", m.group()))
            i += len(m.group())
    return tokens


def _parse_dot(text: str) -> tuple[dict[str, dict], list[tuple[str, str, dict]]]:
    """A strict little parser for the DOT subset to_dot writes: nodes and edges."""
    tokens = _dot_tokens(text)
    assert tokens[0] == ("id", "digraph") and tokens[2] == ("op", "{")
    assert tokens[-1] == ("op", "}")
    depth = 0
    for _, value in [t for t in tokens if t[0] == "op"]:
        depth += {"{": 1, "}": -1}.get(value, 0)
        assert depth >= 0
    assert depth == 0
    body = tokens[3:-1]
    nodes: dict[str, dict] = {}
    edges: list[tuple[str, str, dict]] = []
    i = 0
    while i < len(body):
        end = body.index(("op", ";"), i)
        stmt = body[i:end]
        i = end + 1
        attrs: dict[str, str] = {}
        if ("op", "[") in stmt:
            start = stmt.index(("op", "["))
            assert stmt[-1] == ("op", "]")
            inner = stmt[start + 1:-1]
            for k in range(0, len(inner), 4):
                key, eq, value = inner[k:k + 3]
                assert eq == ("op", "=") and key[0] == "id" and value[0] in ("str", "id")
                attrs[key[1]] = value[1]
                if k + 3 < len(inner):
                    assert inner[k + 3] == ("op", ",")
            stmt = stmt[:start]
        if len(stmt) == 3 and stmt[1] == ("op", "->"):
            edges.append((stmt[0][1], stmt[2][1], attrs))
        else:
            assert len(stmt) == 1 and stmt[0][0] == "id", stmt
            if stmt[0][1] not in ("graph", "node", "edge"):
                nodes[stmt[0][1]] = attrs
    return nodes, edges


def test_to_dot_is_structurally_valid_and_styles_gradients():
    g = _mlp()
    gW1 = g["grads"][0]
    text = sg.to_dot([g["loss"], gW1])
    nodes, edges = _parse_dot(text)
    assert edges and all(a in nodes and b in nodes for a, b, _ in edges)
    assert len(nodes) == len({v.id for v in variables([g["loss"], gW1])})
    gW1_node = nodes[f"v{gW1.id}"]
    assert gW1_node["class"] == "gradient"
    assert gW1_node["fillcolor"] == sg.export.DOT_STYLES["gradient"]["fillcolor"]
    assert "d(loss)/d(W1)" in gW1_node["label"].split("\n")
    forward = nodes[f"v{g['h'].id}"]
    assert forward["class"] == "forward" and forward["fillcolor"] != gW1_node["fillcolor"]
    assert nodes[f"v{g['W1'].id}"]["class"] == "parameter"
    assert nodes[f"v{g['x'].id}"]["class"] == "input"
    fills = {nodes[f"v{g[k].id}"]["fillcolor"] for k in ("x", "W1")}
    assert len(fills) == 2
    assert any(attrs["class"] == "constant" for attrs in nodes.values())


def test_to_dot_labels_edges_with_input_index_only_for_several_inputs():
    x = sg.vector("x", 3)
    W = sg.shared(np.ones((3, 2)), name="W")
    mm = x @ W
    out = sg.exp(mm)
    _, edges = _parse_dot(sg.to_dot(out))
    by_pair = {(a, b): attrs for a, b, attrs in edges}
    assert by_pair[(f"v{x.id}", f"v{mm.id}")]["label"] == "0"
    assert by_pair[(f"v{W.id}", f"v{mm.id}")]["label"] == "1"
    assert "label" not in by_pair[(f"v{mm.id}", f"v{out.id}")]


def test_to_dot_escapes_quotes_and_angle_brackets():
    name = 'W<"1"> \\ {x}'
    W = sg.shared(np.ones(3), name=name)
    cost = (W * W).sum()
    cost.name = "cost"
    g = sg.grad(cost, W)
    text = sg.to_dot([cost, g])
    nodes, _ = _parse_dot(text)
    assert nodes[f"v{W.id}"]["label"].split("\n")[0] == name
    assert f"d(cost)/d({name})" in nodes[f"v{g.id}"]["label"].split("\n")


def test_to_dot_draws_updates():
    x = sg.vector("x", 3)
    W = sg.shared(np.ones(3), name="W")
    cost = (x * W).sum()
    gW = sg.grad(cost, W)
    nodes, edges = _parse_dot(sg.to_dot(cost, updates={W: W - 0.1 * gW}))
    assert any(attrs.get("class") == "update_target" for attrs in nodes.values())
    assert any(attrs.get("class") == "update" for attrs in nodes.values())
    assert all(a in nodes and b in nodes for a, b, _ in edges)


# --------------------------------------------------------------------------- to_networkx


def test_to_networkx_dag_with_roles():
    import networkx as nx

    g = _mlp()
    outs = [g["loss"], *g["grads"]]
    G = sg.to_networkx(outs)
    assert isinstance(G, nx.DiGraph) and nx.is_directed_acyclic_graph(G)
    assert G.number_of_nodes() == len({v.id for v in variables(outs)})
    roles = nx.get_node_attributes(G, "role")
    assert roles[g["W1"].id] == "parameter" and roles[g["x"].id] == "input"
    assert all(roles[v.id] == "gradient" for v in g["grads"])
    assert roles[g["h"].id] == "forward" and roles[g["loss"].id] == "forward"
    constants = [n for n, d in G.nodes(data=True) if isinstance(d["variable"], sg.Constant)]
    assert constants and all(roles[n] == "constant" for n in constants)
    node = G.nodes[g["grads"][0].id]
    assert node["op"] == "matmul" and node["name"] == "d(loss)/d(W1)"
    assert node["dtype"] == "float32" and node["shape"] == (4, 5)
    assert node["grad_of"] == "matmul"
    assert G.nodes[g["x"].id]["shape"] == ("batch", 4) and G.nodes[g["x"].id]["op"] is None
    matmul = g["x"].id, next(s for s in G.successors(g["x"].id) if G.nodes[s]["op"] == "matmul"
                             and G.nodes[s]["role"] == "forward")
    assert G.edges[matmul]["index"] == 0
    assert G.graph["outputs"] == [v.id for v in outs]


def test_to_networkx_update_role_and_function():
    x = sg.tensor("x", shape=("batch", 3))
    W = sg.shared(np.ones((3, 2)), name="W")
    cost = sg.square(x @ W).mean()
    gW = sg.grad(cost, W)
    new_W = W - 0.1 * gW
    f = sg.function([x], cost, updates={W: new_W})
    for G in (sg.to_networkx(f), sg.to_networkx(cost, updates={W: new_W})):
        assert G.nodes[new_W.id]["role"] == "update"
        assert G.nodes[gW.id]["role"] == "gradient"
        assert G.nodes[cost.id]["role"] == "forward"
        assert G.graph["updates"] == {W.id: new_W.id}
        assert G.number_of_nodes() == len({v.id for v in variables([cost, new_W])})


def test_to_networkx_keeps_repeated_inputs_on_one_edge():
    x = sg.vector("x", 3)
    sq = x * x
    G = sg.to_networkx(sq)
    assert G.edges[x.id, sq.id]["indices"] == (0, 1)


def test_import_symgraph_does_not_import_networkx():
    code = ("import sys, symgraph as sg, symgraph.printing; x = sg.vector('x', 3); "
            "sg.pprint(x + 1); sg.debugprint(x); sg.to_dot(x); "
            "print('networkx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("printer", ["pprint", "debugprint", "to_dot"])
def test_printers_reject_non_variables(printer):
    with pytest.raises(TypeError, match="Variables"):
        getattr(sg, printer)([1.0])


def test_a_label_never_names_another_variable():
    """A second 'W' was printed 'W_2' beside a variable named 'W_2' (then 'W_2_2'), and an
    update target nothing printed reads was printed by its raw name, another variable's."""
    a, b, c = sg.vector("W", 2), sg.vector("W", 2), sg.vector("W_2", 2)
    assert sg.pprint(a + b + c) == "(W + W_3) + W_2"
    W1 = sg.shared(np.ones(2), name="W")
    W2 = sg.shared(np.zeros(2), name="W")
    assert sg.pprint(W1 * 2.0, updates={W2: W1 + 1.0}).splitlines() == [
        "out0 = W * 2.0", "W_2 <- W + 1.0"]


# --------------------------------------------------------------------------- printed text vs values

# numpy's meaning of the names pprint prints (the oracle: numpy evaluates the printed text)
_NUMPY_NAMES = {"sum": np.sum, "exp": np.exp, "logical_and": np.logical_and,
                "logical_or": np.logical_or, "logical_not": np.logical_not, "where": np.where}


def _eval_printed(text: str, values: dict) -> dict:
    """Each ``label = expr`` / ``label := expr`` line of ``text`` evaluated by numpy."""
    namespace = {**_NUMPY_NAMES, **values}
    results = {}
    for line in text.splitlines():
        label, expr = re.match(r"(\w+) :?= (.*)$", line).groups()
        namespace[label] = results[label] = eval(expr, namespace)  # noqa: S307
    return results


def test_pprint_of_outputs_prints_an_output_computed_from_constants_alone():
    """An output that folds to a constant (``[1, 2] * 3``) got no ``out1 = ...`` line: the
    list of two outputs printed one, and a list of that output alone printed nothing."""
    a = sg.vector("a", 3, dtype="float64")
    c = sg.constant(np.array([1.0, 2.0])) * 3.0
    av = np.array([0.5, 1.0, 2.0])
    expected = sg.function([a], [a + 1.0, c], backend="numpy")(av)
    printed = _eval_printed(sg.pprint([a + 1.0, c]), {"a": av})
    assert list(printed) == ["out0", "out1"]
    for got, want in zip(printed.values(), expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(_eval_printed(sg.pprint([c]), {})["out0"], expected[1])


@pytest.mark.parametrize("build", [sg.logical_and, sg.logical_or])
def test_pprint_of_logical_ops_on_numbers_is_not_bitwise(build):
    """``logical_and(i, j)`` of integers printed ``i & j``: numpy's (and Python's) bitwise
    and, 1 & 2 = 0, where the graph gives True; symgraph's own ``i & j`` refuses integers."""
    i, j = sg.vector("i", 3, dtype="int64"), sg.vector("j", 3, dtype="int64")
    iv, jv = np.array([1, 2, 0]), np.array([2, 1, 0])
    out = build(i, j)
    expected = sg.function([i, j], out, backend="numpy")(iv, jv)
    got = _eval_printed(f"out = {sg.pprint(out)}", {"i": iv, "j": jv})["out"]
    np.testing.assert_array_equal(got, expected)
    p, q = sg.vector("p", 3, dtype="bool"), sg.vector("q", 3, dtype="bool")
    assert sg.pprint(build(p, q)) in ("p & q", "p | q")       # bools keep the operators


def test_pprint_of_logical_not_is_a_function_numpy_has():
    """``logical_not(x)`` printed ``not(x)``: Python's keyword, an error on an array (and a
    syntax error after ``&``)."""
    a, b = sg.vector("a", 3, dtype="float64"), sg.vector("b", 3, dtype="float64")
    av, bv = np.array([0.5, 1.0, 2.0]), np.array([1.0, 1.0, 1.0])
    out = sg.logical_and(sg.less(a, b), sg.logical_not(sg.less(b, a)))
    expected = sg.function([a, b], out, backend="numpy")(av, bv)
    got = _eval_printed(f"out = {sg.pprint(out)}", {"a": av, "b": bv})["out"]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(subprocess.run(["which", "dot"], capture_output=True).returncode != 0,
                    reason="Graphviz's dot is missing")
@pytest.mark.parametrize("name", ["R&amp;D", "a&lt;b", "x&#65;"])
def test_to_dot_names_that_look_like_entities_draw_as_written(name):
    """dot decodes HTML entities in quoted labels: a variable named 'R&amp;D' was drawn
    'R&D'. The oracle is the text dot draws."""
    import html

    x = sg.vector(name, 3)
    svg = subprocess.run(["dot", "-Tsvg"], input=sg.to_dot(x * 2.0), capture_output=True,
                         text=True, check=True).stdout
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]
    assert name in texts, texts


@pytest.mark.parametrize("make", [
    lambda x, a: sg.squeeze(x, 1), lambda x, a: sg.squeeze(x), lambda x, a: sg.flip(a, 0),
    lambda x, a: sg.flip(a), lambda x, a: sg.flip(sg.squeeze(x, 1), 1) * 2.0,
])
def test_squeeze_and_flip_print_as_numpy_calls_that_compute_the_same(make):
    # they printed as dimshuffle(x, order=(0, 2)) and flip(a, axes=(0,)), which numpy
    # cannot read (np.flip's keyword is axis)
    x = sg.tensor("x", (2, 1, 3))
    a = sg.matrix("a", (2, 3))
    out = make(x, a)
    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=(2, 1, 3)), "a": rng.normal(size=(2, 3))}
    text = sg.pprint(out)
    want = sg.function([x, a], out, backend="numpy")(values["x"], values["a"])
    got = eval(text, {"squeeze": np.squeeze, "flip": np.flip}, values)  # noqa: S307
    np.testing.assert_array_equal(got, want)
