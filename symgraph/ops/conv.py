"""Convolution and pooling, NCHW like torch (``sg.nn.conv2d``, ``conv1d``, ``max_pool2d``,
``avg_pool2d``).

The op classes and their gradients, each an op of its own so that every ``bprop`` returns
graph ops and second derivatives work:

* ``Conv2D(x, w)``: cross-correlation with stride, asymmetric zero padding, dilation and
  groups.  Its input gradient is ``Conv2DInputGrad(g, w, x)`` (the transposed convolution;
  ``x`` gives only its shape) and its weight gradient ``Conv2DWeightGrad(x, g)`` (the
  correlation of the input with the output gradient).  All three are bilinear, so the
  gradients of each are the other two.
* ``MaxPool2D(x)``: padding is -inf; the gradient goes to the first maximum of each window
  (row-major, as torch): ``MaxPool2DGrad(x, g)`` scatters to it, ``MaxPool2DGather(x, v)``
  reads ``v`` at it -- each the other's gradient in its second input; in ``x`` both are
  piecewise constant (gradient zero almost everywhere).
* ``AvgPool2D(x)``: zero padding counted (``count_include_pad=True``); its gradient
  ``AvgPool2DGrad(g, x)`` is the transposed average pooling, whose gradient is ``AvgPool2D``.

Bias and 1-d convolution are graph around ``Conv2D`` (an add fused into the consumer's
loop, reshapes that are views).  Pipeline: these ops -> grad -> rewrite -> codegen
(``codegen/lower_conv.py``: gemm over im2col tiles or direct loops, chosen by shape).
"""

from __future__ import annotations

import numpy as np
import sympy

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Op, TensorType, Variable, as_variable
from symgraph.ops.arguments import argument_error
from symgraph.sentinels import DISCONNECTED

__all__ = ["avg_pool2d", "conv1d", "conv2d", "max_pool2d"]


# --------------------------------------------------------------------------- geometry


def output_dim(n, k: int, stride: int, pad: tuple[int, int], dilation: int = 1):
    """Output length of a window sweep over ``n`` (int, symbolic or None)."""
    span = dilation * (k - 1) + 1
    if n is None:
        return None
    if isinstance(n, int):
        padded = n + pad[0] + pad[1]
        if padded < span:
            raise sh.ShapeError(f"kernel {k} (dilated extent {span}) is bigger than the "
                                f"padded input {padded} ({n} + padding {pad[0]}+{pad[1]})")
        return (padded - span) // stride + 1
    if stride == 1:
        return n + (pad[0] + pad[1] - span + 1)
    return sympy.floor((n + pad[0] + pad[1] - span) / stride) + 1


#: bytes of windows the numpy reference builds at once: a batch whose windows
#: (``C * Ho * Wo * kh * kw`` values an image) take more is computed in chunks of images
PATCH_BYTES = 64 << 20


class _Window(Op):
    """What every op here shares: a 2-d window geometry over NCHW inputs."""

    props = ("kernel", "stride", "padding", "dilation", "groups")

    def __init__(self, kernel, stride, padding, dilation=(1, 1), groups=1):
        self.kernel = tuple(int(v) for v in kernel)
        self.stride = tuple(int(v) for v in stride)
        self.padding = tuple(tuple(int(v) for v in p) for p in padding)
        self.dilation = tuple(int(v) for v in dilation)
        self.groups = int(groups)

    def out_hw(self, h, w) -> tuple:
        return tuple(output_dim(n, self.kernel[a], self.stride[a], self.padding[a],
                                self.dilation[a]) for a, n in enumerate((h, w)))

    def windows(self, ho: int, wo: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column index arrays into the padded input, shaped to broadcast to
        ``(ho, wo, kh, kw)``."""
        (kh, kw), (sy, sx), (dy, dx) = self.kernel, self.stride, self.dilation
        rows = np.arange(ho)[:, None] * sy + np.arange(kh)[None, :] * dy
        cols = np.arange(wo)[:, None] * sx + np.arange(kw)[None, :] * dx
        return rows[:, None, :, None], cols[None, :, None, :]

    def chunks(self, x_shape) -> list[slice]:
        """Slices of the batch whose windows take at most :data:`PATCH_BYTES` (one image at
        least): the reference's patches of a whole batch took GBs for a convnet's step, and
        ``check_finite``'s replay of a failed llvm step runs the reference."""
        n, c, h, w = x_shape
        ho, wo = self.out_hw(h, w)
        per_image = max(1, c * ho * wo * self.kernel[0] * self.kernel[1] * 8)
        step = max(1, PATCH_BYTES // per_image)
        return [slice(i, i + step) for i in range(0, n, step)] or [slice(0, 0)]

    def by_images(self, fn, x_shape, *batched: np.ndarray) -> np.ndarray:
        """``fn`` of each chunk of images of the ``batched`` arrays, joined on the batch."""
        parts = self.chunks(x_shape)
        if len(parts) == 1:
            return fn(*batched)
        return np.concatenate([fn(*(a[part] for a in batched)) for part in parts])

    def pad(self, x: np.ndarray, value: float = 0.0) -> np.ndarray:
        (pt, pb), (pl, pr) = self.padding
        return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)

    def patches(self, x: np.ndarray, value: float = 0.0) -> np.ndarray:
        """``(N, C, Ho, Wo, kh, kw)``: every window of the padded ``x``."""
        ho, wo = self.out_hw(x.shape[2], x.shape[3])
        rows, cols = self.windows(ho, wo)
        return self.pad(x, value)[:, :, rows, cols]

    def fold(self, patches: np.ndarray, h: int, w: int) -> np.ndarray:
        """The transpose of :meth:`patches`: add every window back into an ``(N, C, h, w)``
        array (padding cropped)."""
        n, c, ho, wo = patches.shape[:4]
        (pt, pb), (pl, pr) = self.padding
        out = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=patches.dtype)
        rows, cols = self.windows(ho, wo)
        np.add.at(out, (slice(None), slice(None), rows, cols), patches)
        return out[:, :, pt:pt + h, pl:pl + w]


def _check_nchw(x, what: str = "input") -> None:
    if x.ndim != 4:
        raise ValueError(f"the {what} must have 4 dims (N, C, H, W), got {x.ndim}")
    if x.dtype.kind != "f":
        raise TypeError(f"the {what} must be float, got {x.dtype}")


def _result(x: np.ndarray, ctx) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=ctx.out_dtype)


# --------------------------------------------------------------------------- convolution


class _Conv(_Window):
    """Shared by the three convolution ops: groups arithmetic and the numpy products."""

    def check_operands(self, x_shape, w_shape) -> None:
        c, f, cg = x_shape[1], w_shape[0], w_shape[1]
        g = self.groups
        if isinstance(f, int) and f % g:
            raise ValueError(f"groups={g} does not divide the {f} filters")
        if isinstance(c, int) and c % g:
            raise ValueError(f"groups={g} does not divide the {c} input channels")
        if sh.dims_equal(c, sh.shape_product([cg, g])) is False:
            raise sh.ShapeError(f"input channels {sh.format_dim(c)} != weight channels "
                                f"{sh.format_dim(cg)} x groups {g}")
        if tuple(w_shape[2:]) != self.kernel:
            raise sh.ShapeError(f"weight kernel {sh.format_shape(tuple(w_shape[2:]))} != "
                                f"{self.kernel}")

    def geometry(self) -> tuple:
        return self.kernel, self.stride, self.padding, self.dilation, self.groups

    def check_gradient(self, g, x_shape, filters, dtype) -> None:
        """An output gradient ``g`` (a type, or an array at run time) must be shaped like
        the convolution's output, ``(N, F, Ho, Wo)``, and of the operands' dtype: a
        hand-built gradient graph that gets it wrong is refused here, not read out of
        bounds by a kernel."""
        if np.dtype(g.dtype) != np.dtype(dtype):
            raise TypeError(f"the output gradient's dtype {np.dtype(g.dtype)} is not the "
                            f"operands' {np.dtype(dtype)}")
        want = (x_shape[0], filters, *self.out_hw(*x_shape[2:]))
        if any(sh.dims_equal(a, b) is False for a, b in zip(g.shape, want)):
            raise sh.ShapeError(f"output gradient shape {sh.format_shape(tuple(g.shape))} != "
                                f"the convolution's output shape {sh.format_shape(want)}")

    def forward(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        g = self.groups
        p = self.patches(x)
        n, c, ho, wo, kh, kw = p.shape
        p = p.reshape(n, g, c // g, ho, wo, kh, kw)
        wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
        out = np.einsum("ngchwij,gfcij->ngfhw", p, wg, optimize=True)
        return out.reshape(n, w.shape[0], ho, wo)

    def input_grad(self, g_out: np.ndarray, w: np.ndarray, h: int, w_: int) -> np.ndarray:
        gr = self.groups
        n, f, ho, wo = g_out.shape
        gg = g_out.reshape(n, gr, f // gr, ho, wo)
        wg = w.reshape(gr, f // gr, *w.shape[1:])
        p = np.einsum("ngfhw,gfcij->ngchwij", gg, wg, optimize=True)
        p = p.reshape(n, gr * w.shape[1], ho, wo, *self.kernel)
        return self.fold(p, h, w_)

    def weight_grad(self, x: np.ndarray, g_out: np.ndarray) -> np.ndarray:
        gr = self.groups
        p = self.patches(x)
        n, c, ho, wo, kh, kw = p.shape
        f = g_out.shape[1]
        p = p.reshape(n, gr, c // gr, ho, wo, kh, kw)
        gg = g_out.reshape(n, gr, f // gr, ho, wo)
        out = np.einsum("ngchwij,ngfhw->gfcij", p, gg, optimize=True)
        return out.reshape(f, c // gr, kh, kw)


class Conv2D(_Conv):
    """``out[n, f, i, j] = sum_{c, a, b} x_pad[n, c, i*sy + a*dy, j*sx + b*dx] w[f, c, a, b]``
    over the channels of ``f``'s group (torch's ``conv2d`` without bias)."""

    name = "conv2d"

    def infer(self, x, w):
        _check_nchw(x)
        _check_nchw(w, "weight")
        if x.dtype != w.dtype:
            raise TypeError(f"input and weight dtypes differ: {x.dtype} vs {w.dtype}")
        self.check_operands(x.shape, w.shape)
        return [TensorType(x.dtype, (x.shape[0], w.shape[0], *self.out_hw(*x.shape[2:])))]

    def perform(self, inputs, ctx):
        x, w = inputs
        self.check_operands(x.shape, w.shape)  # symbolic channels: now known
        return [_result(self.by_images(lambda xs: self.forward(xs, w), x.shape, x), ctx)]

    def bprop(self, inputs, outputs, index, grads):
        x, w = inputs
        if index == 0:
            return Conv2DInputGrad(*self.geometry())(grads[0], w, x)
        return Conv2DWeightGrad(*self.geometry())(x, grads[0])


class Conv2DInputGrad(_Conv):
    """The gradient of ``Conv2D`` in its input: the transposed convolution of the output
    gradient ``g`` with ``w``, shaped like ``x`` (whose values are never read)."""

    name = "conv2d_input_grad"

    def infer(self, g, w, x):
        _check_nchw(g, "output gradient")
        _check_nchw(w, "weight")
        self.check_operands(x.shape, w.shape)
        self.check_gradient(g, x.shape, w.shape[0], w.dtype)
        return [TensorType(g.dtype, x.shape)]

    def shape_only(self, index: int) -> bool:
        return index == 2

    def perform(self, inputs, ctx):
        g, w, x = inputs
        self.check_operands(np.shape(x), np.shape(w))
        self.check_gradient(g, np.shape(x), w.shape[0], w.dtype)  # symbolic dims: now known
        h, w_ = np.shape(x)[2:]
        return [_result(self.by_images(lambda gs: self.input_grad(gs, w, h, w_), np.shape(x),
                                       g), ctx)]

    def bprop(self, inputs, outputs, index, grads):
        g, w, x = inputs
        if index == 0:      # linear in g: the forward convolution of the cotangent
            return Conv2D(*self.geometry())(grads[0], w)
        if index == 1:      # <conv_T(g, w), v> = <g, conv(v, w)>: the weight gradient
            return Conv2DWeightGrad(*self.geometry())(grads[0], g)
        return DISCONNECTED


class Conv2DWeightGrad(_Conv):
    """The gradient of ``Conv2D`` in its weight: the correlation of the input ``x`` with the
    output gradient ``g``, shaped ``(F, C / groups, kh, kw)``."""

    name = "conv2d_weight_grad"

    def infer(self, x, g):
        _check_nchw(x)
        _check_nchw(g, "output gradient")
        c = x.shape[1]
        if isinstance(c, int) and c % self.groups:
            raise ValueError(f"groups={self.groups} does not divide the {c} input channels")
        f = g.shape[1]
        if isinstance(f, int) and f % self.groups:
            raise ValueError(f"groups={self.groups} does not divide the output gradient's "
                             f"{f} channels")
        self.check_gradient(g, x.shape, f, x.dtype)
        cg = c // self.groups if isinstance(c, int) else None
        return [TensorType(g.dtype, (f, cg, *self.kernel))]

    def perform(self, inputs, ctx):
        x, g = inputs
        self.check_gradient(g, x.shape, g.shape[1], x.dtype)  # symbolic dims: now known
        parts = self.chunks(x.shape)  # a sum over the batch: of its chunks' sums
        return [_result(sum(self.weight_grad(x[p], g[p]) for p in parts), ctx)]

    def bprop(self, inputs, outputs, index, grads):
        x, g = inputs
        if index == 0:      # <dW(x, g), V> = <x, conv_T(g, V)>
            return Conv2DInputGrad(*self.geometry())(g, grads[0], x)
        return Conv2D(*self.geometry())(x, grads[0])


# --------------------------------------------------------------------------- pooling


class _Pool(_Window):
    props = ("kernel", "stride", "padding")

    def __init__(self, kernel, stride, padding):
        super().__init__(kernel, stride, padding)

    def pooled_type(self, x) -> TensorType:
        _check_nchw(x)
        for a in range(2):
            if 2 * max(self.padding[a]) > self.kernel[a]:
                raise ValueError(f"padding {self.padding[a]} is more than half the kernel "
                                 f"{self.kernel[a]} (as torch refuses)")
        return TensorType(x.dtype, (*x.shape[:2], *self.out_hw(*x.shape[2:])))

    def geometry(self) -> tuple:
        return self.kernel, self.stride, self.padding

    def argmax(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per output element: the flat position in the window of the first maximum, and
        the padded-input (row, column) it sits at (as torch: ``>`` or NaN replaces)."""
        p = self.patches(x, -np.inf)
        n, c, ho, wo, kh, kw = p.shape
        flat = p.reshape(n, c, ho, wo, kh * kw)
        nan = np.isnan(flat)
        best = np.argmax(flat, -1)
        # a window of -inf only: torch keeps its first real element, not a padded one
        real = self.patches(np.ones((1, 1, *x.shape[2:])), 0.0).reshape(ho, wo, kh * kw)
        best = np.where(np.take_along_axis(flat, best[..., None], -1)[..., 0] == -np.inf,
                        np.argmax(real, -1), best)
        best = np.where(nan.any(-1), kh * kw - 1 - np.argmax(nan[..., ::-1], -1), best)
        a, b = np.divmod(best, kw)
        (sy, sx) = self.stride
        rows = np.arange(ho)[:, None] * sy + a
        cols = np.arange(wo)[None, :] * sx + b
        return rows, cols

    def scatter(self, x: np.ndarray, g: np.ndarray, dtype) -> np.ndarray:
        rows, cols = self.argmax(x)
        (pt, pb), (pl, pr) = self.padding
        n, c, h, w = x.shape
        out = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=dtype)
        nn, cc = np.indices(g.shape[:2])
        np.add.at(out, (nn[..., None, None], cc[..., None, None], rows, cols), g)
        return out[:, :, pt:pt + h, pl:pl + w]

    def gather(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        rows, cols = self.argmax(x)
        nn, cc = np.indices(x.shape[:2])
        return self.pad(v)[nn[..., None, None], cc[..., None, None], rows, cols]


class MaxPool2D(_Pool):
    """The maximum of each window (padding -inf), torch's ``max_pool2d``."""

    name = "max_pool2d"

    def infer(self, x):
        return [self.pooled_type(x)]

    def perform(self, inputs, ctx):
        x = inputs[0]
        return [_result(self.by_images(lambda xs: self.patches(xs, -np.inf).max(axis=(4, 5)),
                                       x.shape, x), ctx)]

    def bprop(self, inputs, outputs, index, grads):
        return MaxPool2DGrad(*self.geometry())(inputs[0], grads[0])


class MaxPool2DGrad(_Pool):
    """``g`` (pooled shape) added at each window's first maximum of ``x``: the gradient of
    ``MaxPool2D``; overlapping windows accumulate."""

    name = "max_pool2d_grad"

    def infer(self, x, g):
        out = self.pooled_type(x)
        if any(sh.dims_equal(a, b) is False for a, b in zip(out.shape, g.shape)):
            raise sh.ShapeError(f"gradient shape {sh.format_shape(g.shape)} != pooled shape "
                                f"{sh.format_shape(out.shape)}")
        return [TensorType(g.dtype, x.shape)]

    def perform(self, inputs, ctx):
        x, g = inputs
        return [_result(self.by_images(lambda xs, gs: self.scatter(xs, gs, ctx.out_dtype),
                                       x.shape, x, g), ctx)]

    def bprop(self, inputs, outputs, index, grads):
        x, g = inputs
        if index == 0:      # the arg-max positions are piecewise constant in x
            return ops.zeros_like(x)
        return MaxPool2DGather(*self.geometry())(x, grads[0])


class MaxPool2DGather(_Pool):
    """``v`` (shaped like ``x``) read at each window's first maximum of ``x``: the gradient
    of ``MaxPool2DGrad`` in ``g``; ``MaxPool2D(x)`` is ``MaxPool2DGather(x, x)``."""

    name = "max_pool2d_gather"

    def infer(self, x, v):
        out = self.pooled_type(x)
        if any(sh.dims_equal(a, b) is False for a, b in zip(x.shape, v.shape)) or v.ndim != 4:
            raise sh.ShapeError(f"values shape {sh.format_shape(v.shape)} != input shape "
                                f"{sh.format_shape(x.shape)}")
        return [TensorType(v.dtype, out.shape)]

    def perform(self, inputs, ctx):
        x, v = inputs
        return [_result(self.by_images(self.gather, x.shape, x, v), ctx)]

    def bprop(self, inputs, outputs, index, grads):
        x, v = inputs
        if index == 0:
            return ops.zeros_like(x)
        return MaxPool2DGrad(*self.geometry())(x, grads[0])


class AvgPool2D(_Pool):
    """The mean of each window, padding counted as zeros (torch's ``avg_pool2d`` with
    ``count_include_pad=True``)."""

    name = "avg_pool2d"

    def infer(self, x):
        return [self.pooled_type(x)]

    def perform(self, inputs, ctx):
        x, (kh, kw) = inputs[0], self.kernel
        return [_result(self.by_images(lambda xs: self.patches(xs).sum(axis=(4, 5)) / (kh * kw),
                                       x.shape, x), ctx)]

    def bprop(self, inputs, outputs, index, grads):
        return AvgPool2DGrad(*self.geometry())(grads[0], inputs[0])


class AvgPool2DGrad(_Pool):
    """The transposed average pooling: each of ``g``'s values spread evenly over its window,
    shaped like ``x`` (whose values are never read)."""

    name = "avg_pool2d_grad"

    def infer(self, g, x):
        out = self.pooled_type(x)
        if any(sh.dims_equal(a, b) is False for a, b in zip(out.shape, g.shape)):
            raise sh.ShapeError(f"gradient shape {sh.format_shape(g.shape)} != pooled shape "
                                f"{sh.format_shape(out.shape)}")
        return [TensorType(g.dtype, x.shape)]

    def shape_only(self, index: int) -> bool:
        return index == 1

    def perform(self, inputs, ctx):
        g, x = inputs
        kh, kw = self.kernel
        h, w = np.shape(x)[2:]

        def spread(gs: np.ndarray) -> np.ndarray:
            each = np.broadcast_to((gs / (kh * kw))[..., None, None], (*gs.shape, kh, kw))
            return self.fold(np.asarray(each, dtype=ctx.out_dtype), h, w)
        return [_result(self.by_images(spread, np.shape(x), g), ctx)]

    def bprop(self, inputs, outputs, index, grads):
        if index == 0:
            return AvgPool2D(*self.geometry())(grads[0])
        return DISCONNECTED


# --------------------------------------------------------------------------- user functions


def _pair(function: str, name: str, value, inputs, minimum: int) -> tuple[int, int]:
    try:
        pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    except TypeError:  # a float or None: the message below, not "not iterable"
        pair = ()
    if (len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair)
            or any(v < minimum for v in pair)):
        raise argument_error(function, ValueError(
            f"{name} must be an int >= {minimum} or a pair of them, got {value!r}"), inputs)
    return int(pair[0]), int(pair[1])


def _padding(function: str, value, kernel, dilation, stride, inputs) -> tuple:
    if isinstance(value, str):
        if value == "valid":
            return ((0, 0), (0, 0))
        if value != "same":
            raise argument_error(function, ValueError(
                f"padding must be an int, a pair, 'valid' or 'same', got {value!r}"), inputs)
        if stride != (1, 1):
            raise argument_error(function, ValueError(
                f"padding='same' needs stride 1 (as torch), got stride {stride}"), inputs)
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return tuple((t // 2, t - t // 2) for t in total)  # the odd one on the far side
    ph, pw = _pair(function, "padding", value, inputs, 0)
    return ((ph, ph), (pw, pw))


def _kernel_of(function: str, w: Variable, inputs) -> tuple[int, int]:
    if w.ndim != 4 or not all(isinstance(d, int) for d in w.shape[2:]):
        raise argument_error(function, ValueError(
            "the weight must be (F, C/groups, kh, kw) with a static kernel size"), inputs)
    return w.shape[2], w.shape[3]


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Variable:
    """2-d cross-correlation, NCHW, as ``torch.nn.functional.conv2d``: ``x`` (N, C, H, W),
    ``w`` (F, C/groups, kh, kw), optional bias ``b`` (F,); ``stride``, ``dilation`` an int
    or a pair; ``padding`` an int, a pair, ``"valid"`` or ``"same"`` (stride 1 only).

    >>> y = sg.nn.conv2d(x, w, b, padding="same")
    """
    x, w = as_variable(x), as_variable(w)
    inputs = [x, w]
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise argument_error("conv2d", ValueError(f"groups must be an int >= 1, got {groups!r}"),
                             inputs)
    stride = _pair("conv2d", "stride", stride, inputs, 1)
    dilation = _pair("conv2d", "dilation", dilation, inputs, 1)
    kernel = _kernel_of("conv2d", w, inputs)
    pads = _padding("conv2d", padding, kernel, dilation, stride, inputs)
    out = Conv2D(kernel, stride, pads, dilation, groups)(x, w)
    if b is None:
        return out
    b = as_variable(b)
    if b.ndim != 1 or sh.dims_equal(b.shape[0], w.shape[0]) is False:
        raise argument_error("conv2d", sh.ShapeError(
            f"bias must be ({sh.format_dim(w.shape[0])},), got {sh.format_shape(b.shape)}"),
            [x, w, b])
    return out + ops.expand_dims(b, (0, 2, 3))


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Variable:
    """1-d cross-correlation, NCL, as ``torch.nn.functional.conv1d``: ``x`` (N, C, L), ``w``
    (F, C/groups, k); ``padding`` an int, ``"valid"`` or ``"same"``.  A ``conv2d`` over a
    unit height (the reshapes are views)."""
    x, w = as_variable(x), as_variable(w)
    for value, what in ((x, "input (N, C, L)"), (w, "weight (F, C/groups, k)")):
        if value.ndim != 3:
            raise argument_error("conv1d", ValueError(f"the {what} must have 3 dims"), [x, w])
    for name, value in (("stride", stride), ("dilation", dilation)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise argument_error("conv1d", ValueError(f"{name} must be an int >= 1, got "
                                                      f"{value!r}"), [x, w])
    if isinstance(padding, str):
        known = padding in ("valid", "same")
    else:
        known = isinstance(padding, (int, np.integer)) and padding >= 0
    if not known:
        raise argument_error("conv1d", ValueError(
            f"padding must be an int >= 0, 'valid' or 'same', got {padding!r}"), [x, w])
    if not isinstance(w.shape[2], int):
        raise argument_error("conv1d", ValueError(
            "the weight must be (F, C/groups, k) with a static kernel size k"), [x, w])
    if padding == "same" and stride != 1:
        raise argument_error("conv1d", ValueError(
            f"padding='same' needs stride 1 (as torch), got stride {stride}"), [x, w])
    if not isinstance(padding, str):
        padding = (0, int(padding))
    try:
        out = conv2d(ops.expand_dims(x, 2), ops.expand_dims(w, 2), None, (1, stride), padding,
                     (1, dilation), groups)
    except (sh.ShapeError, TypeError, ValueError) as err:
        if not hasattr(err, "reason"):
            raise
        # the user called conv1d on 3-d arrays: say so, not conv2d on the unit-height views
        raise argument_error("conv1d", type(err)(err.reason), [x, w]) from None
    out = ops.squeeze(out, 2)
    if b is None:
        return out
    b = as_variable(b)
    if b.ndim != 1 or sh.dims_equal(b.shape[0], w.shape[0]) is False:
        raise argument_error("conv1d", sh.ShapeError(
            f"bias must be ({sh.format_dim(w.shape[0])},), got {sh.format_shape(b.shape)}"),
            [x, w, b])
    return out + ops.expand_dims(b, (0, 2))


def _pool_geometry(function: str, x: Variable, kernel_size, stride, padding) -> tuple:
    kernel = _pair(function, "kernel_size", kernel_size, [x], 1)
    stride = kernel if stride is None else _pair(function, "stride", stride, [x], 1)
    ph, pw = _pair(function, "padding", padding, [x], 0)
    return kernel, stride, ((ph, ph), (pw, pw))


def max_pool2d(x, kernel_size, stride=None, padding: int = 0) -> Variable:
    """Maximum over windows, NCHW, as ``torch.nn.functional.max_pool2d``: ``stride``
    defaults to ``kernel_size``; padding is -inf (at most half the kernel); the gradient
    goes to the first maximum of each window.

    >>> y = sg.nn.max_pool2d(x, 2)
    """
    x = as_variable(x)
    return MaxPool2D(*_pool_geometry("max_pool2d", x, kernel_size, stride, padding))(x)


def avg_pool2d(x, kernel_size, stride=None, padding: int = 0) -> Variable:
    """Mean over windows, NCHW, as ``torch.nn.functional.avg_pool2d`` (padding counted as
    zeros: ``count_include_pad=True``); ``stride`` defaults to ``kernel_size``."""
    x = as_variable(x)
    return AvgPool2D(*_pool_geometry("avg_pool2d", x, kernel_size, stride, padding))(x)
