"""``frontends.regularizers``: penalty values vs numpy, gradients vs finite differences, and
L2 as weight decay against ``torch.optim.SGD(weight_decay=2 l)``."""

import numpy as np
import pytest
import torch

import symgraph as sg
from frontends import regularizers


@pytest.fixture
def rng():
    return np.random.default_rng(1)


def penalty_value(regularizer, arrays, backend):
    params = [sg.shared(a, name=f"W{i}") for i, a in enumerate(arrays)]
    penalty = regularizer(params)
    grads = sg.grad(penalty, params)
    value, *grad_values = sg.function([], [penalty, *grads], backend=backend)()
    return penalty, float(value), grad_values


def test_l2_value_and_gradient(backend, rng):
    arrays = [rng.normal(size=(3, 4)), rng.normal(size=(4,))]
    _, value, grads = penalty_value(regularizers.L2(0.3), arrays, backend)
    np.testing.assert_allclose(value, 0.3 * sum(np.sum(a ** 2) for a in arrays), rtol=1e-12)
    for a, g in zip(arrays, grads):
        np.testing.assert_allclose(g, 2 * 0.3 * a, rtol=1e-12)  # Keras: gradient 2 l W


def test_l1_value_and_gradient(backend, rng):
    arrays = [rng.normal(size=(2, 3)), np.array([0.0, -2.0, 5.0])]
    _, value, grads = penalty_value(regularizers.L1(0.2), arrays, backend)
    np.testing.assert_allclose(value, 0.2 * sum(np.abs(a).sum() for a in arrays), rtol=1e-12)
    for a, g in zip(arrays, grads):
        np.testing.assert_allclose(g, 0.2 * np.sign(a), rtol=1e-12)  # 0 at W = 0


def test_elastic_net_is_l1_plus_l2(backend, rng):
    arrays = [rng.normal(size=(3, 2))]
    _, value, (grad,) = penalty_value(regularizers.ElasticNet(l1=0.1, l2=0.7), arrays, backend)
    a = arrays[0]
    np.testing.assert_allclose(value, 0.1 * np.abs(a).sum() + 0.7 * np.sum(a ** 2), rtol=1e-12)
    np.testing.assert_allclose(grad, 0.1 * np.sign(a) + 1.4 * a, rtol=1e-12)
    assert regularizers.L1L2 is regularizers.ElasticNet


def test_gradients_match_finite_differences(rng):
    w, v = rng.normal(size=(3, 2)), rng.normal(size=(4,))
    for reg in (regularizers.L2(0.5), regularizers.L1(0.5), regularizers.ElasticNet(0.2, 0.3)):
        sg.check_grad(lambda a, b, reg=reg: reg([a, b]), [w, v])


@pytest.mark.parametrize("coefficient", [0.05, 0.3])
def test_sgd_with_l2_is_torch_sgd_with_weight_decay_2l(backend, rng, coefficient):
    # linear regression, bias not regularised; five SGD steps, then compare the parameters
    X, Y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    W0, b0, lr = rng.normal(size=(3, 2)), rng.normal(size=(2,)), 0.1
    W, b = sg.shared(W0.copy(), name="W"), sg.shared(b0.copy(), name="b")
    x, y = sg.tensor("x", ("batch", 3)), sg.tensor("y", ("batch", 2))
    cost = sg.nn.mse(x @ W + b, y) + regularizers.L2(coefficient)([W])
    gW, gb = sg.grad(cost, [W, b])
    step = sg.function([x, y], cost, updates={W: W - lr * gW, b: b - lr * gb}, backend=backend)

    tW = torch.tensor(W0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    opt = torch.optim.SGD([{"params": [tW], "weight_decay": 2 * coefficient},
                           {"params": [tb], "weight_decay": 0.0}], lr=lr)
    tX, tY = torch.tensor(X), torch.tensor(Y)
    for _ in range(5):
        step(X, Y)
        opt.zero_grad()
        torch.nn.functional.mse_loss(tX @ tW + tb, tY).backward()
        opt.step()
    np.testing.assert_allclose(W.get_value(), tW.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.get_value(), tb.detach().numpy(), rtol=1e-12)
    assert not np.allclose(W.get_value(), W0)


def test_dtype_follows_the_parameters():
    f32 = sg.shared(np.ones((2, 2), "float32"))
    f64 = sg.shared(np.ones(3, "float64"))
    assert regularizers.L2(0.1)([f32]).dtype == np.float32
    assert regularizers.L1(0.1)([f32, f64]).dtype == np.float64
    assert regularizers.L2(0.1)([f32], dtype="float64").dtype == np.float64


def test_empty_list_and_zero_coefficients_give_a_zero_constant(backend):
    zero = regularizers.L2(0.1)([])
    assert isinstance(zero, sg.Constant) and zero.dtype == np.float32 and zero.ndim == 0
    assert float(sg.function([], zero, backend=backend)()) == 0.0
    W = sg.shared(np.full((2, 2), 3.0))
    assert float(sg.function([], regularizers.ElasticNet(0.0, 0.0)([W]), backend=backend)()) == 0
    # a penalty of 0 on a parameter is still differentiable (gradient 0) inside a larger cost
    cost = (W * 1.0).sum() + regularizers.L2(0.0)([W])
    assert np.all(sg.function([], sg.grad(cost, W), backend=backend)() == 1.0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="L2: l must be a finite number >= 0"):
        regularizers.L2(-0.1)  # the argument's own name (it said "l2")
    with pytest.raises(ValueError, match="L1: l must be a finite number"):
        regularizers.L1(float("inf"))
    with pytest.raises(TypeError, match="l2 must be a number"):
        regularizers.ElasticNet(l2="0.1")
    W = sg.shared(np.zeros(2))
    with pytest.raises(TypeError, match="list of parameters"):
        regularizers.L2()(W)
    with pytest.raises(TypeError, match="parameter 1 .*int64"):
        regularizers.L2()([W, sg.shared(np.zeros(2, "int64"), name="steps")])
    with pytest.raises(TypeError, match="parameter 0 is a ndarray"):
        regularizers.L2()([np.zeros(2)])


@pytest.mark.parametrize("reg", [regularizers.L2(1e-4), regularizers.L1(0.5),
                                 regularizers.ElasticNet(0.1, 0.2)])
def test_config_round_trip(reg):
    config = reg.get_config()
    rebuilt = regularizers.get(config)
    assert type(rebuilt) is type(reg) and rebuilt.get_config() == config and rebuilt == reg


def test_get_names_and_errors():
    assert regularizers.get("l2") == regularizers.L2(0.01)
    assert regularizers.get({"type": "L2", "l": 1e-4}).l == 1e-4
    assert regularizers.get("L1L2") == regularizers.ElasticNet(0.01, 0.01)
    assert type(regularizers.get("elastic_net")) is regularizers.ElasticNet
    reg = regularizers.L1(0.3)
    assert regularizers.get(reg) is reg and reg.l == 0.3
    with pytest.raises(ValueError, match="unknown regularizer 'l3'.*L2"):
        regularizers.get("l3")
    with pytest.raises(ValueError,
                       match=r"regularizer L2: unknown argument\(s\) \['l2'\] "
                             r"\(did you mean 'l'\?\); valid: \['l'\]"):
        regularizers.get({"type": "L2", "l2": 0.1})
