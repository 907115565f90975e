"""``frontends.losses``: values and gradients against PyTorch and numpy, stability, errors.

Oracles: ``torch.nn.functional`` (with each function's own normalisation
accounted for explicitly), numpy formulas written here, and central finite
differences (``sg.check_grad``, float64).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import symgraph as sg
from frontends import losses

BATCH, CLASSES = 5, 4


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def run(loss, outputs, targets, backend, dtype="float64", batch="batch"):
    """Loss value and d loss / d outputs for concrete arrays, through ``loss.target``."""
    z = sg.tensor("z", (batch,) + outputs.shape[1:], dtype)
    y = loss.target(z)
    cost = loss(z, y)
    assert cost.ndim == 0 and cost.dtype == np.dtype(dtype)
    f = sg.function([z, y], [cost, sg.grad(cost, z)], backend=backend)
    value, grad = f(outputs.astype(dtype), targets)
    return float(value), np.asarray(grad)


def torch_value_and_grad(fn, outputs, *rest):
    z = torch.tensor(outputs, dtype=torch.float64, requires_grad=True)
    value = fn(z, *rest)
    value.backward()
    return value.item(), z.grad.numpy()


def np_log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def np_hinge(z, labels, margin=1.0):
    total = 0.0
    for i, y in enumerate(labels):
        total += sum(max(0.0, z[i, j] - z[i, y] + margin) for j in range(z.shape[1]) if j != y)
    return total / len(labels)


# --------------------------------------------------------------------------- values vs torch


def test_cross_entropy_matches_torch_and_numpy(backend, rng):
    z, labels = rng.normal(size=(BATCH, CLASSES)) * 3, rng.integers(0, CLASSES, BATCH)
    value, grad = run(losses.CrossEntropy(), z, labels, backend)
    t_value, t_grad = torch_value_and_grad(F.cross_entropy, z, torch.tensor(labels))
    np.testing.assert_allclose(value, t_value, rtol=1e-12)
    np.testing.assert_allclose(value, -np.mean(np_log_softmax(z)[np.arange(BATCH), labels]))
    np.testing.assert_allclose(grad, t_grad, rtol=1e-10, atol=1e-14)


def test_binary_cross_entropy_matches_torch(backend, rng):
    z = rng.normal(size=(BATCH, 3)) * 3
    soft_targets = rng.uniform(size=(BATCH, 3))
    value, grad = run(losses.BinaryCrossEntropy(), z, soft_targets, backend)
    t_value, t_grad = torch_value_and_grad(F.binary_cross_entropy_with_logits, z,
                                           torch.tensor(soft_targets))
    np.testing.assert_allclose(value, t_value, rtol=1e-12)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-10, atol=1e-14)
    p = 1 / (1 + np.exp(-z))
    np_value = -np.mean(soft_targets * np.log(p) + (1 - soft_targets) * np.log(1 - p))
    np.testing.assert_allclose(value, np_value, rtol=1e-10)


@pytest.mark.parametrize("name, torch_fn, np_fn", [
    ("mse", F.mse_loss, lambda d: np.mean(d ** 2)),
    ("mae", F.l1_loss, lambda d: np.mean(np.abs(d))),
])
def test_regression_losses_match_torch(backend, rng, name, torch_fn, np_fn):
    z, targets = rng.normal(size=(BATCH, 3)), rng.normal(size=(BATCH, 3))
    value, grad = run(losses.get(name), z, targets, backend)
    t_value, t_grad = torch_value_and_grad(torch_fn, z, torch.tensor(targets))
    np.testing.assert_allclose(value, t_value, rtol=1e-12)
    np.testing.assert_allclose(value, np_fn(z - targets), rtol=1e-12)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("margin", [1.0, 2.5])
def test_hinge_is_torch_multi_margin_times_classes(backend, rng, margin):
    # torch's multi_margin_loss divides each example's sum over classes by the number of classes;
    # the Weston-Watkins (cs231n) loss does not, so ours is torch's times CLASSES
    z, labels = rng.normal(size=(BATCH, CLASSES)), rng.integers(0, CLASSES, BATCH)
    value, grad = run(losses.Hinge(margin=margin), z, labels, backend)
    t_value, t_grad = torch_value_and_grad(
        lambda t, y: CLASSES * F.multi_margin_loss(t, y, margin=margin), z, torch.tensor(labels))
    np.testing.assert_allclose(value, t_value, rtol=1e-12)
    np.testing.assert_allclose(value, np_hinge(z, labels, margin), rtol=1e-12)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-10, atol=1e-14)


def test_hinge_is_zero_when_every_margin_is_met(backend):
    z = np.array([[5.0, 0.0, 1.0], [0.0, 0.0, 9.0]])
    value, grad = run(losses.Hinge(), z, np.array([0, 2]), backend)
    assert value == 0.0 and not grad.any()


def test_hinge_gradient_at_an_exactly_met_margin_is_zero_as_in_torch(backend):
    z = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.5]])  # row 0: s_1 - s_0 + 1 == 0 exactly
    labels = np.array([0, 2])
    value, grad = run(losses.Hinge(), z, labels, backend)
    t_value, t_grad = torch_value_and_grad(
        lambda t, y: 3 * F.multi_margin_loss(t, y), z, torch.tensor(labels))
    np.testing.assert_allclose(value, t_value, rtol=1e-12)
    np.testing.assert_array_equal(grad, t_grad)
    assert not grad[0].any()


def test_gaussian_nll_matches_torch_full_sum(backend, rng):
    k = 3
    out = np.concatenate([rng.normal(size=(BATCH, k)), rng.uniform(-2, 2, (BATCH, k))], axis=1)
    targets = rng.normal(size=(BATCH, k))
    value, grad = run(losses.GaussianNLL(), out, targets, backend)
    mean, log_var = out[:, :k], out[:, k:]
    np_value = np.mean(np.sum(0.5 * (log_var + (targets - mean) ** 2 / np.exp(log_var)
                                     + np.log(2 * np.pi)), axis=1))
    np.testing.assert_allclose(value, np_value, rtol=1e-12)

    # torch takes the variance (not its log), omits log(2 pi) unless full=True, and its "mean"
    # averages over the k outputs too: "sum" over everything / batch is our normalisation
    def torch_loss(t, y):
        return F.gaussian_nll_loss(t[:, :k], y, torch.exp(t[:, k:]), full=True,
                                   reduction="sum") / BATCH
    t_value, t_grad = torch_value_and_grad(torch_loss, out, torch.tensor(targets))
    t_mean_value = F.gaussian_nll_loss(torch.tensor(mean), torch.tensor(targets),
                                       torch.tensor(np.exp(log_var)), full=True).item()
    np.testing.assert_allclose(value, t_value, rtol=1e-12)
    np.testing.assert_allclose(value, k * t_mean_value, rtol=1e-12)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-10, atol=1e-14)


def test_gaussian_nll_min_log_var_is_torch_eps(backend, rng):
    # torch clamps the variance at eps under no_grad: the value uses the clamped variance and
    # the gradient flows as if unclamped (straight-through); d/d log_var = d/d var * var
    k, eps = 2, 1e-3
    log_var = np.array([[-12.0, 0.3], [-7.0, -0.5], [1.0, -30.0]])
    out = np.concatenate([rng.normal(size=(3, k)), log_var], axis=1)
    targets = rng.normal(size=(3, k))
    value, grad = run(losses.GaussianNLL(min_log_var=math.log(eps)), out, targets, backend)
    var = torch.tensor(np.exp(log_var), requires_grad=True)
    mean = torch.tensor(out[:, :k], requires_grad=True)
    t_value = F.gaussian_nll_loss(mean, torch.tensor(targets), var, full=True, eps=eps,
                                  reduction="sum") / 3
    t_value.backward()
    np.testing.assert_allclose(value, t_value.item(), rtol=1e-12)
    np.testing.assert_allclose(grad[:, :k], mean.grad.numpy(), rtol=1e-10)
    clamped_var = np.maximum(np.exp(log_var), eps)
    np.testing.assert_allclose(grad[:, k:], var.grad.numpy() * clamped_var, rtol=1e-10)
    assert np.all(grad[:, k:][log_var < math.log(eps)] != 0)  # clamped entries still learn


def test_float32_losses_stay_float32_and_agree_with_float64(backend, rng):
    z, labels = rng.normal(size=(BATCH, CLASSES)), rng.integers(0, CLASSES, BATCH)
    for loss in (losses.CrossEntropy(), losses.Hinge()):
        v32, g32 = run(loss, z, labels, backend, dtype="float32")
        v64, g64 = run(loss, z, labels, backend)
        assert g32.dtype == np.float32
        np.testing.assert_allclose(v32, v64, rtol=1e-5)
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


def test_unknown_batch_dim_gives_the_same_hinge(backend, rng):
    # with an unknown batch dim the label's score is picked by a mask, not by integer indexing
    z, labels = rng.normal(size=(BATCH, CLASSES)), rng.integers(0, CLASSES, BATCH)
    known = run(losses.Hinge(), z, labels, backend)
    unknown = run(losses.Hinge(), z, labels, backend, batch=None)
    np.testing.assert_allclose(unknown[0], known[0], rtol=1e-12)
    np.testing.assert_allclose(unknown[1], known[1], rtol=1e-12)


def test_hinge_label_out_of_range_raises_at_call_time(backend):
    z = sg.tensor("z", ("batch", 3))
    loss = losses.Hinge()
    y = loss.target(z)
    f = sg.function([z, y], loss(z, y), backend=backend)
    with pytest.raises(IndexError):
        f(np.zeros((2, 3)), np.array([0, 3]))


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", ["cross_entropy", "hinge"])
def test_label_loss_gradients_match_finite_differences(rng, name):
    z, labels = rng.normal(size=(3, CLASSES)), rng.integers(0, CLASSES, 3)
    sg.check_grad(lambda t: losses.get(name)(t, sg.constant(labels)), [z])


def test_binary_cross_entropy_gradient_matches_finite_differences(rng):
    z, targets = rng.normal(size=(3, 2)) * 2, rng.uniform(size=(3, 2))
    sg.check_grad(lambda t, y: losses.BinaryCrossEntropy()(t, y), [z, targets])


def test_regression_loss_gradients_match_finite_differences(rng):
    z, targets = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    sg.check_grad(lambda t, y: losses.MeanSquaredError()(t, y), [z, targets])
    sg.check_grad(lambda t, y: losses.MeanAbsoluteError()(t, y), [z, targets])


def test_gaussian_nll_gradient_matches_finite_differences(rng):
    out, targets = rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    sg.check_grad(lambda t, y: losses.GaussianNLL()(t, y), [out, targets])
    # above the clamp the straight-through clamp is the exact gradient
    sg.check_grad(lambda t, y: losses.GaussianNLL(min_log_var=-5.0)(t, y), [out, targets])


def test_cross_entropy_second_derivative_is_the_softmax_jacobian(rng):
    # the Hessian of mean CE in one example's logits is (diag(p) - p p^T) / batch
    z, labels = rng.normal(size=(1, CLASSES)), np.array([2])
    v = sg.tensor("v", (CLASSES,))
    cost = losses.CrossEntropy()(sg.reshape(v, (1, CLASSES)), sg.constant(labels))
    hessian = sg.function([v], sg.hessian(cost, v), backend="numpy")(z[0])
    p = np.exp(np_log_softmax(z))[0]
    np.testing.assert_allclose(hessian, np.diag(p) - np.outer(p, p), rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- stability


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_logits_give_finite_loss_and_gradient(backend, rng, dtype):
    z = rng.choice([-1e4, 1e4], size=(BATCH, CLASSES)) * rng.uniform(0.5, 1, (BATCH, CLASSES))
    labels = rng.integers(0, CLASSES, BATCH)
    binary = (rng.uniform(size=(BATCH, CLASSES)) > 0.5).astype(float)
    cases = [(losses.CrossEntropy(), labels, F.cross_entropy, torch.tensor(labels)),
             (losses.BinaryCrossEntropy(), binary, F.binary_cross_entropy_with_logits,
              torch.tensor(binary)),
             (losses.Hinge(), labels,
              lambda t, y: CLASSES * F.multi_margin_loss(t, y), torch.tensor(labels))]
    for loss, targets, torch_fn, torch_targets in cases:
        value, grad = run(loss, z, targets, backend, dtype=dtype)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), loss
        t_value, t_grad = torch_value_and_grad(torch_fn, z.astype(dtype).astype(float),
                                               torch_targets)
        np.testing.assert_allclose(value, t_value, rtol=1e-5, err_msg=repr(loss))
        np.testing.assert_allclose(grad, t_grad, rtol=1e-5, atol=1e-6, err_msg=repr(loss))


def test_gaussian_nll_extreme_outputs(backend):
    # a huge error with a huge variance is finite; a collapsed variance is finite once clamped
    out = np.array([[1e4, 1e4], [0.0, -1e4]])
    targets = np.array([[-1e4], [0.0]])
    value, grad = run(losses.GaussianNLL(min_log_var=-20.0), out, targets, backend)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    expected = 0.5 * (1e4 + 4e8 * np.exp(-1e4) + -20.0) + math.log(2 * math.pi)
    np.testing.assert_allclose(value, expected / 2, rtol=1e-12)


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize("batch", ["batch", 7, None])
def test_targets_have_the_shape_and_dtype_each_loss_expects(batch):
    z = sg.tensor("z", (batch, 6), "float32")
    cases = {"cross_entropy": ((batch,), "int64"), "hinge": ((batch,), "int64"),
             "binary_cross_entropy": ((batch, 6), "float32"), "mse": ((batch, 6), "float32"),
             "mae": ((batch, 6), "float32"), "gaussian_nll": ((batch, 3), "float32")}
    for name, (shape, dtype) in cases.items():
        y = losses.get(name).target(z, name="labels")
        assert y.name == "labels" and y.dtype == np.dtype(dtype), name
        assert y.shape == sg.tensor("ref", shape).shape, name
        assert y.owner is None  # a graph input, not a computed node


# --------------------------------------------------------------------------- errors


def test_label_losses_reject_bad_shapes_and_dtypes():
    z = sg.tensor("z", ("batch", 4))
    for loss in (losses.CrossEntropy(), losses.Hinge()):
        # cross-entropy takes a class per position (batch, ..., classes); hinge does not
        with pytest.raises(ValueError, match=r"labels must be \(batch, 4\) matching outputs "
                                             r"\(batch, 4, 2\)" if loss.name == "cross_entropy"
                           else r"\(batch, classes\), got shape \(batch, 4, 2\)"):
            loss(sg.tensor("z3", ("batch", 4, 2)), sg.tensor("y", ("batch",), "int64"))
        with pytest.raises(ValueError, match="fixed"):
            loss(sg.tensor("zs", ("batch", "classes")), sg.tensor("y", ("batch",), "int64"))
        with pytest.raises(TypeError, match="integer class labels"):
            loss(z, sg.tensor("y", ("batch",), "float64"))
        with pytest.raises(ValueError, match=r"labels must be \(batch,\)"):
            loss(z, sg.tensor("y", ("batch", 1), "int64"))
        with pytest.raises(ValueError, match=r"labels must be \(8,\) matching outputs \(8, 4\)"):
            loss(sg.tensor("zf", (8, 4)), sg.tensor("y", (5,), "int64"))
        with pytest.raises(TypeError, match="must be floats"):
            loss(sg.tensor("zi", ("batch", 4), "int64"), sg.tensor("y", ("batch",), "int64"))
        with pytest.raises(ValueError, match=r"\(batch, classes\)"):
            loss.target(sg.tensor("v", ("batch",)))


@pytest.mark.parametrize("name", ["mse", "mae", "binary_cross_entropy"])
def test_elementwise_losses_refuse_to_broadcast(name):
    loss = losses.get(name)
    # (batch, 1) outputs against (batch,) targets would broadcast to (batch, batch)
    with pytest.raises(ValueError, match="same shape"):
        loss(sg.tensor("z", ("batch", 1)), sg.tensor("y", ("batch",)))
    with pytest.raises(ValueError, match="same shape"):
        loss(sg.tensor("z", ("batch", 3)), sg.tensor("y", ("batch", 1)))
    with pytest.raises(ValueError, match="same shape"):
        loss(sg.tensor("z", (4, 3)), sg.tensor("y", (5, 3)))
    # a symbolic dim is not known to be 1, so a static 1 against it would broadcast
    with pytest.raises(ValueError, match="same shape"):
        loss(sg.tensor("z", ("batch", "k")), sg.tensor("y", ("batch", 1)))
    assert loss(sg.tensor("z", ("batch", 3)), sg.tensor("y", (None, 3))).ndim == 0


def test_gaussian_nll_rejects_bad_shapes():
    loss = losses.GaussianNLL()
    for shape in [("batch", 3), ("batch", "cols"), ("batch",), ("batch", 0)]:
        with pytest.raises(ValueError, match="2k|even"):
            loss.target(sg.tensor("z", shape))
    with pytest.raises(ValueError, match=r"targets must be \(batch, 2\)"):
        loss(sg.tensor("z", ("batch", 4)), sg.tensor("y", ("batch", 4)))
    with pytest.raises(ValueError, match="min_log_var"):
        losses.GaussianNLL(min_log_var=float("nan"))


def test_hinge_margin_must_be_a_non_negative_number():
    with pytest.raises(ValueError, match="margin"):
        losses.Hinge(margin=-1)
    with pytest.raises(TypeError, match="margin"):
        losses.Hinge(margin="1")


# --------------------------------------------------------------------------- get / config


@pytest.mark.parametrize("name, cls", [
    ("cross_entropy", losses.CrossEntropy), ("categorical_crossentropy", losses.CrossEntropy),
    ("sparse_categorical_crossentropy", losses.CrossEntropy),
    ("binary_cross_entropy", losses.BinaryCrossEntropy), ("mse", losses.MeanSquaredError),
    ("mae", losses.MeanAbsoluteError), ("hinge", losses.Hinge),
    ("gaussian_nll", losses.GaussianNLL), ("MeanSquaredError", losses.MeanSquaredError),
])
def test_get_by_name(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls
    assert losses.get(loss) is loss


@pytest.mark.parametrize("loss", [
    losses.CrossEntropy(), losses.BinaryCrossEntropy(), losses.MeanSquaredError(),
    losses.MeanAbsoluteError(), losses.Hinge(margin=0.5), losses.GaussianNLL(min_log_var=-9.0),
])
def test_config_round_trip(loss):
    config = loss.get_config()
    assert config["type"] == loss.name
    rebuilt = losses.get(config)
    assert type(rebuilt) is type(loss) and rebuilt.get_config() == config
    assert losses.get(loss.name).name == loss.name


def test_get_errors_are_clear():
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'.*cross_entropy.*hinge"):
        losses.get("crossentropy")
    with pytest.raises(ValueError, match="'type'"):
        losses.get({"margin": 1.0})
    with pytest.raises(ValueError,
                       match=r"loss Hinge: unknown argument\(s\) \['margn'\] \(did you mean "
                             r"'margin'\?\); valid: \['margin'\]"):
        losses.get({"type": "hinge", "margn": 1.0})
    with pytest.raises(TypeError, match="a name, a config dict or a Loss"):
        losses.get(3)


@pytest.mark.parametrize("smoothing, ignore", [(0.0, None), (0.1, None), (0.2, 1), (0.0, 3)])
def test_cross_entropy_options_match_torch_and_round_trip(backend, smoothing, ignore):
    loss = losses.get({"type": "cross_entropy", "label_smoothing": smoothing,
                          "ignore_index": ignore})
    assert losses.get(loss.get_config()) == loss
    z, y = sg.tensor("z", (6, 4)), sg.tensor("y", (6,), "int64")
    gz = sg.grad(loss(z, y), z)
    f = sg.function([z, y], [loss(z, y), gz], backend=backend)
    Z = np.random.default_rng(3).standard_normal((6, 4))
    Y = np.array([0, 1, 3, 2, 1, 3])
    tz = torch.tensor(Z, requires_grad=True)
    want = torch.nn.functional.cross_entropy(
        tz, torch.tensor(Y), label_smoothing=smoothing,
        ignore_index=-100 if ignore is None else ignore)
    want.backward()
    value, grad = f(Z, Y)
    np.testing.assert_allclose(value, want.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-10, atol=1e-14)


# ------------------------------------------------------- targets="probabilities"


@pytest.mark.parametrize("smoothing, weighted", [(0.0, False), (0.2, False), (0.0, True),
                                                 (0.1, True)])
def test_cross_entropy_of_probability_rows_matches_torch(backend, rng, smoothing, weighted):
    """One-hot and soft targets, as torch's cross_entropy given class probabilities (which
    averages over the examples, weights or not): value and gradient."""
    z = rng.normal(size=(BATCH, CLASSES)) * 3
    t = rng.dirichlet(np.ones(CLASSES), size=BATCH)
    t[:2] = np.eye(CLASSES)[[1, 3]]  # one-hot rows among the soft ones
    w = rng.uniform(0.5, 2.0, CLASSES) if weighted else None
    loss = losses.CrossEntropy(targets="probabilities", label_smoothing=smoothing,
                               weight=None if w is None else list(w))
    value, grad = run(loss, z, t, backend)
    tv, tg = torch_value_and_grad(
        lambda zz: F.cross_entropy(zz, torch.from_numpy(t), label_smoothing=smoothing,
                                   weight=None if w is None else torch.from_numpy(w)), z)
    assert value == pytest.approx(tv, rel=1e-12)
    np.testing.assert_allclose(grad, tg, rtol=1e-10, atol=1e-14)


def test_one_hot_rows_give_the_loss_and_accuracy_of_their_labels(backend, rng):
    """A model compiled with targets="probabilities" trains on np.eye(C)[y] exactly as the
    label form trains on y: the same loss, accuracy and weights after an epoch."""
    import frontends as fe

    X, y = rng.normal(size=(30, 6)), rng.integers(0, CLASSES, 30)
    results = []
    for loss, targets in ((losses.CrossEntropy(), y),
                          (losses.CrossEntropy(targets="probabilities"), np.eye(CLASSES)[y])):
        model = fe.Sequential([fe.layers.Dense(CLASSES)], input_shape=(6,), dtype="float64",
                              seed=3)
        model.compile(loss=loss, optimizer="adam", metrics=["accuracy", "top_2_accuracy"],
                      backend=backend)
        history = model.fit(X, targets, batch_size=8, shuffle=False, progress=False,
                            verbose=False).history
        results.append((history, model.evaluate(X, targets), model.get_weights()))
    (h1, e1, w1), (h2, e2, w2) = results
    for key in ("loss", "accuracy", "top_2_accuracy"):
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-12, err_msg=key)
    assert e1 == pytest.approx(e2, rel=1e-12)
    logits = X @ w1[0] + w1[1]
    assert e1["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_categorical_crossentropy_with_integer_labels_points_to_the_sparse_one():
    import frontends as fe
    from frontends.errors import UserInputError

    model = fe.Sequential([fe.layers.Dense(3, activation="softmax")], input_shape=(4,),
                          seed=0)
    model.compile(loss="categorical_crossentropy")
    X = np.zeros((6, 4), "float32")
    with pytest.raises(UserInputError, match=r"shape \(batch, 3\).*got y of shape \(6,\).*"
                                             r"'sparse_categorical_crossentropy'.*np\.eye"):
        model.fit(X, np.arange(6) % 3, progress=False, verbose=False)
    with pytest.raises(UserInputError, match=r"y holds 2 at row 0, column 0.*from 0 to 1"):
        model.fit(X, 2.0 * np.eye(3)[np.arange(6) % 3], progress=False, verbose=False)


def test_probability_targets_option_errors():
    with pytest.raises(ValueError, match="targets must be 'labels'.*or 'probabilities'"):
        losses.CrossEntropy(targets="one_hot")
    with pytest.raises(ValueError, match="ignore_index applies to integer labels"):
        losses.CrossEntropy(targets="probabilities", ignore_index=0)
    loss = losses.CrossEntropy(targets="probabilities")
    z = sg.tensor("z", ("batch", 3))
    with pytest.raises(TypeError, match="float rows"):
        loss(z, sg.tensor("y", ("batch", 3), "int64"))
    with pytest.raises(sg.shapes.ShapeError, match="same shape"):
        loss(z, sg.tensor("y", ("batch",), "float32"))
    config = losses.get("categorical_crossentropy").get_config()
    assert config == {"type": "cross_entropy", "targets": "probabilities", "from_logits": False}
    assert losses.get(config) == losses.get("categorical_crossentropy")


def test_cross_entropy_option_errors():
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CrossEntropy(label_smoothing=1.5)
    with pytest.raises(TypeError, match="ignore_index"):
        losses.CrossEntropy(ignore_index=1.0)


# ------------------------------------------------------- probabilities (from_logits=False)
def _keras_style(activation, loss, units, y):
    import frontends as fe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    model = fe.Sequential([fe.layers.Dense(units, activation=activation)], input_shape=(5,),
                          dtype="float64", seed=0)
    model.compile(loss=loss, optimizer="adam")
    return model.evaluate(x, y)["loss"], model.predict(x)


def test_keras_names_take_a_softmax_or_sigmoid_layers_probabilities():
    """Keras's names mean probabilities: a softmax (sigmoid) output layer's loss is the NLL
    of its probabilities, as Keras computes it (it was read as logits: log_softmax of a
    softmax, 1.15 for 1.76)."""
    y = np.random.default_rng(1).integers(0, 3, 40)
    want = None
    for name, targets in (("sparse_categorical_crossentropy", y),
                          ("categorical_crossentropy", np.eye(3)[y])):  # one-hot, as Keras
        got, p = _keras_style("softmax", name, 3, targets)
        want = F.nll_loss(torch.log(torch.tensor(p)), torch.tensor(y)).item()
        assert got == pytest.approx(want, rel=1e-12)
    yb = (y > 0).astype(np.float64)[:, None]
    got, p = _keras_style("sigmoid", "binary_crossentropy", 1, yb)
    assert got == pytest.approx(F.binary_cross_entropy(torch.tensor(p), torch.tensor(yb)).item(),
                                rel=1e-12)


def test_probabilities_must_come_out_of_the_activation():
    """from_logits=False reads a softmax (sigmoid) layer through its logits; any other
    output is refused at compile -- read as probabilities and clipped, as Keras does, a
    model with a logits output trained to 0.6% accuracy on digits under a Keras name."""
    import frontends as fe
    from frontends.errors import UserInputError

    for loss, units in (("sparse_categorical_crossentropy", 3), ("binary_crossentropy", 1)):
        logits = fe.Sequential([fe.layers.Dense(units)], input_shape=(5,), seed=0)
        with pytest.raises(UserInputError, match=r"takes the probabilities of a (softmax|"
                                                 r"sigmoid) output layer.*for logits use"):
            logits.compile(loss=loss, optimizer="sgd")
        assert not logits.compiled
    z = sg.tensor("z", ("batch", 3))
    with pytest.raises(UserInputError, match="model's output is not one"):
        losses.CrossEntropy(from_logits=False)(z, sg.tensor("y", ("batch",), "int64"))


def test_logits_losses_warn_about_a_softmax_output_and_configs_round_trip():
    import frontends as fe

    model = fe.Sequential([fe.layers.Dense(3, activation="softmax")], input_shape=(5,), seed=0)
    with pytest.warns(UserWarning, match="takes logits, but the model's output is a softmax"):
        model.compile(loss="cross_entropy", optimizer="sgd")
    import warnings

    again = fe.Sequential([fe.layers.Dense(3, activation="softmax")], input_shape=(5,), seed=0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        again.compile(loss="cross_entropy", optimizer="sgd")
    assert sum("takes logits" in str(w.message) for w in seen) == 1  # once, not per graph
    alias = losses.get("sparse_categorical_crossentropy")
    assert alias.get_config() == {"type": "cross_entropy", "from_logits": False}
    assert losses.get(alias.get_config()) == alias != losses.get("cross_entropy")
    assert losses.get("binary_crossentropy").get_config() == {
        "type": "binary_cross_entropy", "from_logits": False}
    with pytest.raises(TypeError, match="from_logits must be True or False"):
        losses.CrossEntropy(from_logits="yes")
