"""Layout ops of api v1.1: pad, roll, tril/triu, repeat, tile, split, broadcast_to.

Oracles: numpy's function of the same name for values, central finite differences (float64)
of that numpy function for gradients, torch's autograd (float64) where torch has the op;
second order as grad of (grad . v) against finite differences of the first-order gradient.
Every graph test runs on both backends (the ``backend`` fixture).
"""

import numpy as np
import pytest
import torch
from helpers import fd_grad

import symgraph as sg


def check_op(backend, build, ref, shapes, seed=0, exact=True):
    """``build(*vars)`` against ``ref(*arrays)``: the value, then the gradient of
    ``sum(out * c)`` (``c`` random) for every argument against finite differences."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s) for s in shapes]
    variables = [sg.tensor(f"a{i}", s) for i, s in enumerate(shapes)]
    out = build(*variables)
    expected = ref(*values)
    assert out.shape == np.shape(expected), (out.shape, np.shape(expected))
    cv = rng.standard_normal(np.shape(expected))
    c = sg.tensor("c", np.shape(expected))
    grads = sg.grad((out * c).sum(), variables)
    got, *gvals = sg.function([*variables, c], [out, *grads], backend=backend)(*values, cv)
    np.testing.assert_array_equal(got, expected) if exact else \
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    for k, (g, v) in enumerate(zip(gvals, values)):
        def cost(a, k=k):
            args = list(values)
            args[k] = a
            return np.sum(ref(*args) * cv)
        assert np.shape(g) == v.shape
        np.testing.assert_allclose(g, fd_grad(cost, v), rtol=1e-6, atol=1e-8,
                                   err_msg=f"gradient of argument {k}")


def torch_grad(fn, xv, cv):
    """Value and gradient of ``sum(fn(x) * c)`` by torch autograd (float64)."""
    xt = torch.tensor(xv, requires_grad=True)
    out = fn(xt)
    (out * torch.tensor(cv)).sum().backward()
    return out.detach().numpy(), xt.grad.numpy()


def check_torch(backend, build, fn, shape, seed=1):
    rng = np.random.default_rng(seed)
    xv = rng.standard_normal(shape)
    x = sg.tensor("x", shape)
    out = build(x)
    cv = rng.standard_normal(out.shape)
    value, grad = sg.function([x], [out, sg.grad((out * cv).sum(), x)], backend=backend)(xv)
    tv, tg = torch_grad(fn, xv, cv)
    np.testing.assert_array_equal(value, tv)
    np.testing.assert_allclose(grad, tg, rtol=1e-13, atol=1e-13)


def check_second_order(backend, build, shape, seed=2):
    """grad of ``grad(sum(tanh(build(x)) * c)) . v`` against finite differences of the
    first-order gradient (tanh makes the Hessian non-zero)."""
    rng = np.random.default_rng(seed)
    xv, vv = rng.standard_normal(shape), rng.standard_normal(shape)
    x = sg.tensor("x", shape)
    out = build(x)
    cv = rng.standard_normal(out.shape)
    g = sg.grad((sg.tanh(out) * cv).sum(), x)
    hv = sg.grad((g * vv).sum(), x)
    f_g = sg.function([x], g, backend=backend)
    got = sg.function([x], hv, backend=backend)(xv)
    np.testing.assert_allclose(got, fd_grad(lambda a: np.sum(f_g(a) * vv), xv),
                               rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- pad

PADS = [1, (2, 0), ((0, 1), (3, 2)), ((2, 2),), ((1, 0), (0, 0)), (0, 5)]


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
@pytest.mark.parametrize("width", PADS, ids=str)
def test_pad(mode, width, backend):
    check_op(backend, lambda x: sg.pad(x, width, mode), lambda x: np.pad(x, width, mode),
             [(3, 4)])


@pytest.mark.parametrize("mode", ["edge", "reflect"])
def test_pad_wider_than_the_axis_and_a_length_one_axis(mode, backend):
    # reflect repeats its reflections (numpy's rule); a length-1 axis reflects to itself
    width = ((7, 9), (4, 3), (0, 2))
    check_op(backend, lambda x: sg.pad(x, width, mode), lambda x: np.pad(x, width, mode),
             [(3, 1, 2)])


def test_pad_constant_values_and_dtypes(backend):
    x = sg.tensor("x", (2, 3))
    i = sg.tensor("i", (3,), dtype="int32")
    b = sg.tensor("b", (2,), dtype="bool")
    outs = [sg.pad(x, 1, constant_values=-2.5), sg.pad(i, (2, 1), constant_values=7),
            sg.pad(i, 1, "reflect"), sg.pad(b, 1, constant_values=True)]
    xv, iv, bv = np.arange(6.0).reshape(2, 3), np.array([4, -1, 9], "int32"), np.array([0, 1],
                                                                                       bool)
    got = sg.function([x, i, b], outs, backend=backend)(xv, iv, bv)
    expected = [np.pad(xv, 1, constant_values=-2.5), np.pad(iv, (2, 1), constant_values=7),
                np.pad(iv, 1, "reflect"), np.pad(bv, 1, constant_values=True)]
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("mode, torch_mode", [("constant", "constant"), ("edge", "replicate"),
                                              ("reflect", "reflect")])
def test_pad_matches_torch(mode, torch_mode, backend):
    # torch's pad lists the last axis first
    check_torch(backend, lambda x: sg.pad(x, ((0, 0), (0, 0), (1, 2), (2, 1)), mode),
                lambda t: torch.nn.functional.pad(t, (2, 1, 1, 2), mode=torch_mode),
                (2, 3, 4, 5))


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_second_order(mode, backend):
    check_second_order(backend, lambda x: sg.pad(x, ((2, 1), (0, 3)), mode), (3, 4))


def test_pad_symbolic_batch(backend):
    x = sg.tensor("x", ("b", 3))
    outs = [sg.pad(x, ((0, 0), (1, 2)), "reflect"), sg.pad(x, 1), sg.pad(x, (2, 1), "edge")]
    cost = sum((o * o).sum() for o in outs)
    f = sg.function([x], [*outs, sg.grad(cost, x)], backend=backend)
    rng = np.random.default_rng(3)
    for n in (1, 4):
        xv = rng.standard_normal((n, 3))
        *values, g = f(xv)
        refs = [np.pad(xv, ((0, 0), (1, 2)), "reflect"), np.pad(xv, 1), np.pad(xv, (2, 1), "edge")]
        for v, r in zip(values, refs):
            np.testing.assert_array_equal(v, r)
        np.testing.assert_allclose(g, fd_grad(lambda a: sum(
            np.sum(np.pad(a, *p) ** 2) for p in [(((0, 0), (1, 2)), "reflect"), (1,),
                                                 ((2, 1), "edge")]), xv), rtol=1e-6)
    # constant padding of an axis that is empty at run time reads nothing; edge padding
    # of it is an error at call time
    f_constant = sg.function([x], outs[1] + 1.0, backend=backend)
    np.testing.assert_array_equal(f_constant(np.zeros((0, 3))), np.ones((2, 5)))
    f_buffered = sg.function([x], sg.pad(x, 1, constant_values=3.0), backend=backend)
    np.testing.assert_array_equal(f_buffered(np.zeros((0, 3))), np.full((2, 5), 3.0))
    with pytest.raises(ValueError, match="empty axis 0"):
        f(np.zeros((0, 3)))


def test_pad_fuses_into_its_consumer():
    x = sg.tensor("x", (4, 5))
    f = sg.function([x], sg.pad(x, 1, "reflect") * 2.0, backend="llvm")
    assert len(f.kernels) == 1 and {"pad", "mul"} <= {n.op.name for n in f.kernels[0].nodes}
    xv = np.arange(20.0).reshape(4, 5)
    np.testing.assert_array_equal(f(xv), np.pad(xv, 1, "reflect") * 2.0)


@pytest.mark.parametrize("args, error, words", [
    (((2, 3), -1), ValueError, "negative pad width -1"),
    (((2, 3), ((1, 2), (0, -3))), ValueError, "negative pad width -3"),
    (((2, 3), ((1, 2), (0, 1), (1, 1))), ValueError, "does not fit 2 dims"),
    (((2, 3), 1.5), TypeError, "integers"),
    (((2, 3), 1, "wrap"), ValueError, "mode 'wrap'"),
    (((0, 3), 1, "reflect"), ValueError, "empty axis 0"),
    (((2, 3), 1, "constant", [1, 2]), TypeError, "constant_values"),
])
def test_pad_bad_arguments_raise_at_build_time(args, error, words):
    shape, *rest = args
    with pytest.raises(error) as info:
        sg.pad(sg.tensor("x", shape), *rest)
    text = str(info.value)
    assert text.startswith("pad:") and words in text and f"float64{shape}".replace(
        " ", "") in text.replace(" ", "")


# --------------------------------------------------------------------------- roll


@pytest.mark.parametrize("shift, axis", [(1, 0), (-2, 1), (7, -1), (-9, None), (3, None),
                                          ((1, -2), (0, 2)), (2, (1, 1)), (0, 1), (4, 1)])
def test_roll(shift, axis, backend):
    check_op(backend, lambda x: sg.roll(x, shift, axis), lambda x: np.roll(x, shift, axis),
             [(3, 4, 5)])


def test_roll_matches_torch_and_second_order(backend):
    check_torch(backend, lambda x: sg.roll(x, (-1, 3), (0, 1)),
                lambda t: torch.roll(t, (-1, 3), (0, 1)), (4, 5))
    check_second_order(backend, lambda x: sg.roll(x, 2, 1), (3, 4))


def test_roll_along_a_symbolic_axis(backend):
    x = sg.tensor("x", ("n", 3))
    y = sg.roll(x, -5, 0)
    f = sg.function([x], [y, sg.grad((y * y * y).sum(), x)], backend=backend)
    for n in (1, 2, 3, 7):
        xv = np.arange(3.0 * n).reshape(n, 3)
        v, g = f(xv)
        np.testing.assert_array_equal(v, np.roll(xv, -5, 0))
        np.testing.assert_allclose(g, 3 * xv ** 2)
    assert f(np.zeros((0, 3)))[0].shape == (0, 3)


def test_roll_update_in_place_reads_the_old_values(backend):
    # the update reads W at other indices than it writes: it must not clobber them
    W = sg.shared(np.arange(6.0), name="W")
    f = sg.function([], [], updates=[(W, sg.roll(W, 1))], backend=backend)
    f()
    np.testing.assert_array_equal(W.get_value(), np.roll(np.arange(6.0), 1))


def test_roll_bad_arguments():
    x = sg.tensor("x", (2, 3))
    with pytest.raises(np.exceptions.AxisError, match="roll"):
        sg.roll(x, 1, 2)
    with pytest.raises(TypeError, match="roll: shift"):
        sg.roll(x, 1.5, 0)
    with pytest.raises(ValueError, match="roll: shape mismatch|roll: .*broadcast"):
        sg.roll(x, (1, 2, 3), (0, 1))


# --------------------------------------------------------------------------- tril / triu


@pytest.mark.parametrize("k", [0, 1, -1, 3, -4])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (2, 5, 3)], ids=str)
def test_tril_triu(k, shape, backend):
    check_op(backend, lambda x: sg.tril(x, k), lambda x: np.tril(x, k), [shape])
    check_op(backend, lambda x: sg.triu(x, k), lambda x: np.triu(x, k), [shape])


def test_tril_triu_torch_symbolic_and_one_loop(backend):
    check_torch(backend, lambda x: sg.triu(x, -1), lambda t: torch.triu(t, -1), (2, 4, 3))
    x = sg.tensor("x", ("b", "m", 3))
    f = sg.function([x], [sg.tril(x, 1), sg.triu(x)], backend=backend)
    for shape in ((2, 4, 3), (1, 1, 3)):
        xv = np.random.default_rng(0).standard_normal(shape)
        lo, up = f(xv)
        np.testing.assert_array_equal(lo, np.tril(xv, 1))
        np.testing.assert_array_equal(up, np.triu(xv))
    if backend == "llvm":  # the mask is an iota compared in the loop of the where
        assert len(sg.function([x], sg.tril(x) * 2.0).kernels) == 1


def test_tril_bad_arguments():
    with pytest.raises(ValueError, match=r"tril: needs at least 2 dims.*float64\(3,\)"):
        sg.tril(sg.tensor("x", (3,)))
    with pytest.raises(TypeError, match="triu: k must be an int"):
        sg.triu(sg.tensor("x", (3, 3)), 0.5)


# --------------------------------------------------------------------------- repeat / tile


@pytest.mark.parametrize("repeats, axis", [(2, 0), (3, 1), (1, 1), (2, -1), (3, None),
                                            (0, 0), ([1, 0, 3], 0), ([2, 1, 1, 0], 1),
                                            (np.array([2]), 1)])
def test_repeat(repeats, axis, backend):
    check_op(backend, lambda x: sg.repeat(x, repeats, axis),
             lambda x: np.repeat(x, repeats, axis), [(3, 4)])


@pytest.mark.parametrize("reps", [2, (2, 1), (1, 3), (2, 3), (2, 1, 2), (0, 2), (3,)], ids=str)
def test_tile(reps, backend):
    check_op(backend, lambda x: sg.tile(x, reps), lambda x: np.tile(x, reps), [(3, 4)])


def test_repeat_tile_match_torch_symbolic_and_second_order(backend):
    check_torch(backend, lambda x: sg.repeat(x, 3, 1),
                lambda t: torch.repeat_interleave(t, 3, dim=1), (2, 3))
    check_torch(backend, lambda x: sg.tile(x, (2, 1, 3)), lambda t: torch.tile(t, (2, 1, 3)),
                (2, 3))
    check_second_order(backend, lambda x: sg.repeat(x, 2, 0), (3, 2))
    check_second_order(backend, lambda x: sg.tile(x, (2, 2)), (2, 3))
    x = sg.tensor("x", ("b", 2))
    outs = [sg.repeat(x, 2, 0), sg.tile(x, (2, 3)), sg.repeat(x, 2)]
    assert [str(o.shape) for o in outs] == [str(o.shape) for o in outs]  # symbolic dims
    cost = sum((o ** 2).sum() for o in outs)
    f = sg.function([x], [*outs, sg.grad(cost, x)], backend=backend)
    for n in (1, 3):
        xv = np.arange(2.0 * n).reshape(n, 2)
        *values, g = f(xv)
        for v, r in zip(values, [np.repeat(xv, 2, 0), np.tile(xv, (2, 3)), np.repeat(xv, 2)]):
            np.testing.assert_array_equal(v, r)
        np.testing.assert_allclose(g, 2 * xv * (2 + 6 + 2))


@pytest.mark.parametrize("build, ref", [
    (lambda x: sg.tile(x, (1, 2)), lambda x: np.tile(x, (1, 2))),
    (lambda x: sg.tile(x, (2, 1)), lambda x: np.tile(x, (2, 1))),
    (lambda x: sg.tile(x, (2, 1, 3)), lambda x: np.tile(x, (2, 1, 3))),
    (lambda x: sg.repeat(x, 2, 1), lambda x: np.repeat(x, 2, 1)),
    (lambda x: sg.repeat(x, 3, 0), lambda x: np.repeat(x, 3, 0)),
    (lambda x: sg.repeat(x, 2), lambda x: np.repeat(x, 2)),
], ids=["tile-kept", "tile-unknown-axis", "tile-new-axis", "repeat-kept", "repeat-unknown-axis",
        "repeat-flat"])
def test_repeat_tile_of_a_dim_of_unknown_length(build, ref, backend):
    """An input dim of unknown (None) length was refused ("broadcast_to: target shape has an
    unknown dim"), on the axis copied and on the axes kept; the gradient sums the copies."""
    x = sg.tensor("x", (None, 3))
    out = build(x)
    rng = np.random.default_rng(4)
    f = sg.function([x], [out, sg.grad((out * out).sum(), x)], backend=backend)
    for n in (4, 1, 0):  # one compiled function, lengths that differ between calls
        xv = rng.standard_normal((n, 3))
        value, g = f(xv)
        np.testing.assert_array_equal(value, ref(xv))
        copies = ref(np.ones((n, 3))).size // max(xv.size, 1)  # each element's copies
        np.testing.assert_allclose(g, 2 * copies * xv)
    with pytest.raises(ValueError, match="tile: more than one dim of unknown"):
        sg.tile(sg.tensor("y", (None, None)), (2, 2))


def test_repeat_tile_bad_arguments():
    x = sg.tensor("x", (2, 3))
    with pytest.raises(ValueError, match=r"repeat: 2 repeats for axis 1 of length 3"):
        sg.repeat(x, [1, 2], 1)
    with pytest.raises(ValueError, match="repeat: repeats must be >= 0"):
        sg.repeat(x, -1, 0)
    with pytest.raises(np.exceptions.AxisError, match="repeat"):
        sg.repeat(x, 2, 2)
    with pytest.raises(TypeError, match="tile: reps must be an int"):
        sg.tile(x, (1.5, 2))


# --------------------------------------------------------------------------- split


@pytest.mark.parametrize("sections, axis", [(2, 0), (3, 1), (1, 0), ([1, 3], 1), ([2], 0),
                                             ([-1], 1), ([4, 2, 9], 1), (5, -2), ([0, 0], 0)])
def test_split(sections, axis, backend):
    shape = (10, 6) if sections == 5 else (4, 6)
    rng = np.random.default_rng(4)
    xv = rng.standard_normal(shape)
    x = sg.tensor("x", shape)
    pieces = sg.split(x, sections, axis)
    expected = np.split(xv, sections, axis)
    assert isinstance(pieces, list) and len(pieces) == len(expected)
    cvs = [rng.standard_normal(e.shape) for e in expected]
    cost = sum((sg.sin(p) * c).sum() for p, c in zip(pieces, cvs))
    got = sg.function([x], [*pieces, sg.grad(cost, x)], backend=backend)(xv)
    for p, e in zip(got, expected):
        np.testing.assert_array_equal(p, e)
    # the gradient is the pieces' gradients (cos(piece) * c) put back where each was cut
    # (concatenated; summed where indices going back make pieces overlap)
    grad = np.zeros(shape)
    n, edges = shape[axis], [0, *(np.atleast_1d(sections) if np.ndim(sections) else []), None]
    bounds = ([slice(a, b) for a, b in zip(edges[:-1], edges[1:])] if np.ndim(sections) else
              [slice(s * n // sections, (s + 1) * n // sections) for s in range(sections)])
    for cut, e, c in zip(bounds, expected, cvs):
        key = [slice(None)] * 2
        key[axis] = cut
        grad[tuple(key)] += np.cos(e) * c
    np.testing.assert_allclose(got[-1], grad, rtol=1e-13)


def test_split_unused_pieces_give_zero_gradient_and_match_torch(backend):
    x = sg.tensor("x", (5, 4))
    a, b, c = sg.split(x, [1, 3], 0)
    xv = np.random.default_rng(5).standard_normal((5, 4))
    g = sg.function([x], sg.grad((b ** 2).sum(), x), backend=backend)(xv)
    xt = torch.tensor(xv, requires_grad=True)
    (torch.split(xt, [1, 2, 2], 0)[1] ** 2).sum().backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-14)
    assert not g[[0, 3, 4]].any()
    check_second_order(backend, lambda x: sg.split(x, 2, 1)[1] * 3.0, (3, 4))


def test_split_a_symbolic_axis_at_indices(backend):
    x = sg.tensor("x", ("n", 2))
    pieces = sg.split(x, [1, 3], 0)
    assert pieces[0].shape == (1, 2) and pieces[1].shape == (2, 2)
    cost = sum((p * (k + 1)).sum() for k, p in enumerate(pieces))
    f = sg.function([x], [*pieces, sg.grad(cost, x)], backend=backend)
    for n in (3, 6):
        xv = np.arange(2.0 * n).reshape(n, 2)
        *values, g = f(xv)
        for v, e in zip(values, np.split(xv, [1, 3], 0)):
            np.testing.assert_array_equal(v, e)
        np.testing.assert_array_equal(g[:, 0], np.repeat([1.0, 2.0, 3.0], [1, 2, n - 3]))
    with pytest.raises(ValueError, match="too short|negative length"):
        f(np.zeros((2, 2)))  # the pieces need 3 rows


def test_split_bad_arguments_raise_at_build_time():
    x = sg.tensor("x", (4, 6))
    with pytest.raises(ValueError, match=r"split: 4 sections do not divide axis 1 of length 6"
                                         r".*float64\(4, ?6\)"):
        sg.split(x, 4, 1)
    with pytest.raises(ValueError, match="split: the number of sections must be >= 1"):
        sg.split(x, 0)
    with pytest.raises(np.exceptions.AxisError, match="split"):
        sg.split(x, 2, 2)
    with pytest.raises(ValueError, match="split: 2 equal sections of axis 0.*not static"):
        sg.split(sg.tensor("y", ("n", 3)), 2)


# --------------------------------------------------------------------------- broadcast_to


@pytest.mark.parametrize("shape, target", [((3,), (2, 3)), ((3, 1), (3, 4)), ((1, 4), (2, 3, 4)),
                                           ((), (2, 2)), ((2, 1, 3), (2, 5, 3)), ((3,), (3,)),
                                           ((1,), (0,))])
def test_broadcast_to(shape, target, backend):
    check_op(backend, lambda x: sg.broadcast_to(x, target),
             lambda x: np.broadcast_to(x, target), [shape])


def test_broadcast_to_torch_symbolic_and_second_order(backend):
    check_torch(backend, lambda x: sg.broadcast_to(x, (2, 3, 4)),
                lambda t: torch.broadcast_to(t, (2, 3, 4)), (3, 1))
    check_second_order(backend, lambda x: sg.broadcast_to(x, (2, 3, 4)), (3, 1))
    x = sg.tensor("x", ("b", 3))
    bias = sg.tensor("bias", (1, 3))
    y = sg.broadcast_to(bias, ("b", 3)) * x
    f = sg.function([x, bias], [y, sg.grad((y * y).sum(), bias)], backend=backend)
    for n in (1, 4):
        xv, bv = np.arange(3.0 * n).reshape(n, 3), np.array([[1.0, -2.0, 0.5]])
        v, g = f(xv, bv)
        np.testing.assert_array_equal(v, bv * xv)
        np.testing.assert_allclose(g, (2 * bv * xv ** 2).sum(0, keepdims=True))


def test_broadcast_to_a_mismatched_run_time_dim_raises_at_call_time(backend):
    # "m" is not a static 1: it must equal its target "n" at run time (both backends)
    x = sg.tensor("x", ("n", 2))
    v = sg.tensor("v", ("m",))
    f = sg.function([x, v], x * sg.expand_dims(sg.broadcast_to(v, ("n",)), 1), backend=backend)
    np.testing.assert_array_equal(f(np.ones((3, 2)), np.arange(3.0)), np.arange(3.0)[:, None]
                                  * np.ones((3, 2)))
    with pytest.raises(ValueError, match="cannot broadcast"):
        f(np.ones((3, 2)), np.ones(1))


def test_broadcast_to_bad_shapes_raise_at_build_time():
    with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast \(2, ?3\) to \(3, ?3\)"
                                         r".*float64\(2, ?3\)"):
        sg.broadcast_to(sg.tensor("x", (2, 3)), (3, 3))
    with pytest.raises(ValueError, match="broadcast_to: cannot broadcast.*fewer dims"):
        sg.broadcast_to(sg.tensor("x", (2, 3)), (3,))
    with pytest.raises(ValueError, match="broadcast_to: .*non-negative"):
        sg.broadcast_to(sg.tensor("x", (3,)), (-1, 3))
    with pytest.raises(ValueError, match="broadcast_to: .*unknown"):
        sg.broadcast_to(sg.tensor("x", (3,)), (None, 3))


# --------------------------------------------------------------------------- squeeze / expand_dims


def test_squeeze_expand_dims_with_a_symbolic_batch(backend):
    # the gaps of tests/symgraph/test_ops_structure.py: symbolic dims, negative axes, grads
    x = sg.tensor("x", ("b", 1, 3))
    y = sg.expand_dims(sg.squeeze(x, -2), (-1, 0))
    assert y.ndim == 4 and y.shape[1:] == (x.shape[0], 3, 1)
    f = sg.function([x], [y, sg.grad((y ** 3).sum(), x)], backend=backend)
    for n in (1, 5):
        xv = np.random.default_rng(n).standard_normal((n, 1, 3))
        v, g = f(xv)
        np.testing.assert_array_equal(v, np.expand_dims(np.squeeze(xv, -2), (-1, 0)))
        np.testing.assert_allclose(g, 3 * xv ** 2)
