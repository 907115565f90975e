"""Elementwise ops: one table row per scalar function.

Every elementwise op is an ``Elemwise`` node around a ``ScalarOp`` that says,
in one place: arity, output dtype rule, numpy reference, ``bprop`` (built
from graph ops) and ``lower`` — the scalar body written against a small
backend-neutral builder (``b.add(x, y)``, ``b.exp(x)``, ...) that a backend
(the LLVM codegen) supplies, so fusing a chain of elementwise ops is just
composing their ``lower`` functions inside one loop. Broadcasting follows
numpy; ``symgraph.grad`` sums gradients back to each input's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Apply, Constant, Op, TensorType, Variable, as_variable, is_float
from symgraph.sentinels import DISCONNECTED

# dtype rules -----------------------------------------------------------------


def _same(*dtypes):
    return np.result_type(*dtypes)


def _no_bool(*dtypes):
    # numpy has no boolean negative/subtract/sign: refuse while building, not at run time
    if any(np.dtype(d).kind == "b" for d in dtypes):
        raise TypeError("not defined for booleans (as in numpy); cast to a number first")
    return np.result_type(*dtypes)


def _to_bool(*dtypes):
    return np.dtype(bool)


def _to_float(*dtypes):
    dt = np.result_type(*dtypes)
    return dt if dt.kind == "f" else np.dtype("float64")


@dataclass(frozen=True, eq=False)
class ScalarOp:
    """A scalar function applied elementwise (see module docstring)."""

    name: str
    arity: int
    numpy: Callable
    bprop: Callable | None  # (inputs, out, g) -> list[Variable | sentinel], one per input
    lower: Callable | None  # (builder, *args) -> builder value
    dtype_rule: Callable = _same
    infix: str | None = None  # "+" for printing


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

    def perform(self, inputs, ctx):
        if self.scalar_op.dtype_rule is _to_float:
            # compute in the declared float type: numpy would use float16 for int8/bool
            # (exp, tanh, ...) and sigmoid/softplus would round back to the integer type
            inputs = [x if x.dtype.kind == "f" else x.astype(ctx.out_dtype) for x in inputs]
        check_runtime_broadcast(ctx.node.inputs, inputs)
        out = self.scalar_op.numpy(*inputs)
        return [np.asarray(out, dtype=ctx.out_dtype)]

    def bprop(self, inputs, outputs, index, grads):
        if self.scalar_op.bprop is None:
            return super().bprop(inputs, outputs, index, grads)
        return self.scalar_op.bprop(inputs, outputs[0], grads[0])[index]


def check_runtime_broadcast(variables, arrays) -> None:
    """Only a *static* 1 broadcasts: a symbolic dim that is 1 at run time must not.

    Gradients sum over the axes that were broadcast, and they know only the
    static ones; silently broadcasting a run-time 1 would give a gradient of
    the wrong shape.
    """
    shapes = [np.shape(a) for a in arrays]
    out = np.broadcast_shapes(*shapes)
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


def scalar_op(name, arity, numpy, bprop, lower, dtype_rule=_same, infix=None) -> Elemwise:
    sop = ScalarOp(name, arity, numpy, bprop, lower, dtype_rule, infix)
    SCALAR_OPS[name] = sop
    ELEMWISE[name] = Elemwise(sop)
    return ELEMWISE[name]


# argument coercion: Python numbers adopt the tensor's dtype (numpy 2 "weak" scalars)


def _coerce(*args) -> list[Variable]:
    tensors = [a for a in args if isinstance(a, Variable)]
    arrays = [np.asarray(a) for a in args if not isinstance(a, Variable)
              and not np.isscalar(a) and not isinstance(a, (int, float, bool))]
    base = np.result_type(*(t.dtype for t in tensors), *arrays) if tensors or arrays else None
    out = []
    for a in args:
        if isinstance(a, Variable):
            out.append(a)
        elif isinstance(a, (bool, int, float, np.generic)) and base is not None:
            out.append(Constant(a, dtype=np.result_type(base, a)))
        else:
            out.append(as_variable(a))
    return out


def apply(op: Elemwise, *args) -> Variable:
    return op.make_node(*_coerce(*args)).outputs[0]


# helpers used by bprops (imported late to avoid a cycle with symgraph.ops.core)



def _no_grad(n):
    def rule(inputs, out, g):
        return [DISCONNECTED] * n
    return rule


def _zero_grads(inputs, out, g):
    """Piecewise-constant functions: zero (not disconnected) for float inputs."""
    return [ops.zeros_like(x) if is_float(x.dtype) else DISCONNECTED for x in inputs]


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


def _power_grad(i, o, g):
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
    x, y = i
    if isinstance(y, Constant):
        y_minus_one = Constant(np.asarray(y.value - 1, dtype=y.dtype))
        y_has_zero = bool(np.any(y.value == 0))
    else:
        y_minus_one, y_has_zero = y - 1, True
    if y_has_zero:
        constant_one = ops.logical_and(ops.equal(x, 0), ops.equal(y, 0))
        gx = ops.where(constant_one, 0,
                       g * y * ops.power(ops.where(constant_one, 1, x), y_minus_one))
    else:
        gx = g * y * ops.power(x, y_minus_one)
    if not is_float(y.dtype):
        return [gx, DISCONNECTED]
    constant_base = ops.logical_and(ops.equal(x, 0), ops.greater_equal(y, 0))
    gy = g * o * ops.log(ops.where(constant_base, 1, x))
    return [gx, gy]


def _extremum_grad(wins: str):
    """bprop of maximum (``wins`` = "gt") or minimum ("lt"): the winner gets ``g``, a
    tie gives ``g / 2`` to each side, a NaN operand gives 0 to both."""
    def rule(i, o, g):
        x, y = i
        beats = ELEMWISE[wins]
        tie = ops.where(ops.equal(x, y), g * 0.5, 0)
        return [ops.where(apply(beats, x, y), g, tie), ops.where(apply(beats, y, x), g, tie)]
    return rule


# --------------------------------------------------------------------------- the table
# bprop rules: (inputs, out, g) -> one gradient per input, as graph expressions.

add = scalar_op("add", 2, np.add, lambda i, o, g: [g, g],
                lambda b, x, y: b.add(x, y), infix="+")
sub = scalar_op("sub", 2, np.subtract, lambda i, o, g: [g, -g],
                lambda b, x, y: b.sub(x, y), _no_bool, infix="-")
mul = scalar_op("mul", 2, np.multiply, lambda i, o, g: [g * i[1], g * i[0]],
                lambda b, x, y: b.mul(x, y), infix="*")
div = scalar_op("div", 2, _np_div,
                lambda i, o, g: [g / i[1], -g * i[0] / (i[1] * i[1])],
                lambda b, x, y: b.div(x, y), _to_float, infix="/")
power = scalar_op("pow", 2, _np_power, _power_grad, lambda b, x, y: b.pow(x, y), _to_float,
                  infix="**")
# ties (x == y) split the gradient evenly, as torch, jax and symgraph's own reduce max/min do,
# so maximum(a, b) and stack([a, b]).max(axis=0) agree; maximum(x, 0) at 0 gives 0.5 (relu
# keeps torch's 0 at 0). A NaN operand gets no gradient on either side (as jax).
maximum = scalar_op("maximum", 2, np.maximum, _extremum_grad("gt"),
                    lambda b, x, y: b.maximum(x, y))  # NaN-propagating, like np.maximum
minimum = scalar_op("minimum", 2, np.minimum, _extremum_grad("lt"),
                    lambda b, x, y: b.minimum(x, y))

neg = scalar_op("neg", 1, np.negative, lambda i, o, g: [-g], lambda b, x: b.neg(x), _no_bool,
                infix="-")
exp = scalar_op("exp", 1, np.exp, lambda i, o, g: [g * o], lambda b, x: b.exp(x), _to_float)
log = scalar_op("log", 1, _np_log(np.log), lambda i, o, g: [g / i[0]],
                lambda b, x: b.log(x), _to_float)
log1p = scalar_op("log1p", 1, _np_log(np.log1p), lambda i, o, g: [g / (1 + i[0])],
                  lambda b, x: b.log1p(x), _to_float)
expm1 = scalar_op("expm1", 1, np.expm1, lambda i, o, g: [g * (o + 1)],
                  lambda b, x: b.expm1(x), _to_float)
sqrt = scalar_op("sqrt", 1, _np_log(np.sqrt), lambda i, o, g: [g / (2 * o)],
                 lambda b, x: b.sqrt(x), _to_float)
square = scalar_op("square", 1, np.square, lambda i, o, g: [g * 2 * i[0]],
                   lambda b, x: b.mul(x, x))
abs_ = scalar_op("abs", 1, np.abs, lambda i, o, g: [g * ops.sign(i[0])],
                 lambda b, x: b.abs(x))
sign = scalar_op("sign", 1, np.sign, _zero_grads, lambda b, x: b.sign(x), _no_bool)
sin = scalar_op("sin", 1, np.sin, lambda i, o, g: [g * ops.cos(i[0])],
                lambda b, x: b.sin(x), _to_float)
cos = scalar_op("cos", 1, np.cos, lambda i, o, g: [-g * ops.sin(i[0])],
                lambda b, x: b.cos(x), _to_float)
tanh = scalar_op("tanh", 1, np.tanh, lambda i, o, g: [g * (1 - o * o)],
                 lambda b, x: b.tanh(x), _to_float)
sigmoid = scalar_op("sigmoid", 1, _np_sigmoid, lambda i, o, g: [g * o * (1 - o)],
                    lambda b, x: b.sigmoid(x), _to_float)
softplus = scalar_op("softplus", 1, _np_softplus, lambda i, o, g: [g * ops.sigmoid(i[0])],
                     lambda b, x: b.softplus(x), _to_float)
relu = scalar_op("relu", 1, lambda x: np.maximum(x, 0).astype(x.dtype, copy=False),
                 lambda i, o, g: [ops.where(i[0] > 0, g, 0)],
                 lambda b, x: b.maximum(x, b.zero(x)))
identity = scalar_op("identity", 1, lambda x: x.copy(), lambda i, o, g: [g], lambda b, x: x)
stop_gradient = scalar_op("stop_gradient", 1, lambda x: x.copy(), _no_grad(1), lambda b, x: x)

# comparisons and logic: bool results carry no gradient
less = scalar_op("lt", 2, np.less, _no_grad(2), lambda b, x, y: b.lt(x, y), _to_bool, "<")
less_equal = scalar_op("le", 2, np.less_equal, _no_grad(2), lambda b, x, y: b.le(x, y),
                       _to_bool, "<=")
greater = scalar_op("gt", 2, np.greater, _no_grad(2), lambda b, x, y: b.gt(x, y), _to_bool, ">")
greater_equal = scalar_op("ge", 2, np.greater_equal, _no_grad(2), lambda b, x, y: b.ge(x, y),
                          _to_bool, ">=")
equal = scalar_op("eq", 2, np.equal, _no_grad(2), lambda b, x, y: b.eq(x, y), _to_bool, "==")
not_equal = scalar_op("ne", 2, np.not_equal, _no_grad(2), lambda b, x, y: b.ne(x, y),
                      _to_bool, "!=")
logical_and = scalar_op("and", 2, np.logical_and, _no_grad(2), lambda b, x, y: b.and_(x, y),
                        _to_bool, "&")
logical_or = scalar_op("or", 2, np.logical_or, _no_grad(2), lambda b, x, y: b.or_(x, y),
                       _to_bool, "|")
logical_not = scalar_op("not", 1, np.logical_not, _no_grad(1), lambda b, x: b.not_(x), _to_bool)


def _where_grad(i, o, g):
    return [DISCONNECTED, ops.where(i[0], g, 0), ops.where(i[0], 0, g)]


def _where_dtype(c, a, b):
    return np.result_type(a, b)


where = scalar_op("where", 3, np.where, _where_grad,
                  lambda b, c, x, y: b.select(c, x, y), _where_dtype)


def _clip_grad(i, o, g):
    x, lo, hi = i
    inside = ops.logical_and(x >= lo, x <= hi)
    return [ops.where(inside, g, 0), ops.where(x < lo, g, 0), ops.where(x > hi, g, 0)]


clip = scalar_op("clip", 3, lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), _clip_grad,
                 lambda b, x, lo, hi: b.minimum(b.maximum(x, lo), hi))  # numpy's order


def _fill_grad(i, o, g):
    return [DISCONNECTED, g]


# fill(like, value): ``value`` broadcast to the joint shape; ``like`` gives only the shape.
fill = scalar_op("fill", 2, lambda like, v: np.broadcast_to(v, np.broadcast_shapes(
    np.shape(like), np.shape(v))).copy(), _fill_grad, lambda b, like, v: v,
    lambda like, v: v)


class Cast(Op):
    """Convert to ``dtype``; gradients flow back only between float types."""

    props = ("dtype",)

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    @property
    def name(self) -> str:
        return f"cast<{self.dtype.name}>"

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
