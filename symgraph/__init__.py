"""symgraph: a static symbolic graph of tensor ops, symbol-to-symbol gradients, and compilers.

Pipeline: build a graph (``tensor``, ops) -> ``grad`` adds derivative nodes
to the same graph -> ``function`` rewrites it and hands it to a backend
(``numpy`` reference evaluator, or the LLVM ``codegen``) -> call it.

>>> import symgraph as sg
>>> x = sg.tensor("x", shape=("batch", 3), dtype="float32")
>>> W = sg.shared(np.ones((3, 2), "float32"), name="W")
>>> loss = sg.nn.relu(x @ W).sum()
>>> f = sg.function([x], loss, updates={W: W - 0.1 * sg.grad(loss, W)})
"""

# ruff: noqa: F405  (__all__ names come from the op families' star imports and the lazy table)

from symgraph import nn
from symgraph.check import GradientCheckError, check_grad
from symgraph.clone import clone_replace
from symgraph.evaluate import NonFiniteError
from symgraph.function import Function, function
from symgraph.grad import (
    DISCONNECTED,
    DisconnectedInputError,
    GradNotImplementedError,
    Undefined,
    UndefinedGradError,
    grad,
    hessian,
    hvp,
    jacobian,
)
from symgraph.graph import (
    Apply,
    Constant,
    Op,
    SharedVariable,
    TensorType,
    Variable,
    constant,
    matrix,
    name_scope,
    scalar,
    shared,
    tensor,
    vector,
)
from symgraph.ops import (
    abs,
    all,
    any,
    arange,
    arctan,
    argmax,
    cast,
    clip,
    concatenate,
    cos,
    dot,
    equal,
    exp,
    expand_dims,
    expm1,
    flip,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    not_equal,
    ones_like,
    power,
    reshape,
    sign,
    sin,
    sqrt,
    square,
    squeeze,
    stack,
    stop_gradient,
    sum,
    tanh,
    transpose,
    where,
    zeros_like,
)
from symgraph.ops import layout as _layout
from symgraph.ops import linalg as _linalg
from symgraph.ops import numeric as _numeric
from symgraph.ops import scan as _scan
from symgraph.ops.layout import *  # noqa: F403  (the families' user functions: their __all__)
from symgraph.ops.linalg import *  # noqa: F403
from symgraph.ops.numeric import *  # noqa: F403
from symgraph.ops.scan import *  # noqa: F403
from symgraph.shapes import ShapeError

__version__ = "0.1.0"

_LAZY = {
    "pprint": "symgraph.printing",
    "debugprint": "symgraph.printing",
    "to_dot": "symgraph.export",
    "to_networkx": "symgraph.export",
    "render": "symgraph.rendering",
    "render_source": "symgraph.rendering",
    "GraphvizNotFound": "symgraph.rendering",
    "GraphvizTimeout": "symgraph.rendering",
    "format_profile": "symgraph.profiling",
}


def __getattr__(name):
    # printing pulls in networkx only when asked for (keeps `import symgraph` fast)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symgraph' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DISCONNECTED", "Apply", "Constant", "DisconnectedInputError", "Function",
    "GradNotImplementedError", "GradientCheckError", "GraphvizNotFound", "GraphvizTimeout",
    "NonFiniteError", "Op",
    "ShapeError", "SharedVariable", "TensorType", "Undefined", "UndefinedGradError", "Variable",
    "abs", "all", "any", "arange", "arctan", "argmax", "cast", "check_grad", "clip",
    "clone_replace", "concatenate", "constant", "cos", "debugprint", "dot", "equal", "exp",
    "expand_dims", "expm1", "flip", "format_profile", "function", "grad", "greater",
    "greater_equal", "hessian", "hvp",
    "jacobian", "less", "less_equal", "log", "log1p", "logical_and", "logical_not", "logical_or",
    "logsumexp", "matmul", "matrix", "max", "maximum", "mean", "min", "minimum", "name_scope",
    "nn", "not_equal", "ones_like", "power", "pprint", "render", "render_source", "reshape",
    "scalar", "shared", "sign", "sin", "sqrt", "square", "squeeze", "stack", "stop_gradient",
    "sum", "tanh", "tensor", "to_dot", "to_networkx", "transpose", "vector", "where", "zeros_like"
]
__all__ = sorted({*__all__, *_layout.__all__, *_linalg.__all__, *_numeric.__all__,
                  *_scan.__all__})
