"""Elementwise ops: one table row per scalar function.

Every elementwise op is an ``Elemwise`` node around a ``ScalarOp`` that says,
in one place: arity, output dtype rule, numpy reference, one gradient rule per
input (built from graph ops; ``grad`` asks for one input at a time, so only the
gradients it needs are built) and the scalar body: either ``math="name"`` (a libm
function of that name: the backend derives the scalar call and its vector variants)
or ``lower`` — written against a small backend-neutral builder (``b.add(x, y)``,
``b.math("exp", x)``, ...) that a backend (the LLVM codegen) supplies, so fusing a
chain of elementwise ops is just composing their scalar bodies inside one loop.
Broadcasting follows numpy; ``symgraph.grad`` sums gradients back to each input's shape.

Adding an elementwise op is one ``scalar_op(...)`` row here (plus its user function in
``ops/__init__.py`` and its test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import (
    Apply,
    Constant,
    Op,
    TensorType,
    Variable,
    as_variable,
    dtype_name,
    is_float,
)
from symgraph.sentinels import DISCONNECTED

# dtype rules -----------------------------------------------------------------


def _same(*dtypes):
    return np.result_type(*dtypes)


def _no_bool(*dtypes):
    # numpy has no boolean negative/subtract/sign: refuse while building, not at run time;
    # a bool operand promoted to a number is fine (1 - mask, x - mask), as in numpy
    dt = np.result_type(*dtypes)
    if dt.kind == "b":
        raise TypeError("not defined for booleans (as in numpy); cast to a number first")
    return dt


def _to_bool(*dtypes):
    return np.dtype(bool)


def _to_float(*dtypes):
    dt = np.result_type(*dtypes)
    return dt if dt.kind == "f" else np.dtype("float64")


def _operand_dtypes(in_dtypes: list, out_dtype: np.dtype) -> list[str]:
    """numpy's rule: inputs are promoted together; a float result is computed in its own
    type (float32 stays float32 even with a float64 weak scalar folded in)."""
    key = (*in_dtypes, out_dtype)
    comp = _COMPUTE_DTYPES.get(key)
    if comp is None:  # (np.result_type and dtype names cost microseconds; a lowering asks
        # again for every elementwise node)
        comp = dtype_name(np.result_type(*in_dtypes))
        if out_dtype.kind == "f" and comp != dtype_name(out_dtype):
            comp = dtype_name(out_dtype)
        _COMPUTE_DTYPES[key] = comp
    return [comp] * len(in_dtypes)


_COMPUTE_DTYPES: dict = {}


#: the gradient rule of one input: ``(inputs, out, g) -> Variable | sentinel``, or the
#: sentinel ``DISCONNECTED`` itself
GradRule = Callable


@dataclass(frozen=True, eq=False)
class ScalarOp:
    """A scalar function applied elementwise (see module docstring)."""

    name: str
    arity: int
    numpy: Callable
    grads: tuple | None  # one GradRule per input; None: no gradient rule (grad raises)
    lower: Callable | None  # (builder, *args) -> builder value
    dtype_rule: Callable = _same
    infix: str | None = None  # "+" for printing
    #: the libm function computing it (``lower`` is then the call ``b.math(math, *args)``)
    math: str | None = None
    #: (input dtypes, output dtype) -> the dtype each input is converted to before ``lower``
    operand_dtypes: Callable = _operand_dtypes
    #: inputs whose values the scalar body ignores (``fill``'s like: only its shape counts);
    #: a backend passes a placeholder.  They stay value uses of the graph (``Op.shape_only``
    #: is False for them), so liveness and in-place planning see them as before.
    unread: tuple[int, ...] = ()
    #: the scalar body when every input after the first is the same for the whole loop
    #: (``x / s``: one reciprocal a backend hoists out of the loop, then a multiply)
    lower_invariant: Callable | None = None


class Elemwise(Op):
    props = ("scalar_op",)

    def __init__(self, scalar_op: ScalarOp):
        self.scalar_op = scalar_op

    @property
    def name(self) -> str:
        return self.scalar_op.name

    def _key(self):
        return (Elemwise, self.scalar_op.name)

    def infer(self, *inputs: Variable) -> list[TensorType]:
        if len(inputs) != self.scalar_op.arity:
            raise TypeError(f"takes {self.scalar_op.arity} inputs, got {len(inputs)}")
        shape = sh.broadcast_shapes(*(x.shape for x in inputs))
        dtype = np.dtype(self.scalar_op.dtype_rule(*(x.dtype for x in inputs)))
        return [TensorType(dtype, shape)]

    def concrete_shape(self, shapes: list[tuple], ctx) -> tuple:
        """The output shape for concrete input shapes; only a static 1 broadcasts."""
        shape = tuple(sh.broadcast_shapes(*shapes))
        check_runtime_broadcast_shapes(ctx.node.inputs, [tuple(s) for s in shapes], shape)
        return shape

    def operand_dtypes(self, node: Apply) -> list[str]:
        """The dtype each input of ``node`` is converted to before the scalar function."""
        return [str(d) for d in self.scalar_op.operand_dtypes(
            [x.dtype for x in node.inputs], node.outputs[0].dtype)]

    def perform(self, inputs, ctx):
        if self.scalar_op.dtype_rule is _to_float:
            # compute in the declared float type: numpy would use float16 for int8/bool
            # (exp, tanh, ...) and sigmoid/softplus would round back to the integer type
            inputs = [x if x.dtype.kind == "f" else x.astype(ctx.out_dtype) for x in inputs]
        check_runtime_broadcast(ctx.node.inputs, inputs)
        out = self.scalar_op.numpy(*inputs)
        return [np.asarray(out, dtype=ctx.out_dtype)]

    def bprop(self, inputs, outputs, index, grads):
        """The gradient of input ``index`` only: its own rule, so the other inputs'
        gradients are not built (``grad`` asks once per input that needs one)."""
        if self.scalar_op.grads is None:
            return super().bprop(inputs, outputs, index, grads)
        rule = self.scalar_op.grads[index]
        if rule is DISCONNECTED:
            return rule
        return rule(inputs, outputs[0], grads[0])



def check_runtime_broadcast(variables, arrays) -> None:
    """Only a *static* 1 broadcasts: a symbolic dim that is 1 at run time must not.

    Gradients sum over the axes that were broadcast, and they know only the
    static ones; silently broadcasting a run-time 1 would give a gradient of
    the wrong shape.
    """
    shapes = [np.shape(a) for a in arrays]
    check_runtime_broadcast_shapes(variables, shapes, np.broadcast_shapes(*shapes))


def check_runtime_broadcast_shapes(variables, shapes: list[tuple], out: tuple) -> None:
    """:func:`check_runtime_broadcast` for concrete ``shapes`` broadcasting to ``out``
    (tuples only: a plan checks every elementwise node of a step, ~30 us each through
    numpy arrays)."""
    for k, (var, shape) in enumerate(zip(variables, shapes)):
        offset = len(out) - len(shape)
        for axis, n in enumerate(shape):
            if n != out[offset + axis] and var.shape[axis] != 1:
                raise ValueError(
                    f"input {k} ({var.name or 'unnamed'}, static shape "
                    f"{sh.format_shape(var.shape)}) has length {n} on axis {axis} at run time "
                    f"and would broadcast to {out[offset + axis]}; only dims declared as 1 "
                    "broadcast (declare it 1 or make the lengths equal)")


SCALAR_OPS: dict[str, ScalarOp] = {}
ELEMWISE: dict[str, Elemwise] = {}


def scalar_op(name: str, arity: int, numpy: Callable, grads, lower: Callable | None = None,
              dtype_rule: Callable = _same, infix: str | None = None, *,
              math: str | None = None, **facts) -> Elemwise:
    """Register one row of the table: ``grads`` has one rule per input (or is None);
    give ``lower`` or ``math`` (a libm function name). ``facts``: the other ScalarOp
    fields (``operand_dtypes``, ``unread``, ``lower_invariant``)."""
    if grads is not None and len(grads) != arity:
        raise ValueError(f"scalar op {name}: {len(grads)} gradient rules for {arity} inputs")
    if math is not None:
        if lower is not None:
            raise ValueError(f"scalar op {name}: give lower or math, not both")

        def lower(b, *args):
            return b.math(math, *args)
    sop = ScalarOp(name, arity, numpy, None if grads is None else tuple(grads), lower,
                   dtype_rule, infix, math, **facts)
    SCALAR_OPS[name] = sop
    ELEMWISE[name] = Elemwise(sop)
    return ELEMWISE[name]


# argument coercion: Python numbers adopt the tensor's dtype (numpy 2 "weak" scalars)


def _coerce(*args, op: Elemwise | None = None) -> list[Variable]:
    tensors = [a for a in args if isinstance(a, Variable)]
    arrays = [np.asarray(a) for a in args if not isinstance(a, Variable)
              and not np.isscalar(a) and not isinstance(a, (int, float, bool))]
    base = np.result_type(*(t.dtype for t in tensors), *arrays) if tensors or arrays else None
    out = []
    for a in args:
        if isinstance(a, Variable):
            out.append(a)
        elif isinstance(a, (bool, int, float, np.generic)) and base is not None:
            out.append(_weak_constant(base, a, op))
        else:
            out.append(as_variable(a))
    return out


def _weak_dtype(base: np.dtype, a, op: Elemwise | None) -> np.dtype:
    """A Python number's dtype next to tensors of dtype ``base`` (numpy 2's weak scalars).
    An int out of ``base``'s range (``x_uint8 > -1``, ``x_int8 / 300``) is an error in
    numpy unless the result is not of ``base``'s kind: comparisons and true division then
    use the value, and so do they here (in int64; ``apply`` clamps a clip bound)."""
    dt = np.result_type(base, a)
    if not isinstance(a, int) or isinstance(a, bool) or dt.kind not in "iu" or \
            np.iinfo(dt).min <= a <= np.iinfo(dt).max:
        return dt
    if op is not None and op.scalar_op.dtype_rule in (_to_bool, _to_float):
        return np.dtype("int64")
    raise OverflowError(f"Python integer {a} out of bounds for {dt.name}")


_INT64, _COMPARISONS = np.iinfo(np.int64), ("lt", "le", "gt", "ge", "eq", "ne")


def _weak_constant(base: np.dtype, a, op: Elemwise | None) -> Constant:
    """A Python number next to tensors of dtype ``base``; an int beyond int64 that numpy
    compares or divides by exactly (``x < 2**63``, ``x / 2**70``): +-inf, or its float."""
    dt = _weak_dtype(base, a, op)
    if dt.kind == "i" and isinstance(a, int) and not isinstance(a, bool) and \
            not _INT64.min <= a <= _INT64.max:
        name = op.scalar_op.name if op is not None else None
        if name in _COMPARISONS:
            return Constant(np.inf if a > 0 else -np.inf)
        if name == "div":
            return Constant(float(a))
        raise OverflowError(f"Python integer {a} out of bounds for int64")
    return Constant(a, dtype=dt)


def apply(op: Elemwise, *args) -> Variable:
    if op is clip:  # (out of range: no bound, as numpy clips)
        args = (args[0], *(_clamped(b, args) for b in args[1:]))
    return op.make_node(*_coerce(*args, op=op)).outputs[0]


def _clamped(bound, args):
    base = args[0].dtype if isinstance(args[0], Variable) else None
    if base is None or base.kind not in "iu" or not isinstance(bound, int) \
            or isinstance(bound, bool):
        return bound
    limits = np.iinfo(base)
    return min(max(bound, int(limits.min)), int(limits.max))


# gradient rules used by several rows


def _zero_grad(inputs, out, g):
    """Piecewise-constant functions: zero (not disconnected) for a float input."""
    return ops.zeros_like(inputs[0]) if is_float(inputs[0].dtype) else DISCONNECTED


def _np_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _np_softplus(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


def _np_power(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.power(x, y)


def _np_div(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(x, y)


def _np_log(f):
    def run(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return f(x)
    return run


def _power_grads():
    """Gradients of ``x ** y`` that agree with torch and jax where those agree.

    * d/dx = ``y * x ** (y - 1)``, but 0 at ``x == 0, y == 0``: ``x ** 0`` is the
      constant 1 and the formula would give ``0 * inf`` (torch: 0, jax: NaN).
    * d/dy = ``x ** y * log(x)``, but 0 at ``x == 0, y >= 0``, where ``0 ** y`` is
      constant and the formula would give ``0 * -inf`` (both: 0). At ``x == 0, y < 0``
      it stays ``inf * -inf`` (torch; jax: NaN); at ``x < 0`` it is NaN (both).

    At those points the formula is evaluated at base 1 (jax's trick) as well as masked,
    so the masked branch's own derivative is finite and second derivatives there are 0,
    as for a constant exponent, not ``0 * inf = NaN`` (torch and jax give NaN for
    d2/dx2 at (0, 0) and torch for d2/dy2 at ``0 ** y``). With a constant exponent
    (``x ** 2``) the masks fold away when no entry is 0, and ``y - 1`` is computed here.
    """
    def grad_x(i, o, g):
        x, y = i
        if isinstance(y, Constant):
            y_minus_one = Constant(np.asarray(y.value - 1, dtype=y.dtype))
            y_has_zero = bool(np.any(y.value == 0))
        else:
            y_minus_one, y_has_zero = y - 1, True
        if not y_has_zero:
            return g * y * ops.power(x, y_minus_one)
        constant_one = ops.logical_and(ops.equal(x, 0), ops.equal(y, 0))
        return ops.where(constant_one, 0,
                         g * y * ops.power(ops.where(constant_one, 1, x), y_minus_one))

    def grad_y(i, o, g):
        x, y = i
        if not is_float(y.dtype):
            return DISCONNECTED
        constant_base = ops.logical_and(ops.equal(x, 0), ops.greater_equal(y, 0))
        return g * o * ops.log(ops.where(constant_base, 1, x))
    return grad_x, grad_y


def _extremum_grads(wins: str):
    """bprop of maximum (``wins`` = "gt") or minimum ("lt"): the winner gets ``g``, a
    tie gives ``g / 2`` to each side, a NaN operand gives 0 to both."""
    def side(k):
        def rule(i, o, g):
            x, y = i
            tie = ops.where(ops.equal(x, y), g * 0.5, 0)
            return ops.where(apply(ELEMWISE[wins], i[k], i[1 - k]), g, tie)
        return rule
    return side(0), side(1)


def _lower_sigmoid(b, x):
    one = b.one(x)
    e = b.math("exp", b.neg(b.abs(x)))
    d = b.add(one, e)
    return b.select(b.ge(x, b.zero(x)), b.div(one, d), b.div(e, d))


def _lower_softplus(b, x):
    e = b.math("exp", b.neg(b.abs(x)))
    return b.add(b.maximum(x, b.zero(x)), b.math("log1p", e))


# --------------------------------------------------------------------------- the table
# gradient rules, one per input: (inputs, out, g) -> a graph expression, or DISCONNECTED

_none1, _none2 = (DISCONNECTED,), (DISCONNECTED, DISCONNECTED)

add = scalar_op("add", 2, np.add, (lambda i, o, g: g, lambda i, o, g: g),
                lambda b, x, y: b.add(x, y), infix="+")
sub = scalar_op("sub", 2, np.subtract, (lambda i, o, g: g, lambda i, o, g: -g),
                lambda b, x, y: b.sub(x, y), _no_bool, infix="-")
mul = scalar_op("mul", 2, np.multiply, (lambda i, o, g: g * i[1], lambda i, o, g: g * i[0]),
                lambda b, x, y: b.mul(x, y), infix="*")
div = scalar_op("div", 2, _np_div,
                # d/dy as -(x / y) / y (torch's), not -x / (y * y): y * y under- or
                # overflows where the gradient does not (float32 y = 1e-23)
                (lambda i, o, g: g / i[1], lambda i, o, g: -(g * o) / i[1]),
                lambda b, x, y: b.div(x, y), _to_float, infix="/",
                lower_invariant=lambda b, x, y: b.mul(x, b.div(b.one(y), y)))
power = scalar_op("pow", 2, _np_power, _power_grads(), None, _to_float, infix="**",
                  math="pow")
# ties (x == y) split the gradient evenly, as torch, jax and symgraph's own reduce max/min do,
# so maximum(a, b) and stack([a, b]).max(axis=0) agree; maximum(x, 0) at 0 gives 0.5 (relu
# keeps torch's 0 at 0). A NaN operand gets no gradient on either side (as jax).
maximum = scalar_op("maximum", 2, np.maximum, _extremum_grads("gt"),
                    lambda b, x, y: b.maximum(x, y))  # NaN-propagating, like np.maximum
minimum = scalar_op("minimum", 2, np.minimum, _extremum_grads("lt"),
                    lambda b, x, y: b.minimum(x, y))

neg = scalar_op("neg", 1, np.negative, (lambda i, o, g: -g,), lambda b, x: b.neg(x), _no_bool,
                infix="-")
exp = scalar_op("exp", 1, np.exp, (lambda i, o, g: g * o,), dtype_rule=_to_float, math="exp")
log = scalar_op("log", 1, _np_log(np.log), (lambda i, o, g: g / i[0],), dtype_rule=_to_float,
                math="log")
log1p = scalar_op("log1p", 1, _np_log(np.log1p), (lambda i, o, g: g / (1 + i[0]),),
                  dtype_rule=_to_float, math="log1p")
expm1 = scalar_op("expm1", 1, np.expm1, (lambda i, o, g: g * (o + 1),), dtype_rule=_to_float,
                  math="expm1")
sqrt = scalar_op("sqrt", 1, _np_log(np.sqrt), (lambda i, o, g: g / (2 * o),),
                 lambda b, x: b.sqrt(x), _to_float)
square = scalar_op("square", 1, np.square, (lambda i, o, g: g * 2 * i[0],),
                   lambda b, x: b.mul(x, x),  # numpy: a bool squares as int8
                   lambda x: np.dtype("int8") if np.dtype(x).kind == "b" else np.dtype(x),
                   operand_dtypes=lambda ins, out: [out.name])
abs_ = scalar_op("abs", 1, np.abs, (lambda i, o, g: g * ops.sign(i[0]),),
                 lambda b, x: b.abs(x))
sign = scalar_op("sign", 1, np.sign, (_zero_grad,), lambda b, x: b.sign(x), _no_bool)
sin = scalar_op("sin", 1, np.sin, (lambda i, o, g: g * ops.cos(i[0]),), dtype_rule=_to_float,
                math="sin")
cos = scalar_op("cos", 1, np.cos, (lambda i, o, g: -g * ops.sin(i[0]),), dtype_rule=_to_float,
                math="cos")
tanh = scalar_op("tanh", 1, np.tanh, (lambda i, o, g: g * (1 - o * o),), dtype_rule=_to_float,
                 math="tanh")
arctan = scalar_op("arctan", 1, np.arctan, (lambda i, o, g: g / (1 + i[0] * i[0]),),
                   dtype_rule=_to_float, math="atan")
sigmoid = scalar_op("sigmoid", 1, _np_sigmoid, (lambda i, o, g: g * o * (1 - o),),
                    _lower_sigmoid, _to_float)
softplus = scalar_op("softplus", 1, _np_softplus, (lambda i, o, g: g * ops.sigmoid(i[0]),),
                     _lower_softplus, _to_float)
relu = scalar_op("relu", 1, lambda x: np.maximum(x, 0).astype(x.dtype, copy=False),
                 (lambda i, o, g: ops.where(i[0] > 0, g, 0),),
                 lambda b, x: b.maximum(x, b.zero(x)))
identity = scalar_op("identity", 1, lambda x: x.copy(), (lambda i, o, g: g,), lambda b, x: x)
stop_gradient = scalar_op("stop_gradient", 1, lambda x: x.copy(), _none1, lambda b, x: x)


def _all_bool(in_dtypes, out_dtype):
    return ["bool"] * len(in_dtypes)


# comparisons and logic: bool results carry no gradient
less = scalar_op("lt", 2, np.less, _none2, lambda b, x, y: b.lt(x, y), _to_bool, "<")
less_equal = scalar_op("le", 2, np.less_equal, _none2, lambda b, x, y: b.le(x, y),
                       _to_bool, "<=")
greater = scalar_op("gt", 2, np.greater, _none2, lambda b, x, y: b.gt(x, y), _to_bool, ">")
greater_equal = scalar_op("ge", 2, np.greater_equal, _none2, lambda b, x, y: b.ge(x, y),
                          _to_bool, ">=")
equal = scalar_op("eq", 2, np.equal, _none2, lambda b, x, y: b.eq(x, y), _to_bool, "==")
not_equal = scalar_op("ne", 2, np.not_equal, _none2, lambda b, x, y: b.ne(x, y),
                      _to_bool, "!=")
logical_and = scalar_op("and", 2, np.logical_and, _none2, lambda b, x, y: b.and_(x, y),
                        _to_bool, "&", operand_dtypes=_all_bool)
logical_or = scalar_op("or", 2, np.logical_or, _none2, lambda b, x, y: b.or_(x, y),
                       _to_bool, "|", operand_dtypes=_all_bool)
logical_not = scalar_op("not", 1, np.logical_not, _none1, lambda b, x: b.not_(x), _to_bool,
                        operand_dtypes=_all_bool)


def _where_dtype(c, a, b):
    return np.result_type(a, b)


where = scalar_op("where", 3, np.where,
                  (DISCONNECTED, lambda i, o, g: ops.where(i[0], g, 0),
                   lambda i, o, g: ops.where(i[0], 0, g)),
                  lambda b, c, x, y: b.select(c, x, y), _where_dtype,
                  operand_dtypes=lambda ins, out: ["bool", out.name, out.name])


def _clip_grads():
    def inside(i, o, g):
        x, lo, hi = i
        return ops.where(ops.logical_and(x >= lo, x <= hi), g, 0)
    # lo > hi: the result is hi everywhere (numpy's min(max(x, lo), hi)), as torch's clamp
    return (inside,
            lambda i, o, g: ops.where(ops.logical_and(i[0] < i[1], i[1] <= i[2]), g, 0),
            lambda i, o, g: ops.where(ops.logical_or(i[0] > i[2], i[1] > i[2]), g, 0))


clip = scalar_op("clip", 3, lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), _clip_grads(),
                 lambda b, x, lo, hi: b.minimum(b.maximum(x, lo), hi))  # numpy's order

# fill(like, value): ``value`` broadcast to the joint shape; ``like`` gives only the shape.
fill = scalar_op("fill", 2, lambda like, v: np.broadcast_to(v, np.broadcast_shapes(
    np.shape(like), np.shape(v))).copy(), (DISCONNECTED, lambda i, o, g: g),
    lambda b, like, v: v, lambda like, v: v, unread=(0,),
    operand_dtypes=lambda ins, out: [ins[0].name, out.name])


class Cast(Op):
    """Convert to ``dtype``; gradients flow back only between float types."""

    props = ("dtype",)

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    @property
    def name(self) -> str:
        return f"cast<{dtype_name(self.dtype)}>"

    def infer(self, x):
        return [TensorType(self.dtype, x.shape)]

    def perform(self, inputs, ctx):
        return [inputs[0].astype(self.dtype)]

    def bprop(self, inputs, outputs, index, grads):
        x = inputs[0]
        if not (is_float(x.dtype) and is_float(self.dtype)):
            return DISCONNECTED
        return ops.cast(grads[0], x.dtype)


class DropoutMask(Op):
    """A {0, 1/keep_prob} mask, the shape of ``like``, from a counter-based hash.

    ``mask = hash(seed, counter, flat_index) < keep_prob``: no RNG state but
    the counter (a shared int64 bumped once per call), so every call draws a
    new mask, the whole sequence is reproducible from the seed, and forward
    and backward see the same mask (one node). The hash is splitmix64's
    finaliser, cheap in numpy and in LLVM alike.
    """

    props = ("keep_prob", "seed")

    def __init__(self, keep_prob: float, seed: int):
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        self.keep_prob = float(keep_prob)
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF

    def infer(self, like, counter):
        if counter.ndim != 0 or counter.dtype.kind not in "iu":
            raise TypeError("the dropout counter must be an integer scalar")
        dtype = like.dtype if is_float(like.dtype) else np.dtype("float64")
        return [TensorType(dtype, like.shape)]

    def shape_only(self, index: int) -> bool:
        return index == 0

    def perform(self, inputs, ctx):
        like, counter = inputs
        u = dropout_uniform(self.seed, int(counter), np.shape(like))
        keep = u < self.keep_prob
        dtype = ctx.out_dtype
        return [np.where(keep, dtype.type(1.0 / self.keep_prob), dtype.type(0)).astype(dtype)]

    def bprop(self, inputs, outputs, index, grads):
        return DISCONNECTED


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function on uint64 arrays (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def dropout_uniform(seed: int, counter: int, shape: tuple) -> np.ndarray:
    """Uniform [0, 1) numbers for one dropout call: the reference the codegen must match."""
    key = splitmix64(np.uint64(seed) ^ splitmix64(np.uint64(counter & 0xFFFFFFFFFFFFFFFF)))
    index = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = splitmix64(index ^ key)
    return ((bits >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(shape)


__all__ = ["Apply", "Cast", "DropoutMask", "ELEMWISE", "Elemwise", "SCALAR_OPS", "ScalarOp"]


# --------------------------------------------------------------------------- user functions


def unary_function(op: Elemwise) -> Callable:
    """The user function of a one-input row: ``f(x) -> Variable``."""
    def f(x) -> Variable:
        return apply(op, x)
    f.__name__ = op.name
    f.__doc__ = f"Elementwise {op.name}."
    return f


def binary_function(op: Elemwise) -> Callable:
    """The user function of a two-input row, numpy broadcasting: ``f(x, y) -> Variable``."""
    def f(x, y) -> Variable:
        return apply(op, x, y)
    f.__name__ = op.name
    f.__doc__ = f"Elementwise {op.name}, numpy broadcasting."
    return f
