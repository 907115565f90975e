"""Layout ops of api v1.1: ``pad``, ``roll``, ``tril``/``triu``, ``repeat``, ``tile``, ``split``,
``broadcast_to``.

Each output element is an input element read at a mapped index (or a constant), so the op
classes here are *views*: the LLVM backend reads them through the mapped index inside the
loop of whoever consumes them (:mod:`codegen.lower_layout`), with no buffer of their own.

* :class:`Pad` -- ``np.pad`` ("constant", "edge", "reflect").  A negative constant width
  crops, as in ``lax.pad``: the gradient of a constant pad is the pad with negated widths
  (a crop), and ``split``'s pieces are crops whose gradients are zero pads.  The gradient of
  an edge/reflect pad is :class:`PadAdjoint`, the scatter-add of the padded border back,
  whose own gradient is the pad again (twice differentiable).
* :class:`Roll` -- ``np.roll`` along given axes; its gradient is the roll back.
* :class:`BroadcastTo` -- ``np.broadcast_to`` (only a static 1 broadcasts, as everywhere in
  symgraph); its gradient sums the broadcast axes.
* compositions: ``tile`` and ``repeat`` (int) are an axis insertion, a broadcast and a
  reshape (the gradient sums the copies); ``repeat`` with a repeats array is an integer-array
  index (its gradient a scatter-add); ``split`` is one crop per piece.
* :class:`Triangle` -- ``tril``/``triu``: the input at the same index or 0 (the two loop
  indices compared), so unlike a ``where`` with an iota mask -- whose mask is a buffer of its
  own once a batch axis broadcasts it -- it is one loop with the work around it.
"""

from __future__ import annotations

import operator

import numpy as np
import sympy

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Op, TensorType, Variable, as_variable
from symgraph.ops.arguments import argument_error
from symgraph.ops.arguments import axis as _axis
from symgraph.shapes import contiguous as _contiguous

__all__ = ["broadcast_to", "pad", "repeat", "roll", "split", "tile", "tril", "triu"]

PAD_MODES = ("constant", "edge", "reflect")


# --------------------------------------------------------------------------- pad


def width_sign(w) -> int:
    """The sign a width keeps at run time: an int's own, a symbolic width's (``stop - n`` of
    a crop, ``n - stop`` of its gradient) the one it has when every length is large --
    :meth:`Pad.run_widths` checks it at run time."""
    if isinstance(w, int):
        return (w > 0) - (w < 0)
    big = sympy.sympify(w).xreplace({s: sympy.Integer(10 ** 12) for s in w.free_symbols})
    return int(bool(big > 0)) - int(bool(big < 0))


def _padded_length(d, lo, hi, mode: str, axis: int):
    """The length of input axis ``axis`` (length ``d``) padded by ``lo`` and ``hi``."""
    if d is None:
        return None
    if isinstance(d, int) and isinstance(lo, int) and isinstance(hi, int):
        if mode != "constant" and d == 0 and (lo or hi):
            raise ValueError(f"can't extend the empty axis {axis} using mode {mode!r} "
                             "(only 'constant' pads an empty axis)")
        if d + lo + hi < 0:
            raise ValueError(f"cropping axis {axis} of length {d} by {-lo} and {-hi} "
                             "leaves a negative length")
        return d + lo + hi
    total = sympy.simplify(sympy.sympify(d) + lo + hi)
    return int(total) if total.is_Integer else total


class Pad(Op):
    """``np.pad(x, widths, mode)``; ``widths`` holds one ``(lo, hi)`` per axis.  ``lo`` is an
    int; ``hi`` an int or a symbolic width (a crop to a run-time length).  Negative widths
    crop (constant mode only)."""

    props = ("widths", "mode", "value")

    def __init__(self, widths, mode: str = "constant", value=0):
        self.widths = tuple((int(lo), hi if isinstance(hi, sympy.Basic) and not hi.is_Integer
                             else int(hi)) for lo, hi in widths)
        self.mode, self.value = mode, value
        if mode not in PAD_MODES:
            raise ValueError(f"unknown pad mode {mode!r}")
        if mode != "constant" and any(not isinstance(w, int) or w < 0
                                      for pair in self.widths for w in pair):
            raise ValueError(f"mode {mode!r} needs nonnegative int widths: {self.widths}")

    @property
    def name(self) -> str:
        grows = any(width_sign(w) > 0 for pair in self.widths for w in pair)
        return "pad" if grows else "crop"

    def infer(self, x):
        if len(self.widths) != x.ndim:
            raise ValueError(f"{len(self.widths)} pad widths for {x.ndim} dims")
        shape = tuple(_padded_length(d, lo, hi, self.mode, a)
                      for a, (d, (lo, hi)) in enumerate(zip(x.shape, self.widths)))
        return [TensorType(x.dtype, shape)]

    def run_widths(self, shape: tuple, ctx) -> list[tuple[int, int]]:
        """The widths for an input of concrete ``shape`` (symbolic ones resolved); raises
        ValueError when a length is too short for them (both backends, one message)."""
        widths = []
        for a, (d, (lo, hi)) in enumerate(zip(shape, self.widths)):
            value = hi if isinstance(hi, int) else ctx.resolve(hi)
            if not isinstance(hi, int) and value * width_sign(hi) < 0:
                raise ValueError(
                    f"axis {a} of length {d} is too short: this piece ends at {d + value} "
                    f"(its width {hi} is {value} at run time). A split index past the end "
                    "gives numpy a shorter piece; here a piece's length is fixed when the "
                    "graph is built")
            _padded_length(d, lo, value, self.mode, a)
            widths.append((lo, value))
        return widths

    def concrete_shape(self, shapes: list[tuple], ctx) -> tuple:
        widths = self.run_widths(shapes[0], ctx)
        return tuple(d + lo + hi for d, (lo, hi) in zip(shapes[0], widths))

    def perform(self, inputs, ctx):
        x = inputs[0]
        widths = self.run_widths(np.shape(x), ctx)
        cropped = x[tuple(slice(max(0, -lo), d - max(0, -hi))
                          for d, (lo, hi) in zip(np.shape(x), widths))]
        grow = [(max(0, lo), max(0, hi)) for lo, hi in widths]
        if self.mode == "constant":
            out = np.pad(cropped, grow, mode="constant", constant_values=self.value)
        else:
            out = np.pad(cropped, grow, mode=self.mode)
        return [_contiguous(np.asarray(out, dtype=ctx.out_dtype))]

    def bprop(self, inputs, outputs, index, grads):
        if self.mode == "constant":  # the crop back (or, for a crop, the zero pad back)
            return Pad(tuple((-lo, -hi) for lo, hi in self.widths))(grads[0])
        return PadAdjoint(self.widths, self.mode)(grads[0])


def source_index(mode: str, j: np.ndarray, n: int) -> np.ndarray:
    """Input positions of padded positions ``j - lo`` (``j`` given minus ``lo``) of an axis of
    length ``n`` in ``mode`` "edge" or "reflect" (numpy's rule, repeated reflections)."""
    if mode == "edge":
        return np.clip(j, 0, n - 1)
    if n == 1:
        return np.zeros_like(j)
    period = 2 * (n - 1)
    j = np.mod(j, period)
    return np.where(j >= n, period - j, j)


class PadAdjoint(Op):
    """The gradient of an edge/reflect :class:`Pad`: ``g`` (the padded shape) summed back into
    the input positions each padded position was read from (a scatter-add)."""

    props = ("widths", "mode")

    def __init__(self, widths, mode: str):
        self.widths, self.mode = tuple((int(lo), int(hi)) for lo, hi in widths), mode

    @property
    def name(self) -> str:
        return "pad_adjoint"

    def infer(self, g):
        if len(self.widths) != g.ndim:
            raise ValueError(f"{len(self.widths)} pad widths for {g.ndim} dims")
        shape = []
        for a, (d, (lo, hi)) in enumerate(zip(g.shape, self.widths)):
            n = _padded_length(d, -lo, -hi, "constant", a)
            if isinstance(n, int) and n == 0 and (lo or hi):
                raise ValueError(f"axis {a} of length {d} is all {self.mode} padding")
            shape.append(n)
        return [TensorType(g.dtype, tuple(shape))]

    def perform(self, inputs, ctx):
        g = inputs[0]
        shape = self.infer(TensorType(g.dtype, np.shape(g)))[0].shape
        out = np.zeros(shape, dtype=ctx.out_dtype)
        where = [source_index(self.mode, np.arange(d) - lo, n)
                 for d, n, (lo, _) in zip(np.shape(g), shape, self.widths)]
        np.add.at(out, np.ix_(*where), g)
        return [out]

    def bprop(self, inputs, outputs, index, grads):
        return Pad(self.widths, self.mode)(grads[0])


def _pad_widths(pad_width, x: Variable) -> list[tuple[int, int]]:
    widths = np.asarray(pad_width, dtype=object)
    if widths.size == 0 and x.ndim:
        raise ValueError(f"no pad widths given: {pad_width!r}")
    try:
        widths = np.broadcast_to(widths, (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad_width {pad_width!r} does not fit {x.ndim} dims (give an int, "
                         "(before, after) or one pair per axis)") from None
    out = []
    for lo, hi in widths.tolist():
        pair = []
        for w in (lo, hi):
            if isinstance(w, (bool, np.bool_)):
                raise TypeError(f"pad widths must be integers, not {w!r}")
            try:
                w = operator.index(w)
            except TypeError:
                raise TypeError(f"pad widths must be integers, not {w!r}") from None
            if w < 0:
                raise ValueError(f"negative pad width {w} in {pad_width!r}")
            pair.append(w)
        out.append(tuple(pair))
    return out


def pad(x, pad_width, mode: str = "constant", constant_values=0) -> Variable:
    """Pad ``x`` as ``np.pad``: ``pad_width`` is an int, ``(before, after)`` or one pair per
    axis; ``mode`` "constant" (with ``constant_values``, a number), "edge" or "reflect".

    >>> sg.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))   # one zero pixel around each image
    """
    x = as_variable(x)
    try:
        if mode not in PAD_MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(PAD_MODES)}")
        widths = _pad_widths(pad_width, x)
        if np.ndim(constant_values) != 0 or isinstance(constant_values, Variable):
            raise TypeError("constant_values must be a number")
        value = np.asarray(constant_values).astype(x.dtype).item()
        if mode != "constant":
            for a, (d, (lo, hi)) in enumerate(zip(x.shape, widths)):
                _padded_length(d, lo, hi, mode, a)
    except (TypeError, ValueError) as err:
        raise argument_error("pad", err, [x]) from None
    if all(lo == 0 and hi == 0 for lo, hi in widths):
        return x
    return Pad(tuple(widths), mode, value if mode == "constant" else 0)(x)


# --------------------------------------------------------------------------- roll


class Roll(Op):
    """``np.roll(x, shifts, axes)`` (distinct axes, one int shift each)."""

    props = ("shifts", "axes")

    def __init__(self, shifts, axes):
        self.shifts, self.axes = tuple(int(s) for s in shifts), tuple(int(a) for a in axes)

    def infer(self, x):
        if any(not 0 <= a < x.ndim for a in self.axes) or len(set(self.axes)) != len(self.axes):
            raise ValueError(f"bad roll axes {self.axes} for {x.ndim} dims")
        return [TensorType(x.dtype, x.shape)]

    def perform(self, inputs, ctx):
        return [_contiguous(np.roll(inputs[0], self.shifts, self.axes))]

    def bprop(self, inputs, outputs, index, grads):
        return Roll(tuple(-s for s in self.shifts), self.axes)(grads[0])


def roll(x, shift, axis=None) -> Variable:
    """Roll elements along ``axis`` (an int or a tuple, with one shift or one each) as
    ``np.roll``; ``axis=None`` rolls the flattened array and restores the shape.

    >>> sg.roll(x, -1, axis=1)      # x[:, 1:] then x[:, :1]
    """
    x = as_variable(x)
    try:
        shifts = np.atleast_1d(np.asarray(shift))
        if shifts.dtype.kind not in "iu" or shifts.ndim != 1:
            raise TypeError(f"shift must be an int or a sequence of ints, not {shift!r}")
        if axis is None:
            if shifts.size != 1:
                raise ValueError(f"one shift for axis=None, got {shift!r}")
            if x.ndim == 0:
                return x
            if [d for d in x.shape if d is None][1:]:  # (the shape could not be restored)
                raise ValueError("axis=None over more than one dim of unknown (None) "
                                 "length: give the axes, or name the dims")
            flat = ops.reshape(x, (-1,)) if x.ndim != 1 else x
            return ops.reshape(roll(flat, int(shifts[0]), 0), x.shape)
        axes = np.atleast_1d(np.asarray(axis, dtype=object))
        shifts, axes = np.broadcast_arrays(shifts, axes)
    except (TypeError, ValueError) as err:
        raise argument_error("roll", err, [x]) from None
    total: dict[int, int] = {}
    for s, a in zip(shifts.tolist(), axes.tolist()):
        a = _axis("roll", a, x.ndim, x)
        total[a] = total.get(a, 0) + int(s)
    for a, s in list(total.items()):
        d = x.shape[a]
        if isinstance(d, int) and d:
            total[a] = s % d
        if total[a] == 0:
            del total[a]
    if not total:
        return x
    return Roll(tuple(total.values()), tuple(total))(x)


# --------------------------------------------------------------------------- broadcast_to


class BroadcastTo(Op):
    """``np.broadcast_to(x, shape)``; only a static 1 (or a missing leading axis) broadcasts."""

    props = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(shape)

    def infer(self, x):
        if x.ndim > len(self.shape):
            raise ValueError(f"cannot broadcast {sh.format_shape(x.shape)} to fewer dims "
                             f"{sh.format_shape(self.shape)}")
        lead = len(self.shape) - x.ndim
        for d, t in zip(x.shape, self.shape[lead:]):
            if d != 1 and sh.dims_equal(d, t) is False:
                raise ValueError(f"cannot broadcast {sh.format_shape(x.shape)} to "
                                 f"{sh.format_shape(self.shape)}")
        return [TensorType(x.dtype, self.shape)]

    def target(self, shape: tuple, static: tuple, ctx) -> tuple:
        """The run-time target for an input of concrete ``shape`` (static shape ``static``):
        a dim that is not a static 1 must equal its target; a None target dim (only
        ``tile``/``repeat`` make them, on an axis they keep) is the input's length there."""
        lead = len(self.shape) - len(shape)
        target = tuple(d if isinstance(d, int) else shape[a - lead] if d is None
                       else ctx.resolve(d) for a, d in enumerate(self.shape))
        for d, s, t in zip(shape, static, target[lead:]):
            if s != 1 and d != t:
                raise ValueError(f"cannot broadcast {shape} to {target} (only a static 1 "
                                 "broadcasts)")
        return target

    def concrete_shape(self, shapes: list[tuple], ctx) -> tuple:
        return self.target(shapes[0], ctx.node.inputs[0].shape, ctx)

    def perform(self, inputs, ctx):
        x = inputs[0]
        target = self.target(np.shape(x), ctx.node.inputs[0].shape, ctx)
        return [np.ascontiguousarray(np.broadcast_to(x, target))]

    def bprop(self, inputs, outputs, index, grads):
        x, g = inputs[0], grads[0]
        lead = g.ndim - x.ndim
        stretched = tuple(lead + i for i, d in enumerate(x.shape)
                          if d == 1 and g.shape[lead + i] != 1)
        summed = tuple(range(lead)) + stretched
        if not summed:
            return g
        g = ops.sum(g, axis=summed, keepdims=True)
        return ops.squeeze(g, axis=tuple(range(lead))) if lead else g


def _target_shape(shape) -> tuple:
    if isinstance(shape, (int, np.integer, str, sympy.Basic)):
        shape = (shape,)
    out = []
    for d in shape:
        if d is None:
            raise ValueError(f"target shape {tuple(shape)} has an unknown (None) dim")
        if isinstance(d, (bool, np.bool_)) or isinstance(d, float):
            raise TypeError(f"dims must be ints or names, not {d!r}")
        out.append(sh.as_dim(int(d) if isinstance(d, np.integer) else d))
    return tuple(out)


def broadcast_to(x, shape) -> Variable:
    """``x`` read as ``shape`` (``np.broadcast_to``): leading axes are added and static-1 axes
    stretched; dims may be names of symbolic dims bound by an input.

    >>> sg.broadcast_to(b, ("batch", 10))
    """
    x = as_variable(x)
    try:
        target = _target_shape(shape)
    except (TypeError, ValueError) as err:
        raise argument_error("broadcast_to", err, [x]) from None
    if target == tuple(x.shape):
        return x
    return BroadcastTo(target)(x)


# --------------------------------------------------------------------------- compositions


def _int_arg(function: str, value, what: str, x: Variable, minimum: int = 0) -> int:
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{what} must be an int, not {value!r}")
        value = operator.index(value)
    except TypeError:
        raise argument_error(function, TypeError(f"{what} must be an int, not {value!r}"),
                             [x]) from None
    if value < minimum:
        raise argument_error(function, ValueError(f"{what} must be >= {minimum}, got {value}"),
                             [x])
    return value


def _copies(x: Variable, counts: list[int], inner: bool) -> Variable:
    """Each axis ``a`` of ``x`` holding ``counts[a]`` copies: ``inner`` repeats every element
    (``repeat``), else the whole axis (``tile``): a new axis next to ``a`` broadcast to the
    count, merged back by a reshape (no arithmetic; the gradient sums the copies)."""
    if all(c == 1 for c in counts):
        return x
    if sum(d is None for d in x.shape) > 1:  # the reshape back could not tell them apart
        raise argument_error("repeat" if inner else "tile", ValueError(
            "more than one dim of unknown (None) length; give them names (symbolic dims) "
            "or fixed lengths"), [x])
    positions, at = [], 0  # where each new axis goes in the expanded array
    for c in counts:
        if c != 1:
            positions.append(at + (1 if inner else 0))
            at += 1
        at += 1
    y = ops.expand_dims(x, tuple(positions))
    target, merged = [], []
    for d, c in zip(x.shape, counts):
        if c == 1:
            target.append(d)
            merged.append(d)
            continue
        pair = [d, c] if inner else [c, d]
        target.extend(pair)
        merged.append(None if d is None else sh.shape_product([d, c]))
    if target != list(y.shape):  # (not broadcast_to: an axis of unknown length is kept)
        y = BroadcastTo(tuple(target))(y)
    return ops.reshape(y, tuple(merged))


def tile(x, reps) -> Variable:
    """``np.tile``: ``x`` repeated ``reps`` times per axis (shorter ``reps`` apply to the last
    axes; longer ones add leading axes).

    >>> sg.tile(row, (4, 1))
    """
    x = as_variable(x)
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    reps = tuple(_int_arg("tile", r, "reps", x) for r in reps)
    if len(reps) > x.ndim:
        x = ops.expand_dims(x, tuple(range(len(reps) - x.ndim)))
    counts = [1] * (x.ndim - len(reps)) + list(reps)
    return _copies(x, counts, inner=False)


def repeat(x, repeats, axis=None) -> Variable:
    """``np.repeat``: every element ``repeats`` times along ``axis`` (None: of the flattened
    array); ``repeats`` an int or one count per element (a static array).

    >>> sg.repeat(x, 2, axis=0)      # rows 0, 0, 1, 1, ...
    """
    x = as_variable(x)
    if axis is None:
        x, axis = (ops.reshape(x, (-1,)) if x.ndim != 1 else x), 0
    axis = _axis("repeat", axis, x.ndim, x)
    if isinstance(repeats, Variable):
        raise argument_error("repeat", TypeError(
            "repeats must be an int or a static array (the output shape depends on it)"), [x])
    counts = np.asarray(repeats)
    if counts.ndim == 0 or counts.size == 1:
        r = _int_arg("repeat", counts.reshape(()).item() if counts.dtype.kind in "iu"
                     else repeats, "repeats", x)
        per_axis = [1] * x.ndim
        per_axis[axis] = r
        return _copies(x, per_axis, inner=True)
    n = x.shape[axis]
    if counts.dtype.kind not in "iu" or counts.ndim != 1:
        raise argument_error("repeat", TypeError(
            f"repeats must be ints in a 1-d array, got {counts.dtype.name} of shape "
            f"{counts.shape}"), [x])
    if not isinstance(n, int) or counts.size != n:
        raise argument_error("repeat", ValueError(
            f"{counts.size} repeats for axis {axis} of length {sh.format_dim(n)}"), [x])
    if (counts < 0).any():
        raise argument_error("repeat", ValueError("negative repeats"), [x])
    index = np.repeat(np.arange(n, dtype=np.int64), counts)
    return x[(slice(None),) * axis + (index,)]


class Triangle(Op):
    """``np.tril`` (``lower``) or ``np.triu`` of the last two axes with diagonal offset ``k``:
    the input at the same index, or 0 -- an elementwise-like op (its lowering compares the
    two loop indices), so it fuses with the elementwise work around it."""

    props = ("k", "lower")

    def __init__(self, k: int, lower: bool):
        self.k, self.lower = int(k), bool(lower)

    @property
    def name(self) -> str:
        return "tril" if self.lower else "triu"

    def infer(self, x):
        if x.ndim < 2:
            raise ValueError(f"needs at least 2 dims (the matrix is the last two), got {x.ndim}")
        return [TensorType(x.dtype, x.shape)]

    def perform(self, inputs, ctx):
        x = inputs[0]
        return [_contiguous((np.tril if self.lower else np.triu)(x, self.k))]

    def bprop(self, inputs, outputs, index, grads):
        return Triangle(self.k, self.lower)(grads[0])


def _triangle(function: str, x, k, lower: bool) -> Variable:
    x = as_variable(x)
    k = _int_arg(function, k, "k", x, minimum=-(2 ** 62))
    if x.ndim < 2:
        raise argument_error(function, ValueError(
            f"needs at least 2 dims (the matrix is the last two), got {x.ndim}"), [x])
    return Triangle(k, lower)(x)


def tril(x, k: int = 0) -> Variable:
    """Lower triangle of the last two axes (``np.tril``): ``x[..., i, j]`` where ``j <= i + k``,
    else 0 (leading axes are a batch).  The gradient is the same triangle of the gradient."""
    return _triangle("tril", x, k, lower=True)


def triu(x, k: int = 0) -> Variable:
    """Upper triangle of the last two axes (``np.triu``): ``x[..., i, j]`` where ``j >= i + k``,
    else 0."""
    return _triangle("triu", x, k, lower=False)


def split(x, sections_or_indices, axis: int = 0) -> list[Variable]:
    """``np.split``: ``x`` cut along ``axis`` into equal sections (an int that divides the
    length) or at the given indices, as a list of Variables.  Each piece is a crop read in
    place; its gradient is the piece's gradient padded with zeros (unused pieces add none).

    >>> q, k, v = sg.split(qkv, 3, axis=-1)
    """
    x = as_variable(x)
    axis = _axis("split", axis, x.ndim, x)
    n = x.shape[axis]
    if np.ndim(sections_or_indices) == 0:
        count = _int_arg("split", sections_or_indices, "the number of sections", x, 1)
        if not isinstance(n, int):
            raise argument_error("split", ValueError(
                f"{count} equal sections of axis {axis}, whose length "
                f"{sh.format_dim(n)} is not static: give the split indices"), [x])
        if n % count:
            raise argument_error("split", ValueError(
                f"{count} sections do not divide axis {axis} of length {n} equally"), [x])
        bounds = [(s * (n // count), (s + 1) * (n // count)) for s in range(count)]
    else:
        indices = [_int_arg("split", i, "split indices", x, minimum=-(2 ** 62))
                   for i in sections_or_indices]
        edges = [0, *indices, None]
        if isinstance(n, int):
            bounds = []
            for a, b in zip(edges[:-1], edges[1:]):
                start, stop, _ = slice(a, b).indices(n)
                bounds.append((start, max(start, stop)))
        elif n is None or any(i < 0 for i in indices) or indices != sorted(indices):
            raise argument_error("split", ValueError(
                f"axis {axis} has the run-time length {sh.format_dim(n)}: give sorted "
                "nonnegative indices (or a static length)"), [x])
        else:
            bounds = list(zip(edges[:-1], [*indices, n]))
    pieces = []
    for start, stop in bounds:
        if start == 0 and (stop is n or (isinstance(n, int) and stop == n)):
            pieces.append(x)
            continue
        widths = [(0, 0)] * x.ndim
        widths[axis] = (-start, sympy.sympify(stop - n))  # stop - n <= 0: a crop
        pieces.append(Pad(tuple(widths))(x))
    return pieces

