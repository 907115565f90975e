"""Batched matmul, dot and einsum (symgraph/ops/linalg.py, codegen/lower_blas.py).

Oracles: ``np.matmul``/``np.dot``/``np.einsum`` for values, central finite differences of
the numpy function (float64) and torch's autograd for gradients; second order as the
gradient of ``grad . v`` against finite differences of the first-order gradient.  Every
graph test runs on both backends (the ``backend`` fixture).  The 2-d matmul tests stay in
test_ops_structure.py; the BLAS and SGD-fold tests in tests/codegen.
"""

import numpy as np
import pytest
import torch
from helpers import fd_grad

import symgraph as sg
from codegen import lower_blas
from symgraph.check import finite_differences


def swap(x):
    """The last two axes swapped (a transposed view of every matrix)."""
    return sg.transpose(x, (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2))


def check(backend, build, ref, shapes, seed=0, dtype="float64", grads=True):
    """``build(*vars)`` against ``ref(*arrays)``: the value, then the gradient of
    ``sum(out * c)`` (random ``c``) w.r.t. every argument against finite differences."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s) for s in shapes]
    variables = [sg.tensor(f"a{i}", s, dtype) for i, s in enumerate(shapes)]
    out = build(*variables)
    expected = ref(*values)
    assert out.shape == np.shape(expected), (out.shape, np.shape(expected))
    cv = rng.standard_normal(np.shape(expected))
    c = sg.tensor("c", np.shape(expected), dtype)
    gs = sg.grad((out * c).sum(), variables) if grads else []
    f = sg.function([*variables, c], [out, *gs], backend=backend)
    got, *gvals = f(*[v.astype(dtype) for v in values], cv.astype(dtype))
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, expected, **tol)
    for k, (g, v) in enumerate(zip(gvals, values)):
        def cost(a, k=k):
            args = list(values)
            args[k] = a
            return np.sum(ref(*args) * cv)
        assert np.shape(g) == v.shape and g.dtype == np.dtype(dtype)
        fd_tol = dict(rtol=2e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g, fd_grad(cost, v), **fd_tol,
                                   err_msg=f"gradient of argument {k}")
    return f


# --------------------------------------------------------------------------- batched matmul

BATCHED = {
    "3d@3d": [(4, 2, 3), (4, 3, 5)],
    "3d@2d": [(4, 2, 3), (3, 5)],
    "2d@3d": [(2, 3), (4, 3, 5)],
    "broadcast 4d@3d": [(2, 1, 2, 3), (4, 3, 5)],
    "batch of one": [(1, 2, 3), (4, 3, 2)],
    "4d@4d": [(2, 3, 2, 4), (2, 3, 4, 1)],
    "vec@3d": [(3,), (4, 3, 5)],
    "3d@vec": [(4, 2, 3), (3,)],
    "4d@vec": [(2, 1, 2, 3), (3,)],
    "odd sizes": [(3, 5, 7), (3, 7, 1)],
}


@pytest.mark.parametrize("case", sorted(BATCHED))
def test_batched_matmul(case, backend):
    check(backend, lambda a, b: a @ b, np.matmul, BATCHED[case])


@pytest.mark.parametrize("ta, tb", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("shapes", [[(3, 2, 4), (3, 4, 5)], [(2, 1, 2, 4), (3, 4, 5)]])
def test_transposed_operands(ta, tb, shapes, backend):
    # shapes of the product's operands; a transposed one is stored with the last two swapped
    a_shape, b_shape = shapes
    if ta:
        a_shape = a_shape[:-2] + a_shape[:-3:-1]
    if tb:
        b_shape = b_shape[:-2] + b_shape[:-3:-1]
    build = lambda a, b: (swap(a) if ta else a) @ (swap(b) if tb else b)  # noqa: E731
    ref = lambda a, b: (np.swapaxes(a, -1, -2) if ta else a) @ (  # noqa: E731
        np.swapaxes(b, -1, -2) if tb else b)
    check(backend, build, ref, [a_shape, b_shape])
    if backend == "llvm":  # one kernel: the transposes are BLAS flags, not copies
        a, b = sg.tensor("a", a_shape), sg.tensor("b", b_shape)
        kernels = sg.function([a, b], build(a, b), backend=backend).kernels
        assert len(kernels) == 1 and kernels[0].blas
        assert {n.op.name for n in kernels[0].nodes} == {"matmul"} | ({"transpose"} if ta or tb
                                                                      else set())


@pytest.mark.parametrize("case", ["3d@3d", "3d@2d", "broadcast 4d@3d", "3d@vec"])
def test_batched_matmul_float32(case, backend):
    check(backend, lambda a, b: a @ b, np.matmul, BATCHED[case], dtype="float32")


@pytest.mark.parametrize("shape", [(5, 4, 4), (3, 6, 11), (2, 3, 31), (2, 40, 36)])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_small_loop_and_gemm_routes(shape, tb, dtype, backend):
    """Static sizes within SMALL_MATMUL_WORK and SMALL_MATMUL_COLUMNS take the generated
    loop (vector sums of 4 doubles / 8 floats and scalar ones for the rest of the row), larger
    ones a gemm per matrix; both, with B read transposed or not, equal numpy."""
    n = shape[2] + 1
    small = shape[1] * n * shape[2] <= lower_blas.SMALL_MATMUL_WORK and \
        n <= lower_blas.SMALL_MATMUL_COLUMNS
    assert small == (shape[1] != 40)
    b_shape = (shape[0], n, shape[2]) if tb else (shape[0], shape[2], n)
    build = lambda a, b: a @ (swap(b) if tb else b)  # noqa: E731
    ref = lambda a, b: a @ (np.swapaxes(b, -1, -2) if tb else b)  # noqa: E731
    check(backend, build, ref, [shape, b_shape], grads=False, dtype=dtype)


def test_symbolic_sizes_take_a_gemm_per_matrix(backend):
    a = sg.tensor("a", ("b", "m", "k"))
    b = sg.tensor("b2", ("b", "k", "n"))
    c = sg.tensor("c", ("k", "n"))
    f = sg.function([a, b, c], [a @ b, swap(a) @ a, a @ c], backend=backend)
    rng = np.random.default_rng(4)
    for nb, m, k, n in [(3, 4, 5, 2), (2, 40, 41, 39), (0, 3, 2, 2), (2, 3, 0, 4), (1, 1, 1, 1)]:
        A, B, C = (rng.standard_normal(s) for s in [(nb, m, k), (nb, k, n), (k, n)])
        y1, y2, y3 = f(A, B, C)
        np.testing.assert_allclose(y1, A @ B, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y2, np.swapaxes(A, 1, 2) @ A, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y3, A @ C, rtol=1e-12, atol=1e-12)


def test_stack_times_matrix_is_one_gemm_and_its_weight_gradient_a_2d_product():
    x = sg.tensor("x", ("batch", 6, 4))
    w = sg.shared(np.ones((4, 3)), name="w")
    loss = sg.sum(sg.tanh(x @ w))
    gw = sg.grad(loss, w)
    # sum_b X_b^T G_b as one product of the flattened stacks: a 2-d MatMul
    assert type(gw.owner.op).__name__ == "MatMul" and all(i.ndim == 2 for i in gw.owner.inputs)
    X = np.random.default_rng(5).standard_normal((3, 6, 4))
    values = [sg.function([x], [loss, gw], backend=b)(X) for b in ("numpy", "llvm")]
    for u, v in zip(*values):
        np.testing.assert_allclose(u, v, rtol=1e-12)
    f = sg.function([x], loss, updates={w: w - 0.1 * gw}, backend="llvm")
    assert len(f.program.analysis.folded) == 1  # plain SGD on w still folds into the gemm
    assert any(kern.blas and kern.output.ndim == 3 and len(kern.nodes) == 1
               for kern in f.kernels)  # x @ w: one kernel, one gemm
    f(X)
    np.testing.assert_allclose(w.get_value(), 1 - 0.1 * values[0][1], rtol=1e-12)


@pytest.mark.parametrize("dtypes", [("int64", "int64"), ("float32", "float64"),
                                    ("int32", "float64")])
def test_batched_integer_and_mixed_dtypes(dtypes, backend):
    rng = np.random.default_rng(6)
    av = rng.integers(-3, 4, (2, 3, 4)).astype(dtypes[0])
    bv = rng.integers(-3, 4, (4, 2)).astype(dtypes[1])
    a, b = sg.tensor("a", av.shape, dtypes[0]), sg.tensor("b", bv.shape, dtypes[1])
    out = sg.function([a, b], [a @ b, swap(a) @ a], backend=backend)(av, bv)
    for got, expected in zip(out, [av @ bv, np.swapaxes(av, 1, 2) @ av]):
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("dtypes", [("float64", "float32"), ("float32", "float64"),
                                    ("int32", "float32"), ("float32", "int64")])
@pytest.mark.parametrize("batched", [False, True])
def test_mixed_float_products_are_numpys_through_blas(dtypes, batched, backend):
    """A product of two dtypes with a float result is numpy's (which casts both operands
    first), and on llvm a BLAS product, not a scalar loop per element."""
    rng = np.random.default_rng(8)
    shape_a = (3, 40, 48) if batched else (40, 48)
    av = (rng.normal(size=shape_a) * 4).astype(dtypes[0])
    bv = (rng.normal(size=(48, 36)) * 4).astype(dtypes[1])
    a, b = sg.tensor("a", av.shape, dtypes[0]), sg.tensor("b", bv.shape, dtypes[1])
    f = sg.function([a, b], a @ b, backend=backend)
    assert f.rewrite_report.fired["matmul_in_result_dtype"] == 1
    got, expected = f(av, bv), av @ bv
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-6 if expected.dtype == "float32"
                               else 1e-13)
    if backend == "llvm":
        assert any(kern.blas for kern in f.kernels)


def test_second_order_of_a_batched_matmul_loss(backend):
    rng = np.random.default_rng(7)
    av, bv = rng.standard_normal((2, 3, 4)), rng.standard_normal((1, 4, 2))
    vv = rng.standard_normal(av.shape)
    a, b, v = sg.tensor("a", av.shape), sg.tensor("b", bv.shape), sg.tensor("v", vv.shape)
    loss = sg.sum(sg.tanh(a @ b) ** 2) + sg.sum((swap(a) @ a) ** 2)
    ga = sg.grad(loss, a)
    hv = sg.grad(sg.sum(ga * v), [a, b])  # Hessian-vector products
    f = sg.function([a, b, v], hv, backend=backend)
    first = sg.function([a, b], ga, backend=backend)
    got = f(av, bv, vv)
    expected = finite_differences(lambda x, y: np.sum(first(x, y) * vv), [av, bv])
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("a, b, what", [
    ((4, 2, 3), (4, 2, 5), "contracted dims differ: 3 vs 2"),
    ((4, 2, 3), (5, 3, 2), "batch dims (4,) and (5,) do not broadcast"),
    ((3, 2, 2, 3), (4, 3, 5), "do not broadcast"),
    ((4,), (2, 3, 5), "contracted dims differ: 4 vs 3"),
    ((2, 2, 3), (4,), "contracted dims differ: 3 vs 4"),
])
def test_bad_shapes_raise_at_build_time(a, b, what):
    with pytest.raises(ValueError) as info:
        sg.tensor("a", a) @ sg.tensor("b", b)
    text = str(info.value)
    assert text.startswith("matmul: ") and what in text
    assert f"float64{a}, float64{b}" in text  # the user's shapes (not the promoted ones)


def test_matmul_of_bools_and_scalars_is_refused():
    with pytest.raises(TypeError, match="matmul"):
        sg.tensor("a", (2, 2, 2), "bool") @ sg.tensor("b", (2, 2), "bool")
    with pytest.raises(ValueError, match="matmul"):
        sg.matmul(sg.tensor("a", ()), sg.tensor("b", (2, 3, 4)))


def test_printing_shows_the_product():
    a, b = sg.tensor("a", (2, 3, 4)), sg.tensor("b", (4, 5))
    assert "a @ b" in sg.pprint(a @ b)


# --------------------------------------------------------------------------- dot


@pytest.mark.parametrize("shapes", [[(2, 3, 4), (4,)], [(2, 3, 4), (5, 4, 2)], [(4,), (3, 4, 2)],
                                    [(3, 4), (2, 4, 5)]])
def test_dot_nd_is_numpy_dot(shapes, backend):
    check(backend, sg.dot, np.dot, shapes)


def test_dot_bad_shapes_name_dot():
    with pytest.raises(ValueError, match=r"dot: contracted dims differ: 4 vs 3"):
        sg.dot(sg.tensor("a", (2, 3, 4)), sg.tensor("b", (5, 3, 2)))


# --------------------------------------------------------------------------- einsum

EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(3, 2, 4), (3, 4, 5)]),
    ("bij,jk->bik", [(3, 2, 4), (4, 5)]),
    ("i,i->", [(5,), (5,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij,ij->i", [(2, 3), (2, 3)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,jk", [(2, 3), (3, 4)]),                      # implicit output
    ("ba,ab", [(2, 3), (3, 2)]),                      # implicit: a scalar
    ("Ba,ab", [(2, 3), (3, 2)]),                      # upper case sorts first
    ("...ij,...jk->...ik", [(2, 3, 4), (1, 4, 2)]),   # ellipsis, broadcast
    ("...ij,jk", [(5, 2, 3), (3, 4)]),                # implicit output after '...'
    ("i...,i...->...", [(2, 3), (2, 1)]),
    ("ij,jk->ik", [(2, 1), (3, 4)]),                  # a length-1 label broadcasts
    ("ijk,jk->i", [(2, 3, 4), (3, 4)]),               # two contracted labels: merged
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),       # three operands
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("ab,cd->abcd", [(2, 3), (4, 5)]),
    ("ij,j->i", [(2, 3), (3,)]),
    ("j,jk->k", [(3,), (3, 4)]),
    ("bij,bkj->bki", [(2, 3, 4), (2, 5, 4)]),
    ("ibj,jk->bik", [(3, 2, 4), (4, 5)]),             # a batch label not in front
    ("ijk->kij", [(2, 3, 4)]),
    ("ij,->ij", [(2, 3), ()]),                        # a scalar operand
    ("abcd,cdef->abef", [(2, 1, 3, 2), (3, 2, 2, 4)]),
]


@pytest.mark.parametrize("spec, shapes", EINSUM, ids=[s for s, _ in EINSUM])
def test_einsum_matches_numpy_and_torch(spec, shapes, backend):
    rng = np.random.default_rng(8)
    values = [rng.standard_normal(s) for s in shapes]
    variables = [sg.tensor(f"x{i}", s) for i, s in enumerate(shapes)]
    out = sg.einsum(spec, *variables)
    expected = np.einsum(spec, *values)
    assert out.shape == expected.shape
    cv = rng.standard_normal(expected.shape)
    grads = sg.grad(sg.sum(out * cv), variables)
    got, *gvals = sg.function(variables, [out, *grads], backend=backend)(*values)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    tensors = [torch.tensor(v, requires_grad=True) for v in values]
    (torch.einsum(spec, *tensors) * torch.tensor(cv)).sum().backward()
    for g, t in zip(gvals, tensors):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_einsum_with_a_symbolic_batch_and_float32(backend):
    q = sg.tensor("q", ("b", 2, 3, 4), "float32")
    k = sg.tensor("k", ("b", 2, 5, 4), "float32")
    f = sg.function([q, k], sg.einsum("bhqd,bhkd->bhqk", q, k), backend=backend)
    rng = np.random.default_rng(9)
    for n in (1, 3):
        Q = rng.standard_normal((n, 2, 3, 4)).astype("float32")
        K = rng.standard_normal((n, 2, 5, 4)).astype("float32")
        got = f(Q, K)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, np.einsum("bhqd,bhkd->bhqk", Q, K), rtol=2e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("spec, static, shapes", [
    ("ijk,jk->i", [("i", "j", "k"), ("j", "k")], [(2, 3, 4), (3, 4)]),     # symbolic merge
    ("ibj,jk->bik", [("i", "b", 4), (4, "k")], [(3, 2, 4), (4, 5)]),
    ("bij,bjk->bik", [(None, None, 3), (None, 3, None)], [(2, 4, 3), (2, 3, 5)]),
    ("bij,bj->bi", [(None, None, None), (None, None)], [(2, 3, 4), (2, 4)]),
    ("ijk,jk->i", [(None, None, 4), (None, 4)], [(2, 3, 4), (3, 4)]),  # product and sum
    ("ab,cd->abcd", [(None, 3), (4, None)], [(2, 3), (4, 5)]),
])
def test_einsum_with_symbolic_and_unknown_lengths(spec, static, shapes, backend):
    """Axes of several unknown (None) lengths cannot be merged by a reshape: the contraction
    is then a broadcast product and a sum, still with the right value and gradient."""
    rng = np.random.default_rng(11)
    values = [rng.standard_normal(s) for s in shapes]
    variables = [sg.tensor(f"x{i}", s) for i, s in enumerate(static)]
    out = sg.einsum(spec, *variables)
    got, *grads = sg.function(variables, [out, *sg.grad(sg.sum(out ** 2), variables)],
                              backend=backend)(*values)
    np.testing.assert_allclose(got, np.einsum(spec, *values), rtol=1e-12, atol=1e-12)
    tensors = [torch.tensor(v, requires_grad=True) for v in values]
    (torch.einsum(spec, *tensors) ** 2).sum().backward()
    for g, t in zip(grads, tensors):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8", "bool"])
@pytest.mark.parametrize("spec, operands", [("ij->i", "a"), ("ij->", "a"),
                                            ("ij,jk->ik", "ab"), ("ij,ij->i", "aa")])
def test_einsum_keeps_an_integer_dtype_as_numpy(spec, operands, dtype, backend):
    """numpy's einsum does not widen (int8 wraps, bool is a logical or), though ``sum``
    does: the sums einsum is built from are cast back."""
    if dtype == "bool" and "," in spec:
        pytest.skip("matmul of booleans is not supported")
    rng = np.random.default_rng(7)
    values = {"a": rng.integers(0, 100, (3, 40)).astype(dtype),
              "b": rng.integers(0, 100, (40, 2)).astype(dtype)}
    xs = {k: sg.tensor(k, values[k].shape, dtype) for k in sorted(set(operands))}
    f = sg.function(list(xs.values()), sg.einsum(spec, *(xs[k] for k in operands)),
                    backend=backend)
    got = f(*(values[k] for k in xs))
    want = np.einsum(spec, *(values[k] for k in operands))
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_einsum_is_built_from_matmul_and_views():
    a, b = sg.tensor("a", (3, 2, 4)), sg.tensor("b", (3, 5, 4))
    y = sg.einsum("bij,bkj->bik", a, b)
    names = {n.op.name for n in sg.graph.toposort([y])}
    assert "matmul" in names and names <= {"matmul", "transpose", "reshape", "sum"}
    f = sg.function([a, b], y, backend="llvm")
    assert len(f.kernels) == 1 and f.kernels[0].blas  # b read through the transpose flag


@pytest.mark.parametrize("spec", ["ij,ij->i", "bij,bij->bi", "ji,ij->j"])
def test_einsum_dot_product_per_batch_entry_is_a_multiply_and_sum(spec, backend):
    """With batch labels and no free ones it built a (1, K) @ (K, 1) product per row, a
    scalar loop 3-6x slower than numpy; now one fused multiply-and-sum."""
    shapes = {"ij,ij->i": [(6, 5), (6, 5)], "bij,bij->bi": [(2, 3, 4), (2, 3, 4)],
              "ji,ij->j": [(4, 3), (3, 4)]}[spec]
    rng = np.random.default_rng(3)
    values = [rng.standard_normal(s) for s in shapes]
    xs = [sg.tensor(f"x{i}", s) for i, s in enumerate(shapes)]
    y = sg.einsum(spec, *xs)
    assert "matmul" not in {n.op.name for n in sg.graph.toposort([y])}
    f = sg.function(xs, [y, *sg.grad((y * y).sum(), xs)], backend=backend)
    value, *grads = f(*values)
    np.testing.assert_allclose(value, np.einsum(spec, *values), rtol=1e-12)
    ts = [torch.tensor(v, requires_grad=True) for v in values]
    (torch.einsum(spec, *ts) ** 2).sum().backward()
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


def test_einsum_second_order(backend):
    rng = np.random.default_rng(10)
    av, bv, vv = (rng.standard_normal(s) for s in [(2, 3, 4), (4, 2), (2, 3, 4)])
    a, b, v = sg.tensor("a", av.shape), sg.tensor("b", bv.shape), sg.tensor("v", vv.shape)
    loss = sg.sum(sg.einsum("bij,jk->bik", a, b) ** 3)
    hv = sg.grad(sg.sum(sg.grad(loss, a) * v), a)
    got = sg.function([a, b, v], hv, backend=backend)(av, bv, vv)
    first = sg.function([a, b], sg.grad(loss, a), backend=backend)
    np.testing.assert_allclose(got, fd_grad(lambda x: np.sum(first(x, bv) * vv), av),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("spec, shapes, what", [
    ("ij,jk->ik", [(2, 3), (4, 5)], "label 'j' has length 3 and 4 in operand 1"),
    ("ii->i", [(3, 3)], "label 'i' repeated in operand 0 ('ii'): traces and diagonals"),
    ("ij,jk->ik", [(2, 3)], "2 operand subscripts for 1 operands"),
    ("ij->ik", [(2, 3)], "output label 'k' is not in any operand"),
    ("ij->ii", [(2, 3)], "label 'i' repeated in the output"),
    ("ijk->i", [(2, 3)], "operand 0 has 2 dims but 3 labels"),
    ("i1->i", [(2, 3)], "invalid character '1'"),
    ("...ij->ij", [(4, 2, 3)], "no '...'"),
    ("i...j...->ij", [(2, 3)], "more than one '...'"),
    ("...ij->...", [(2,)], "fewer than the 2 labels"),
])
def test_einsum_errors_name_einsum_and_the_shapes(spec, shapes, what):
    xs = [sg.tensor(f"x{i}", s) for i, s in enumerate(shapes)]
    with pytest.raises(ValueError) as info:
        sg.einsum(spec, *xs)
    text = str(info.value)
    assert text.startswith("einsum: ") and what in text and repr(spec) in text
    assert "inputs " + ", ".join(f"float64{s}" for s in shapes) in text


def test_a_symbolic_batch_dim_of_1_at_run_time_does_not_broadcast(backend):
    """As for elementwise ops, only a dim declared 1 broadcasts: the llvm backend took a
    symbolic batch of 1 against 3 and read past the operand (garbage, silently), the numpy
    backend broadcast it. Both refuse it now, clearly; equal batches still multiply."""
    a, b = sg.tensor("a", (None, 1, 3)), sg.tensor("b", (3, 3, 1))
    f = sg.function([a, b], sg.matmul(a, b), backend=backend)
    B = np.arange(9.0).reshape(3, 3, 1)
    with pytest.raises(ValueError, match=r"matmul: input 0 \(a, .*length 1 on axis 0 .* to 3"):
        f(np.ones((1, 1, 3)), B)
    np.testing.assert_array_equal(f(np.ones((3, 1, 3)), B), np.matmul(np.ones((3, 1, 3)), B))
    x1, x2 = sg.tensor("x1", (None, 3)), sg.tensor("x2", (2, 3))
    g = sg.function([x1, x2], sg.einsum("ij,ij->i", x1, x2), backend=backend)
    with pytest.raises(ValueError, match="only dims declared as 1 broadcast"):
        g(np.ones((1, 3)), np.ones((2, 3)))
