"""The IR: four concepts, as in PyTensor's ``graph/basic.py``.

* ``TensorType`` — dtype and static shape (ints, symbolic dims, None).
* ``Variable`` — a value in the graph; ``owner`` is the ``Apply`` that makes
  it, or None for inputs, constants and shared variables.
* ``Apply`` — one use of an ``Op`` on input variables, making outputs.
* ``Op`` — what a node computes: shape rule, numpy reference, ``bprop``.

Nodes are immutable once built and never copied: ``grad`` adds new nodes
that point at the forward ones. Each node records where the user created it
(file, line, source text) so errors point at the user's code, and, when it
was made by ``grad``, which forward node's ``bprop`` made it (those records live
in ``symgraph.provenance``, re-exported here).

Nothing backend-specific lives here: backends look lowerings up by op.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from symgraph import shapes as sh
from symgraph import storage
from symgraph.casting import wrapped_value
from symgraph.dispatch import ops
from symgraph.provenance import (  # noqa: F401  (re-exported: the IR's public names)
    Site,
    at_site,
    current_scope,
    current_tag,
    grad_tag,
    name_scope,
    register_internal_package,
    user_site,
)
from symgraph.sentinels import GradNotImplementedError
from symgraph.shapes import contiguous as _contiguous

_ids = itertools.count()


# --------------------------------------------------------------------------- types

SUPPORTED_DTYPES = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


_DTYPE_NAMES: dict = {}


def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, memoised: numpy computes that name in Python (~2.6 us a call), and
    lowering a large graph asks for it ~20k times (~50 ms of a GRU(32) x 50 steps' compile).
    Only numpy's builtin dtypes are kept: structured ones can compare equal (and hash alike)
    under different names (a record and a void of one layout)."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = dtype.name
        if dtype.isbuiltin == 1:
            _DTYPE_NAMES[dtype] = name
    return name


def as_dtype(dtype) -> np.dtype:
    """A supported dtype, in native byte order: compiled code reads memory as the machine
    does, so a big-endian ``'>f4'`` is the graph's float32 (values are converted)."""
    dt = np.dtype(dtype)
    if not dt.isnative:
        dt = dt.newbyteorder("=")
    if dtype_name(dt) not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype {dt.name} is not supported; use one of {SUPPORTED_DTYPES}")
    return dt


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


@dataclass(frozen=True)
class TensorType:
    """dtype + static shape; equality is structural."""

    dtype: np.dtype
    shape: tuple

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.name}{sh.format_shape(self.shape)}"


# --------------------------------------------------------------------------- variables


#: operands that ``==``/``!=`` compare elementwise (numpy semantics); see ``Variable.__eq__``
_ELEMENTWISE_OPERANDS = (numbers.Number, np.generic, np.ndarray, list, tuple)
# hashes of Variables stay clear of small ints, so a dict or set mixing Variables with
# numbers never calls ``0 == v`` (an op) to break a hash tie; the low bits (and so the
# iteration order of sets of Variables) are those of the creation counter
_HASH_BIT = 1 << 60


class Variable:
    """A value in the graph. Operators build new nodes (see ``symgraph.ops``).

    Comparisons: ``<``, ``<=``, ``>``, ``>=`` always build elementwise ops, and so
    do ``==`` and ``!=`` when the other operand is a number, a numpy scalar or array,
    or a list/tuple of numbers (``v == 0`` is ``sg.equal(v, 0)``, as in numpy).
    Between two Variables ``==`` and ``!=`` are identity (a Python bool), because
    Python's containers call them: ``x in [a, b]``, ``list.index``/``remove`` and
    comparing lists or tuples of Variables would otherwise build nodes (or fail on
    shapes that do not broadcast) and then raise on the truth value. Hashing is by
    identity. For the elementwise comparison of two tensors use ``sg.equal(a, b)`` /
    ``sg.not_equal(a, b)``; ``sg.where`` rejects a Python bool condition, which is what
    ``sg.where(a == b, ...)`` would otherwise silently receive.
    """

    __array_priority__ = 1000  # numpy arrays on the left defer to our operators

    def __init__(self, type: TensorType, owner: Apply | None = None, index: int = 0,
                 name: str | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.id = next(_ids)
        self.site = owner.site if owner is not None else user_site()

    # -- static facts
    @property
    def dtype(self) -> np.dtype:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def role(self) -> str:
        """input / parameter / constant / forward / gradient (printing uses it)."""
        if self.owner is None:
            return "input"
        return "gradient" if self.owner.grad_call is not None else "forward"

    def __repr__(self) -> str:
        label = self.name or (self.owner.op.name if self.owner is not None else "?")
        return f"<{type(self).__name__} {label}: {self.type}>"

    def __hash__(self) -> int:
        return self.id | _HASH_BIT

    def __eq__(self, other):
        """Elementwise ``sg.equal`` with a number or array; identity with a Variable."""
        if isinstance(other, Variable):
            return self is other
        if isinstance(other, _ELEMENTWISE_OPERANDS):
            return ops.equal(self, other)
        return NotImplemented

    def __ne__(self, other):
        """Elementwise ``sg.not_equal`` with a number or array; identity with a Variable."""
        if isinstance(other, Variable):
            return self is not other
        if isinstance(other, _ELEMENTWISE_OPERANDS):
            return ops.not_equal(self, other)
        return NotImplemented

    def __bool__(self):
        raise TypeError("a symbolic Variable has no truth value (as in `if v:`, `v and w`, "
                        "`v in [0, 1]`); use sg.where, sg.logical_and/logical_or, and "
                        "sg.equal for elementwise ==")

    def __len__(self):
        raise TypeError("len() of a symbolic Variable is undefined; use .shape[0]")

    def __iter__(self):
        raise TypeError("a symbolic Variable is not iterable")

    # -- arithmetic: thin forwards to the builders symgraph.ops registered in dispatch
    def __add__(self, o): return ops.add(self, o)
    def __radd__(self, o): return ops.add(o, self)
    def __sub__(self, o): return ops.sub(self, o)
    def __rsub__(self, o): return ops.sub(o, self)
    def __mul__(self, o): return ops.mul(self, o)
    def __rmul__(self, o): return ops.mul(o, self)
    def __truediv__(self, o): return ops.div(self, o)
    def __rtruediv__(self, o): return ops.div(o, self)
    def __floordiv__(self, o): return ops.floor_divide(self, o)
    def __rfloordiv__(self, o): return ops.floor_divide(o, self)
    def __mod__(self, o): return ops.mod(self, o)
    def __rmod__(self, o): return ops.mod(o, self)
    def __pow__(self, o): return ops.power(self, o)
    def __rpow__(self, o): return ops.power(o, self)
    def __matmul__(self, o): return ops.matmul(self, o)
    def __rmatmul__(self, o): return ops.matmul(o, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)
    def __lt__(self, o): return ops.less(self, o)
    def __le__(self, o): return ops.less_equal(self, o)
    def __gt__(self, o): return ops.greater(self, o)
    def __ge__(self, o): return ops.greater_equal(self, o)
    # numpy's & | ^ ~ on booleans (masks: (x > 0) & (x < 1)); integer bitwise ops are not ops
    def __and__(self, o): return _boolean("&", ops.logical_and, self, o)
    def __rand__(self, o): return _boolean("&", ops.logical_and, o, self)
    def __or__(self, o): return _boolean("|", ops.logical_or, self, o)
    def __ror__(self, o): return _boolean("|", ops.logical_or, o, self)
    def __xor__(self, o): return _boolean("^", ops.not_equal, self, o)
    def __rxor__(self, o): return _boolean("^", ops.not_equal, o, self)
    def __invert__(self): return _boolean("~", ops.logical_not, self)
    def __getitem__(self, index): return ops.getitem(self, index)

    @property
    def T(self) -> Variable:
        return ops.transpose(self)

    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return ops.min(self, axis, keepdims)
    def any(self, axis=None, keepdims=False): return ops.any(self, axis, keepdims)
    def all(self, axis=None, keepdims=False): return ops.all(self, axis, keepdims)
    def reshape(self, *shape): return ops.reshape(self, shape[0] if len(shape) == 1 else shape)
    def astype(self, dtype): return ops.cast(self, dtype)
    def transpose(self, *axes): return ops.transpose(self, axes or None)
    def dot(self, o): return ops.dot(self, o)


def _boolean(symbol: str, build, *operands) -> Variable:
    """``build(*operands)`` when every operand is boolean, as numpy's ``&``, ``|``, ``^``, ``~``
    on bool arrays; integers would need bitwise ops, which symgraph does not have."""
    for o in operands:
        dtype = o.dtype if isinstance(o, Variable) else np.asarray(o).dtype
        if dtype.kind != "b":
            raise TypeError(f"{symbol} is defined for bool tensors (masks); got {dtype.name} "
                            "(integer bitwise ops are not supported)")
    return build(*operands)


class Constant(Variable):
    """A value fixed when the graph is built (Python numbers, numpy arrays)."""

    def __init__(self, value, dtype=None, name: str | None = None):
        array = np.asarray(value, dtype=None if dtype is None else as_dtype(dtype))
        native = as_dtype(array.dtype)
        if array.dtype != native:
            array = array.astype(native)
        array = _contiguous(array)
        if isinstance(value, np.ndarray) and np.may_share_memory(array, value):
            # the user's array (or its base) stays theirs to write; the graph keeps its value
            array = array.copy()
        array.setflags(write=False)
        super().__init__(TensorType(array.dtype, array.shape), name=name)
        self.value = array

    @property
    def role(self) -> str:
        return "constant"

    def signature(self) -> tuple:
        """Equal for equal constants (merge uses it)."""
        return (self.dtype.str, self.value.shape, self.value.tobytes())


class SharedVariable(Variable):
    """A parameter: its value lives across calls and ``updates`` change it.

    ``default_update`` (if set) is applied by every function that uses it and
    does not update it explicitly (dropout's call counter uses it).
    """

    def __init__(self, value, name: str | None = None, shape=None):
        array = np.asarray(value)
        dtype = as_dtype(array.dtype)
        static = array.shape if shape is None else sh.as_shape(shape)
        super().__init__(TensorType(dtype, tuple(static)), name=name)
        self._value = storage.copy(array, dtype)  # private, aligned for compiled code
        self.default_update: Variable | None = None

    @property
    def role(self) -> str:
        return "parameter"

    def get_value(self) -> np.ndarray:
        """A copy of the current value, never half-updated by a call in another thread."""
        value = self._value
        if value.nbytes < 4096 or not value.flags.c_contiguous:
            return value.copy()
        # A compiled step writes most updates into this array in place, holding the GIL;
        # numpy releases the GIL while it copies a large array, so a step could run in the
        # middle of ``.copy()`` (a copy holding old and new values). bytearray() copies
        # through the buffer protocol without releasing it.
        buffer = bytearray(memoryview(value).cast("B"))
        return np.frombuffer(buffer, value.dtype).reshape(value.shape)

    def set_value(self, value) -> None:
        """Replace the value; the dtype and static shape must fit."""
        array = np.asarray(value)
        if not np.can_cast(array.dtype, self.dtype, "same_kind"):
            raise TypeError(f"shared variable {self.name!r} is {self.dtype.name}; "
                            f"cannot store a {array.dtype.name} value")
        bad = wrapped_value(array, self.dtype)  # same_kind wraps: 2**40 stored as 0
        if bad is not None:
            raise ValueError(f"shared variable {self.name!r} is {self.dtype.name}; its "
                             f"{array.dtype.name} value {bad} does not fit")
        problem = sh.bind_shape(self.shape, array.shape, {})
        if problem:
            raise ValueError(f"shared variable {self.name!r}: {problem}")
        self._value = storage.copy(array, self.dtype)


# --------------------------------------------------------------------------- apply / op


class Apply:
    """One use of an op: ``outputs = op(inputs)``."""

    def __init__(self, op: Op, inputs: Sequence[Variable], output_types: Sequence[TensorType],
                 *, stands_for: Apply | None = None, same_dims: tuple = ()):
        """``stands_for``: the node this one replaces (the rewrites' copies): its creation
        site, gradient tags and scope are taken over, and its user's nodes become this
        node's ``origins``, instead of being found from the call stack and the open
        ``grad_tag``/``name_scope`` blocks (a stack walk per node was ~2 us of every node a
        rewrite rebuilds).  ``same_dims``: the pairs of symbolic dims the shape rule
        broadcast against each other (``shapes.unify``), which a function's inputs must
        then have equal (a copy keeps its original's)."""
        self.op = op
        self.inputs = list(inputs)
        self.same_dims = same_dims or (stands_for.same_dims if stands_for is not None else ())
        if stands_for is not None:
            self.site, self.scope = stands_for.site, stands_for.scope
            self.grad_of, self.grad_call = stands_for.grad_of, stands_for.grad_call
            self.origins: tuple[Apply, ...] = user_nodes(stands_for)
        else:
            self.site = user_site()
            tag = current_tag()
            self.grad_of, self.grad_call = tag if tag is not None else (None, None)
            # a gradient node belongs to the scope of the forward node whose bprop made it
            scope = current_scope()
            if scope is None and self.grad_of is not None:
                scope = self.grad_of.scope
            self.scope: str | None = scope
            #: the user's nodes this one stands for, when the rewrites made it (empty: the
            #: node is the user's own); see :func:`user_nodes`
            self.origins = ()
        self.outputs = [Variable(t, self, i) for i, t in enumerate(output_types)]

    @property
    def out(self) -> Variable:
        return self.outputs[0]

    def __repr__(self) -> str:
        return f"<Apply {self.op.name}({', '.join(map(repr, self.inputs))})>"


def user_nodes(node: Apply) -> tuple[Apply, ...]:
    """The nodes of the user's graph that ``node`` computes.

    Why: the rewrites rebuild the graph, merge equal nodes and replace patterns, so a
    compiled function's kernels hold copies; each copy records the user's nodes it
    replaces (``Apply.origins``), and profiles and pictures name those, with their source
    lines, instead of anonymous rewritten nodes. A node of the user's own graph is its own
    origin.
    """
    return node.origins or (node,)


class Op:
    """What a node computes. Subclasses define, in one place:

    * ``infer(*inputs) -> list[TensorType]`` — the shape/dtype rule (raise
      ``ShapeError``/``TypeError``; the caller adds op, shapes and the user's line);
    * ``perform(inputs, ctx) -> list[np.ndarray]`` — the numpy reference;
    * ``bprop(inputs, outputs, index, grads)`` — the gradient w.r.t.
      ``inputs[index]`` built from graph ops (a ``Variable``, or a
      ``DISCONNECTED``/``Undefined`` sentinel from ``symgraph.sentinels``).

    ``props`` names the attributes that make two instances equal, so merge
    (CSE) and the compile cache can compare ops by value.
    """

    props: tuple[str, ...] = ()
    #: number of outputs
    nout = 1

    @property
    def name(self) -> str:
        """Short, human name for printing and errors (``DropoutMask`` -> ``dropout_mask``)."""
        return _snake_case(type(self).__name__)

    def _key(self):
        # props never change once an op is built, and merging asks for the keys and hashes
        # of the same ops tens of thousands of times; a pickled op drops both (a string's
        # hash differs between processes)
        if (key := self.__dict__.get("_props_key")) is None:
            key = (type(self), tuple(_hashable(getattr(self, p)) for p in self.props))
            self.__dict__["_props_key"] = key
        return key

    def __eq__(self, other):
        return self is other or isinstance(other, Op) and self._key() == other._key()

    def __hash__(self):
        if (h := self.__dict__.get("_props_hash")) is None:
            h = self.__dict__["_props_hash"] = hash(self._key())
        return h

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_props_key", "_props_hash")}

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self.props)
        return f"{self.name}({args})"

    # -- the three rules
    def infer(self, *inputs: Variable) -> list[TensorType]:
        raise NotImplementedError

    def perform(self, inputs: list[np.ndarray], ctx) -> list[np.ndarray]:
        raise NotImplementedError

    def bprop(self, inputs, outputs, index, grads):
        raise GradNotImplementedError(f"op {self.name} has no gradient rule")

    # -- facts backends read instead of naming op classes (defaults fit most ops)
    def shape_only(self, index: int) -> bool:
        """Does input ``index`` contribute only its shape (its values are never read)?"""
        return False

    def aliases_input(self) -> bool:
        """Is the output input 0's bytes with a new shape (a reshape; no copy needed)?"""
        return False

    def no_identity_axes(self, node: Apply) -> tuple[int, ...]:
        """Axes of input 0 this node reduces without an identity (max, softmax, argmax):
        over such an empty axis with a non-empty result numpy refuses, and so do we."""
        return ()

    #: ``concrete_shape(input_shapes, ctx) -> shape``, for an op whose output shape depends
    #: on run-time values (reshape targets, slice bounds); None: ``infer`` on the shapes
    concrete_shape = None
    #: ``runtime_error(value, axis, size, source, position) -> Exception``: the op's wording
    #: of a failed run-time check (index out of range, bad label); None: it has no checks
    runtime_error = None

    # -- building
    def __call__(self, *inputs) -> Variable | list[Variable]:
        node = self.make_node(*inputs)
        return node.outputs[0] if self.nout == 1 else node.outputs

    def make_node(self, *inputs) -> Apply:
        inputs = [as_variable(x) for x in inputs]
        same: list = []  # the symbolic dims the rule broadcasts against each other
        token = sh.same_dims_recorder.set(same)
        try:
            types = self.infer(*inputs)
        except (sh.ShapeError, TypeError, ValueError, IndexError) as err:
            shown = ", ".join(str(x.type) for x in inputs)
            site = user_site()
            where = f"\n  at {site}" if site is not None else ""
            scope = current_scope()
            name = f"{self.name} in {scope}" if scope else self.name
            wrapped = type(err)(f"{name}: {err}; inputs {shown}{where}")
            wrapped.reason = str(err)  # the bare rule, for a wrapper to reword (conv1d)
            raise wrapped from None
        finally:
            sh.same_dims_recorder.reset(token)
        return Apply(self, inputs, types, same_dims=tuple(same))


def _snake_case(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, np.dtype):
        return value.str
    return value


# --------------------------------------------------------------------------- constructors


def as_variable(x, dtype=None) -> Variable:
    if isinstance(x, Variable):
        return x
    if isinstance(x, (list, tuple)) and any(isinstance(v, Variable) for v in x):
        raise TypeError("a list mixing Variables is ambiguous; use sg.stack or sg.concatenate")
    return Constant(x, dtype=dtype)


def tensor(name: str, shape=(), dtype="float64") -> Variable:
    """A graph input. ``shape`` entries: int (fixed), str (symbolic), None (unknown).

    >>> x = tensor("x", shape=("batch", 784), dtype="float32")
    """
    return Variable(TensorType(as_dtype(dtype), sh.as_shape(shape)), name=name)


def scalar(name: str, dtype="float64") -> Variable:
    return tensor(name, (), dtype)


def vector(name: str, length=None, dtype="float64") -> Variable:
    return tensor(name, (length,), dtype)


def matrix(name: str, shape=(None, None), dtype="float64") -> Variable:
    return tensor(name, shape, dtype)


def shared(value, name: str | None = None, shape=None) -> SharedVariable:
    """A parameter whose value lives across calls; ``shape`` may name symbolic dims."""
    return SharedVariable(value, name=name, shape=shape)


def constant(value, dtype=None, name: str | None = None) -> Constant:
    return Constant(value, dtype=dtype, name=name)


# --------------------------------------------------------------------------- traversal


def toposort(outputs: Iterable[Variable]) -> list[Apply]:
    """Apply nodes that ``outputs`` depend on, inputs before consumers (iterative): a
    depth-first walk taking each node's inputs in order, a node listed after its inputs.

    (A node is marked when first entered: a graph has no cycles, so a node in progress is
    never an input of what it is waiting on.  One (node, iterator) per level of the walk:
    pushing every input as a (variable, expanded?) pair took 1.56x the time, and a compile
    sorts its graph a dozen times, 3k nodes for a GRU's training step over 50 steps.)"""
    order: list[Apply] = []
    seen: set[int] = set()
    for out in outputs:
        node = out.owner
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack = [(node, iter(node.inputs))]
        while stack:
            node, pending = stack[-1]
            for inp in pending:
                child = inp.owner
                if child is not None and id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def graph_inputs(outputs: Iterable[Variable]) -> list[Variable]:
    """Variables without an owner that ``outputs`` depend on, in first-use order."""
    outputs = list(outputs)
    found: dict[int, Variable] = {}
    for out in outputs:
        if out.owner is None:
            found.setdefault(out.id, out)
    for node in toposort(outputs):
        for inp in node.inputs:
            if inp.owner is None:
                found.setdefault(inp.id, inp)
    return list(found.values())


def variables(outputs: Iterable[Variable]) -> Iterator[Variable]:
    outputs = list(outputs)
    yield from graph_inputs(outputs)
    for node in toposort(outputs):
        yield from node.outputs


def clients(outputs: Iterable[Variable]) -> dict[Variable, list[tuple[Apply, int]]]:
    """For each variable, the (node, input index) pairs that consume it."""
    table: dict[Variable, list[tuple[Apply, int]]] = {}
    for node in toposort(outputs):
        for i, inp in enumerate(node.inputs):
            table.setdefault(inp, []).append((node, i))
    return table
