"""Pictures of a graph: ``sg.render`` draws it through Graphviz (.svg, .png, .pdf or .dot).

Where it fits: like ``symgraph.printing`` and ``symgraph.export`` it reads the user's graph
(a Function's outputs and updates, or the graph the rewrites made of them) and never
changes it; it shares their roles (input, parameter, constant, forward, gradient,
update), op labels and ``DOT_STYLES``. What it adds is layout for humans:

* ``view="ops"`` -- every node, styled by role, clustered by ``sg.name_scope`` (a model's
  layer names; ``a/b`` nests), the nodes each ``grad`` call added in a dashed
  compartment of their forward node's scope, edges labelled with shapes, and a legend.
* ``view="layers"`` -- one cluster per scope with a forward box and a gradient box side
  by side; unscoped nodes go to "loss" (forward and gradient) and "updates".

Repeated structure is drawn once (``collapse=True``, ``symgraph.render_collapse`` finds
it): a run of equal sibling scopes (``dense_2`` ... ``dense_100``) or of loop iterations
(the same source lines) keeps its first and last unit and becomes one block in between,
"×97 like dense_2", one node per part (forward, gradient, update) whose edges in and out
carry the shapes and counts, and a self-loop the links from one unit to the next.

Then a graph over ``max_nodes`` keeps its first nodes in topological order (inputs,
forward, then gradient and update arithmetic; a block counts one a part) and replaces the
rest by one note naming how many were left out, so a 10,000-node chain still renders in
a second. The Python package
``graphviz`` builds the DOT text; the ``dot`` program draws it. Without ``dot`` the DOT
text is written next to the requested file and ``GraphvizNotFound`` says how to install it.
``dot``'s layout time grows steeply with crossing edges (an unrolled LSTM's step with its
gradient: 1.5 s at 100 nodes, 6 s at 300, over 100 s at 350), so ``dot`` gets ``timeout``
seconds; past it the DOT text is written instead and ``GraphvizTimeout`` says what to draw.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Literal

from symgraph.kernel_view import kernel_source
from symgraph.printing import GraphLike, UpdatesLike
from symgraph.render_graph import NEWRANK_LIMIT, DrawnGraph, new_digraph
from symgraph.render_views import layers_view, ops_view

__all__ = ["GraphvizNotFound", "GraphvizTimeout", "render", "render_source"]

#: Output formats drawn by ``dot`` (by the path's extension); .dot and .gv write the text.
FORMATS = ("svg", "png", "pdf")
TEXT_FORMATS = ("dot", "gv")
VIEWS = ("ops", "layers", "kernels", "profile")
#: ``max_nodes="auto"``: the views drawing a node per variable stop at this many (dot's
#: layout time); the layers view draws a box per layer, whatever the graph's size, and
#: is not capped (at 400 the digits LSTM's step lost its last layer's gradient and
#: updates from the picture).
DEFAULT_MAX_NODES = 400
INSTALL_HINT = ("install Graphviz's dot program: `apt-get install graphviz` (Debian/Ubuntu), "
                "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`")


class GraphvizNotFound(RuntimeError):
    """The ``dot`` program is not on PATH; the DOT text was written to ``dot_path``."""

    def __init__(self, message: str, dot_path: str):
        super().__init__(message)
        self.dot_path = dot_path


class GraphvizTimeout(RuntimeError):
    """``dot`` did not lay the graph out in time; the DOT text was written to ``dot_path``."""

    def __init__(self, message: str, dot_path: str):
        super().__init__(message)
        self.dot_path = dot_path


# --------------------------------------------------------------------------- entry points


def _run_dot(command: list[str], source: str, path: str, deadline: float | None,
             timeout: float | None) -> subprocess.CompletedProcess:
    """``dot`` on ``source``, killed at ``deadline`` (then the DOT text is written next to
    ``path`` and ``GraphvizTimeout`` raised)."""
    left = None if deadline is None else max(deadline - time.monotonic(), 0.01)
    try:
        return subprocess.run(command, input=source.encode(), capture_output=True,
                              check=False, timeout=left)
    except subprocess.TimeoutExpired:  # run() has killed dot
        dot_path = os.path.splitext(path)[0] + ".dot"
        _write_text(dot_path, source)
        nodes = source.count(" [shape=")
        raise GraphvizTimeout(
            f"dot did not draw {path} in {timeout:g} s ({nodes} nodes; its layout time grows "
            "steeply with crossing edges): draw fewer nodes (max_nodes, `--max-nodes`) or "
            f"the layers view, or allow more time (timeout, `--timeout`). The DOT text is in "
            f"{dot_path}",
            dot_path) from None


def render_source(vars_or_function: GraphLike, view: str = "ops", *, rewritten: bool = False,
                  max_nodes: int | None | Literal["auto"] = "auto", updates: UpdatesLike = None,
                  rankdir: str = "TB", collapse: bool = True,
                  profile: Sequence[dict] | None = None) -> str:
    """The DOT text ``render`` would draw (for a notebook's own display, or a diff).

    ``updates`` and ``collapse`` apply to the views "ops" and "layers"; ``profile`` to
    "kernels" and "profile" (drawn by ``symgraph.kernel_view``).

    >>> text = sg.render_source(f, view="layers")   # 'digraph ...'
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: expected one of {', '.join(VIEWS)}")
    if isinstance(max_nodes, str) and max_nodes == "auto":
        max_nodes = None if view == "layers" else DEFAULT_MAX_NODES
    if view in ("kernels", "profile"):
        return kernel_source(vars_or_function, view, rewritten=rewritten, max_nodes=max_nodes,
                             rankdir=rankdir, profile=profile)
    graph = DrawnGraph(vars_or_function, updates, rewritten, max_nodes, collapse=collapse)
    g = new_digraph(getattr(vars_or_function, "name", None) or "symgraph", rankdir)
    drawn = len(graph.kept) + len(graph.parts)
    if view == "layers" or drawn <= NEWRANK_LIMIT:
        g.attr(newrank="true")
    (ops_view if view == "ops" else layers_view)(graph, g)
    return g.source


def render(vars_or_function: GraphLike, path: str | os.PathLike, view: str = "ops", *,
           rewritten: bool = False, max_nodes: int | None | Literal["auto"] = "auto",
           updates: UpdatesLike = None,
           view_file: bool = False, rankdir: str = "TB", collapse: bool = True,
           profile: Sequence[dict] | None = None, dpi: int = 110,
           timeout: float | None = 60.0) -> str:
    """Draw the graph to ``path`` (.svg, .png, .pdf through ``dot``; .dot/.gv: DOT text).

    Pictures show what ``grad`` added and which layer made each node, which the text
    views cannot. ``vars_or_function`` is a Variable, a list, or a Function (its outputs
    and updates; ``rewritten=True``: the graph after its rewrites). ``max_nodes`` caps the
    variables drawn (``"auto"``: 400, and no cap for the layers view, whose boxes would
    otherwise miss the ops past the cap; ``None`` draws everything); ``collapse=False``
    draws repeated layers one by one instead of as one "×N" block. Views: ``"ops"``,
    ``"layers"``, and for a compiled function ``"kernels"`` (its fused kernels around the
    user's nodes) and ``"profile"`` (kernels shaded by ``profile=f.profile(...)``, by
    default the function's last profile; see ``symgraph.kernel_view``). ``dpi`` sets a
    PNG's resolution (110: readable text without multi-megabyte files). ``timeout``:
    seconds ``dot`` may take (None: no limit); past them the DOT text is written next to
    ``path`` and ``GraphvizTimeout`` raised. Returns the path written.

    >>> sg.render(model.train_function, "train.svg", view="layers")
    'train.svg'
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS + TEXT_FORMATS:
        raise ValueError(f"cannot tell the format of {path!r}: end it in "
                         f"{', '.join('.' + f for f in FORMATS + TEXT_FORMATS)}")
    if not isinstance(dpi, int) or not 20 <= dpi <= 600:
        raise ValueError(f"dpi must be an int from 20 to 600, got {dpi!r}")
    source = render_source(vars_or_function, view, rewritten=rewritten, max_nodes=max_nodes,
                           updates=updates, rankdir=rankdir, collapse=collapse,
                           profile=profile)
    if ext in TEXT_FORMATS:
        _write_text(path, source)
        return path
    if shutil.which("dot") is None:
        dot_path = os.path.splitext(path)[0] + ".dot"
        _write_text(dot_path, source)
        raise GraphvizNotFound(f"cannot draw {path}: Graphviz's `dot` is not on PATH; "
                               f"{INSTALL_HINT}. The DOT text is in {dot_path}", dot_path)
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    command = ["dot", f"-T{ext}", *([f"-Gdpi={dpi}"] if ext == "png" else [])]
    deadline = None if timeout is None else time.monotonic() + timeout
    done = _run_dot(command, source, path, deadline, timeout)
    if done.returncode != 0 and b"init_rank" in done.stderr:
        # dot 2.43's per-cluster ranking fails on some graphs ("trouble in init_rank", seen
        # on the digits model's ops view); global ranking draws them, slower on big graphs
        done = _run_dot([*command, "-Gnewrank=true"], source, path, deadline, timeout)
    if done.returncode != 0:
        # dot can print thousands of lines (its rank dump); the first few say what failed
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        detail = "\n".join(lines[:5]) + (f"\n... ({len(lines) - 5} more lines)"
                                          if len(lines) > 5 else "")
        raise RuntimeError(f"dot failed drawing {path} (exit {done.returncode}); try a "
                           f"smaller max_nodes or the .dot output:\n{detail}")
    with open(path, "wb") as handle:
        handle.write(done.stdout)
    if view_file:
        import graphviz  # lazy: `import symgraph` must not import graphviz

        graphviz.view(path)
    return path


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
