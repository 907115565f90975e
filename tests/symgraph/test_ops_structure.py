"""Structural ops: transpose, reshape, expand_dims/squeeze, concatenate, stack, matmul/dot.

Oracles: the numpy function of the same name for values; central finite
differences in float64 of that numpy function for gradients.
"""

import numpy as np
import pytest
from helpers import fd_grad

import symgraph as sg


def check_op(backend, build, ref, shapes, seed=0, rtol=1e-6, atol=1e-8):
    """Compare ``build(*vars)`` with ``ref(*arrays)``: value, then the gradient of
    ``sum(out * c)`` (``c`` random) w.r.t. every argument against finite differences."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s) for s in shapes]
    variables = [sg.tensor(f"a{i}", s) for i, s in enumerate(shapes)]
    out = build(*variables)
    expected = ref(*values)
    assert out.shape == np.shape(expected), (out.shape, np.shape(expected))
    cv = rng.standard_normal(np.shape(expected))
    c = sg.tensor("c", np.shape(expected))
    grads = sg.grad((out * c).sum(), variables)
    f = sg.function([*variables, c], [out, *grads], backend=backend)
    got, *gvals = f(*values, cv)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    for k, (g, v) in enumerate(zip(gvals, values)):
        def cost(a, k=k):
            args = list(values)
            args[k] = a
            return np.sum(ref(*args) * cv)
        assert np.shape(g) == v.shape
        np.testing.assert_allclose(g, fd_grad(cost, v), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of argument {k}")


# --------------------------------------------------------------------------- flip


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), (2, 1)])
def test_flip(axis, backend):
    check_op(backend, lambda x: sg.flip(x, axis), lambda x: np.flip(x, axis), [(2, 3, 4)])


def test_flip_of_a_symbolic_batch_and_into_a_gemm(backend):
    x = sg.tensor("x", ("b", 3))
    w = sg.tensor("w", (3, 2))
    y = sg.flip(x, 0) @ w + sg.flip(sg.exp(x), (0, 1)).sum()
    f = sg.function([x, w], y, backend=backend)
    rng = np.random.default_rng(1)
    for n in (1, 4):
        X, W = rng.standard_normal((n, 3)), rng.standard_normal((3, 2))
        np.testing.assert_allclose(f(X, W), np.flip(X, 0) @ W + np.exp(X).sum(), rtol=1e-12)


def test_flip_fuses_into_its_consumers_loop():
    x = sg.tensor("x", (4, 5))
    f = sg.function([x], sg.flip(sg.exp(x), 1) * 2.0, backend="llvm")
    # the flip is read through reversed indices inside the mul's loop: no kernel, no buffer
    # of its own (the exp under it is a buffer: read at other indices than it is written)
    flip_kernels = [k for k in f.kernels if any(n.op.name == "flip" for n in k.nodes)]
    assert len(flip_kernels) == 1 and flip_kernels[0].nodes[0].op.name == "mul"
    X = np.arange(20.0).reshape(4, 5) / 10
    np.testing.assert_allclose(f(X), np.flip(np.exp(X), 1) * 2.0, rtol=1e-12)


def test_flip_of_a_kernel_result_is_not_grouped_into_that_kernels_loop(backend):
    # a flip reads other indices than it writes: grouping it into the loop that computes
    # its input would read values not yet computed
    x = sg.tensor("x", (6,))
    a = sg.exp(x)
    f = sg.function([x], [a * 2, sg.flip(a, 0) + a], backend=backend)
    X = np.linspace(-1, 1, 6)
    got = f(X)
    np.testing.assert_allclose(got[0], np.exp(X) * 2, rtol=1e-12)
    np.testing.assert_allclose(got[1], np.exp(X)[::-1] + np.exp(X), rtol=1e-12)


def test_in_place_update_through_a_flip(backend):
    w = sg.shared(np.arange(5.0), name="w")
    f = sg.function([], [], updates={w: sg.flip(w, 0) * 1.0 + 0.5}, backend=backend)
    f()
    np.testing.assert_array_equal(w.get_value(), np.arange(5.0)[::-1] + 0.5)


def test_flip_bad_axis_names_the_function():
    with pytest.raises(Exception, match="flip"):
        sg.flip(sg.tensor("x", (2, 3)), 2)


# --------------------------------------------------------------------------- transpose


def test_dot_T(backend):
    check_op(backend, lambda x: x.T, lambda x: x.T, [(3, 4)])


def test_T_of_vector_and_3d(backend):
    check_op(backend, lambda x: x.T, lambda x: x.T, [(5,)])
    check_op(backend, lambda x: x.T, lambda x: x.T, [(2, 3, 4)])


@pytest.mark.parametrize("axes", [(1, 0, 2), (2, 0, 1), (0, 2, 1), (-1, 0, 1), None])
def test_transpose_axes(axes, backend):
    check_op(backend, lambda x: sg.transpose(x, axes), lambda x: np.transpose(x, axes),
             [(2, 3, 4)])


def test_transpose_method_varargs(backend):
    check_op(backend, lambda x: x.transpose(2, 0, 1), lambda x: x.transpose(2, 0, 1),
             [(2, 3, 4)])


def test_transpose_bad_axes():
    x = sg.tensor("x", (2, 3, 4))
    with pytest.raises(ValueError):
        sg.transpose(x, (0, 0, 1))
    with pytest.raises(ValueError):
        sg.transpose(x, (0, 1))


# --------------------------------------------------------------------------- reshape


@pytest.mark.parametrize("shape, target", [
    ((2, 3, 4), (6, 4)),
    ((2, 3, 4), (-1,)),
    ((2, 3, 4), (4, -1)),
    ((6,), (2, 1, 3)),
    ((1,), ()),
    ((), (1, 1)),
])
def test_reshape(shape, target, backend):
    check_op(backend, lambda x: x.reshape(target), lambda x: np.reshape(x, target), [shape])


def test_reshape_of_transpose_is_c_order(backend):
    # reshape reads in C order from the (logically) transposed array
    check_op(backend, lambda x: x.T.reshape(-1), lambda x: x.T.reshape(-1), [(3, 4)])
    check_op(backend, lambda x: sg.reshape(x.T, (2, 6)), lambda x: x.T.reshape(2, 6), [(3, 4)])


# --------------------------------------------------------------------------- expand_dims / squeeze


@pytest.mark.parametrize("axis", [0, 1, 2, -1, (0, 2), (0, -1)])
def test_expand_dims(axis, backend):
    check_op(backend, lambda x: sg.expand_dims(x, axis), lambda x: np.expand_dims(x, axis),
             [(3, 4)])


@pytest.mark.parametrize("axis", [None, 0, 2, (0, 2), -1])
def test_squeeze(axis, backend):
    check_op(backend, lambda x: sg.squeeze(x, axis), lambda x: np.squeeze(x, axis),
             [(1, 3, 1)])


def test_squeeze_non_unit_axis_raises():
    with pytest.raises(ValueError, match="squeeze: cannot drop axis 0 of length 2"):
        sg.squeeze(sg.tensor("x", (2, 3)), 0)
    with pytest.raises(ValueError, match="squeeze: cannot drop axis 0 of length n .*unknown"):
        sg.squeeze(sg.tensor("x", ("n", None)), 0)  # (n, ?) -> (?,) could not be checked


@pytest.mark.parametrize("shape, axis", [(("n", 3), 0), ((None, 3), 0), ((3, "n", 1), (1, 2)),
                                         (("n", "m", 2), (0, 1))])
def test_squeeze_of_a_symbolic_axis_is_checked_per_call(shape, axis, backend):
    """A named axis of symbolic or unknown length was refused when building; numpy drops it
    when it is 1 and raises otherwise, and so does the compiled function, per call."""
    x = sg.tensor("x", shape)
    y = sg.squeeze(x, axis)
    f = sg.function([x], [y, sg.grad((y * y).sum(), x)], backend=backend)
    ones = tuple(d if isinstance(d, int) else 1 for d in shape)
    xv = np.random.default_rng(0).standard_normal(ones)
    value, g = f(xv)
    np.testing.assert_array_equal(value, np.squeeze(xv, axis))
    np.testing.assert_array_equal(g, 2 * xv)
    twos = tuple(d if isinstance(d, int) else 2 for d in shape)
    with pytest.raises(ValueError, match="reshape: cannot reshape"):
        f(np.ones(twos))


# --------------------------------------------------------------------------- concatenate / stack


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis, backend):
    shapes = {0: [(2, 3), (1, 3), (4, 3)], 1: [(2, 1), (2, 3), (2, 2)],
              -1: [(2, 1), (2, 3), (2, 2)]}[axis]
    check_op(backend, lambda *xs: sg.concatenate(xs, axis=axis),
             lambda *xs: np.concatenate(xs, axis=axis), shapes)


def test_concatenate_vectors_and_same_input_twice(backend):
    check_op(backend, lambda a, b: sg.concatenate([a, b, a]),
             lambda a, b: np.concatenate([a, b, a]), [(3,), (2,)])


def test_concatenate_symbolic_axis(backend):
    x = sg.tensor("x", ("n", 2))
    y = sg.tensor("y", (3, 2))
    z = sg.concatenate([x, y], axis=0)
    c = sg.tensor("c", z.shape)
    gx, gy = sg.grad((z * c).sum(), [x, y])
    f = sg.function([x, y, c], [z, gx, gy], backend=backend)
    rng = np.random.default_rng(1)
    for n in (1, 4):
        xv, yv, cv = (rng.standard_normal((n, 2)), rng.standard_normal((3, 2)),
                      rng.standard_normal((n + 3, 2)))
        zv, gxv, gyv = f(xv, yv, cv)
        np.testing.assert_array_equal(zv, np.concatenate([xv, yv]))
        np.testing.assert_array_equal(gxv, cv[:n])
        np.testing.assert_array_equal(gyv, cv[n:])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis, backend):
    check_op(backend, lambda *xs: sg.stack(xs, axis=axis), lambda *xs: np.stack(xs, axis=axis),
             [(2, 3), (2, 3), (2, 3)])


def test_stack_scalars(backend):
    check_op(backend, lambda a, b: sg.stack([a, b, a]), lambda a, b: np.stack([a, b, a]),
             [(), ()])


def test_concatenate_and_stack_shape_errors():
    with pytest.raises(ValueError):
        sg.concatenate([sg.tensor("a", (2, 3)), sg.tensor("b", (2, 4))], axis=0)
    with pytest.raises(ValueError):
        sg.concatenate([sg.tensor("a", (2, 3)), sg.tensor("b", (3,))])
    with pytest.raises(ValueError):
        sg.concatenate([sg.tensor("a", ()), sg.tensor("b", ())])
    with pytest.raises(ValueError):
        sg.stack([sg.tensor("a", (2, 3)), sg.tensor("b", (3, 2))])
    with pytest.raises(ValueError):
        sg.stack([sg.tensor("a", (2, 3)), sg.tensor("b", (3,))])


def test_stack_refuses_broadcasting():
    # numpy's stack needs equal shapes; it does not broadcast (2, 3) with (1, 3)
    with pytest.raises(ValueError):
        np.stack([np.zeros((2, 3)), np.zeros((1, 3))])
    with pytest.raises(ValueError):
        sg.stack([sg.tensor("a", (2, 3)), sg.tensor("b", (1, 3))])


# --------------------------------------------------------------------------- matmul / dot


MATMUL_SHAPES = {
    "2D@2D": [(3, 4), (4, 2)],
    "1D@2D": [(4,), (4, 2)],
    "2D@1D": [(3, 4), (4,)],
    "1D@1D": [(4,), (4,)],
}


@pytest.mark.parametrize("case", sorted(MATMUL_SHAPES))
def test_matmul(case, backend):
    check_op(backend, lambda a, b: a @ b, np.matmul, MATMUL_SHAPES[case])
    check_op(backend, sg.matmul, np.matmul, MATMUL_SHAPES[case], seed=1)


@pytest.mark.parametrize("case", sorted(MATMUL_SHAPES))
def test_dot(case, backend):
    check_op(backend, sg.dot, np.dot, MATMUL_SHAPES[case])
    check_op(backend, lambda a, b: a.dot(b), np.dot, MATMUL_SHAPES[case], seed=2)


def test_dot_with_scalar_multiplies(backend):
    check_op(backend, sg.dot, np.dot, [(), (3, 2)])
    with pytest.raises(ValueError):
        sg.matmul(sg.tensor("a", ()), sg.tensor("b", (3,)))


def test_matmul_with_numpy_constant_on_either_side(backend):
    rng = np.random.default_rng(3)
    M = rng.standard_normal((4, 3))
    check_op(backend, lambda a: a @ M, lambda a: a @ M, [(2, 4)])
    check_op(backend, lambda a: M @ a, lambda a: M @ a, [(3,)])


def test_matmul_mixed_float_dtypes(backend):
    a = sg.tensor("a", (2, 3), dtype="float32")
    b = sg.tensor("b", (3, 2), dtype="float64")
    y = a @ b
    assert y.dtype == np.float64
    ga = sg.grad(y.sum(), a)
    assert ga.dtype == np.float32
    av, bv = np.ones((2, 3), "float32"), np.arange(6.0).reshape(3, 2)
    yv, gav = sg.function([a, b], [y, ga], backend=backend)(av, bv)
    np.testing.assert_allclose(yv, av @ bv)
    assert gav.dtype == np.float32
    np.testing.assert_allclose(gav, np.ones((2, 2)) @ bv.T)


@pytest.mark.parametrize("a, b", [((3, 4), (5, 2)), ((4,), (5,)), ((3,), (4, 2)),
                                  ((2, 3), (2,))])
def test_matmul_shape_errors(a, b):
    with pytest.raises(ValueError) as info:
        sg.tensor("a", a) @ sg.tensor("b", b)
    assert "matmul" in str(info.value)


def test_matmul_rejects_mismatched_contraction_and_scalars():
    # 3-d operands are batched since api v1.1 (tests/symgraph/test_ops_linalg.py); what
    # stays an error at build time: contracted dims that differ, and scalar operands
    with pytest.raises(ValueError, match="matmul"):
        sg.tensor("a", (2, 3, 4)) @ sg.tensor("b", (5, 2))
    with pytest.raises(ValueError, match="matmul"):
        sg.matmul(sg.tensor("s", ()), sg.tensor("b", (4, 2)))


def test_matmul_chain_gradient(backend):
    # the textbook rule: dA = G @ B.T, dB = A.T @ G, through two products
    check_op(backend, lambda a, b, c: (a @ b) @ c, lambda a, b, c: a @ b @ c,
             [(2, 3), (3, 4), (4,)])


# --------------------------------------------------------------------------- unknown (None) dims


def test_reshape_gradient_with_several_unknown_dims(backend):
    # sg.matrix's default shape is (None, None): the gradient of a reshape must
    # still find its way back to the run-time shape (second order too)
    x = sg.matrix("x")
    v = sg.matrix("v")
    cost = (x.reshape(-1) ** 3).sum()
    g = sg.grad(cost, x)
    hv = sg.hvp(cost, x, v)
    f = sg.function([x, v], [g, hv], backend=backend)
    rng = np.random.default_rng(4)
    for shape in ((2, 3), (4, 1)):
        xv, vv = rng.standard_normal(shape), rng.standard_normal(shape)
        gv, hvv = f(xv, vv)
        np.testing.assert_allclose(gv, 3 * xv ** 2, rtol=1e-12)
        np.testing.assert_allclose(hvv, 6 * xv * vv, rtol=1e-12)


@pytest.mark.parametrize("shape", [(None, "m"), ("n", None), (None, 4)])
def test_reshape_gradient_with_one_unknown_dim_and_a_dim_of_zero(shape, backend):
    """The gradient reshaped back to x's shape with -1 for its unknown dim, which is
    ambiguous when another dim is 0 ('cannot reshape (0,) to (-1, m)'); numpy's gradient
    is an empty array of x's shape."""
    x = sg.tensor("x", shape)
    y = sg.reshape(x, (-1,))
    f = sg.function([x], sg.grad((y * y * y).sum(), x), backend=backend)
    for n, m in ((3, 0), (0, 4), (2, 4)):
        if isinstance(shape[1], int) and shape[1] != m:
            continue
        xv = np.random.default_rng(n).standard_normal((n, m))
        np.testing.assert_allclose(f(xv), 3 * xv ** 2)


@pytest.mark.parametrize("dims", [(2, 3, 4, 0), (3, 2, 0, 2), ("b", "n", "k", "m")],
                         ids=str)
def test_batched_matmul_gradient_with_a_dim_of_zero(dims, backend):
    """``(b, n, k) @ (k, m)``'s gradient for the shared operand flattened the stack with
    -1 next to k or m, ambiguous when that dim is 0: the gradient raised a reshape error."""
    a = sg.tensor("a", dims[:3])
    b = sg.tensor("b", dims[2:])
    cost = (sg.matmul(a, b) ** 2).sum()
    f = sg.function([a, b], sg.grad(cost, [a, b]), backend=backend)
    for B, N, K, M in ((2, 3, 4, 0), (3, 2, 0, 2), (2, 3, 4, 5)):
        if any(isinstance(d, int) and d != v for d, v in zip(dims, (B, N, K, M))):
            continue
        rng = np.random.default_rng(K)
        av, bv = rng.standard_normal((B, N, K)), rng.standard_normal((K, M))
        ga, gb = f(av, bv)
        c = 2 * (av @ bv)  # d cost / d (a @ b)
        np.testing.assert_allclose(ga, c @ bv.T, atol=1e-12)
        np.testing.assert_allclose(gb, np.einsum("bnk,bnm->km", av, c), atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1])
def test_concatenate_gradient_with_unknown_lengths(axis, backend):
    x = sg.matrix("x")
    y = sg.tensor("y", (2, 2))
    z = sg.concatenate([x, y, x], axis=axis)
    c = sg.tensor("c", (None, None))
    cost = (z ** 2 * c).sum()
    gx, gy = sg.grad(cost, [x, y])
    vx = sg.matrix("vx")
    hv = sg.hvp(cost, x, vx)
    f = sg.function([x, y, c, vx], [z, gx, gy, hv], backend=backend)
    rng = np.random.default_rng(5)
    xv = rng.standard_normal((1, 2) if axis == 0 else (2, 1))
    yv = rng.standard_normal((2, 2))
    zv_expected = np.concatenate([xv, yv, xv], axis=axis)
    cv = rng.standard_normal(zv_expected.shape)
    vv = rng.standard_normal(xv.shape)
    zv, gxv, gyv, hvv = f(xv, yv, cv, vv)
    np.testing.assert_array_equal(zv, zv_expected)
    n = xv.shape[axis]
    first, middle, last = np.split(cv, [n, n + 2], axis=axis)
    np.testing.assert_allclose(gxv, 2 * xv * (first + last), rtol=1e-12)
    np.testing.assert_allclose(gyv, 2 * yv * middle, rtol=1e-12)
    np.testing.assert_allclose(hvv, 2 * vv * (first + last), rtol=1e-12)


@pytest.mark.parametrize("m, n", [(3, 2), (2, 3), (30, 20)])
def test_transpose_of_a_reshaped_result_in_the_same_loop(backend, m, n):
    """``transpose(reshape(q * 2, (n, m))) * 3`` has q's shape, so the llvm backend fused the
    two elementwise ops into one loop, which read the reshaped buffer through the transpose
    at elements it had not written yet (299 of 600 wrong). Its gradient read the same way."""
    q = sg.tensor("q", (m, n), "float64")
    y = sg.transpose(sg.reshape(q * 2, (n, m)), (1, 0)) * 3
    Q = np.arange(m * n, dtype=np.float64).reshape(m, n)
    np.testing.assert_array_equal(sg.function([q], y, backend=backend)(Q),
                                  (Q * 2).reshape(n, m).T * 3)
    x = sg.tensor("x", (m, n), "float64")
    cost = sg.sum(sg.tanh(sg.reshape(sg.transpose(x), (m, n))) * x)
    X = np.linspace(-1.0, 1.0, m * n).reshape(m, n)
    got = sg.function([x], sg.grad(cost, x), backend=backend)(X)
    np.testing.assert_allclose(got, fd_grad(lambda a: np.sum(np.tanh(a.T.reshape(m, n)) * a), X),
                               rtol=1e-6, atol=1e-8)
