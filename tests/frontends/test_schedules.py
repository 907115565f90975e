"""frontends.schedules: the in-graph schedules' effective learning rate (read through a
compiled function's output, step by step) against their closed forms, the parameters they
produce against a numpy SGD loop with those rates, float32 models staying float32, and
ReduceOnPlateau against torch.optim.lr_scheduler.ReduceLROnPlateau and a worked example.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import symgraph as sg
from frontends import schedules
from frontends.optimizers import SGD, Adam
from frontends.schedules import Cosine, Exponential, InverseTime, ReduceOnPlateau, Step

N_STEPS = 9
_rng = np.random.default_rng(99)
X = _rng.normal(size=(6, 3))
Y = _rng.normal(size=(6, 2))
W0 = _rng.normal(size=(3, 2))

# schedule -> closed form of the rate used by step t (t = steps already taken, 0-based)
CLOSED_FORMS = {
    "step": (Step(drop=0.5, every=3), lambda lr, t: lr * 0.5 ** math.floor(t / 3)),
    "step_drop_0.1_every_4": (Step(drop=0.1, every=4), lambda lr, t: lr * 0.1 ** (t // 4)),
    "exponential": (Exponential(rate=0.5, steps=4), lambda lr, t: lr * 0.5 ** (t / 4)),
    "exponential_staircase": (Exponential(rate=0.5, steps=4, staircase=True),
                              lambda lr, t: lr * 0.5 ** (t // 4)),
    "inverse_time": (InverseTime(rate=0.5, steps=2), lambda lr, t: lr / (1 + 0.5 * t / 2)),
    "inverse_time_staircase": (InverseTime(rate=0.5, steps=2, staircase=True),
                               lambda lr, t: lr / (1 + 0.5 * (t // 2))),
    # 9 steps of a 6-step decay: the last three stay at alpha * lr
    "cosine": (Cosine(steps=6, alpha=0.1),
               lambda lr, t: lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 6) / 6)))),
}


def _model(dtype="float64"):
    W = sg.shared(W0.astype(dtype), name="W")
    x = sg.tensor("x", ("batch", 3), dtype)
    y = sg.tensor("y", ("batch", 2), dtype)
    loss = sg.mean(sg.square(x @ W - y))
    return x, y, loss, W


def _numpy_sgd(lrs):
    """``W -= lr_t * dL/dW`` for the given per-step rates (loss mean((XW - Y)^2))."""
    W = W0.copy()
    for lr in lrs:
        W = W - lr * (X.T @ (2.0 * (X @ W - Y) / Y.size))
    return W


@pytest.mark.parametrize("case", list(CLOSED_FORMS))
def test_effective_lr_matches_the_closed_form_and_drives_the_update(case, backend):
    schedule, closed_form = CLOSED_FORMS[case]
    opt = SGD(lr=0.2, schedule=schedule)
    x, y, loss, W = _model()
    updates = opt.get_updates([W], [sg.grad(loss, W)])  # creates opt.effective_lr
    f = sg.function([x, y], [loss, opt.effective_lr], updates=updates, backend=backend)
    got = [float(f(X, Y)[1]) for _ in range(N_STEPS)]
    want = [closed_form(0.2, t) for t in range(N_STEPS)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert got[0] == 0.2 and got[-1] < 0.2 * 0.6  # first step uses the base rate, then decays
    np.testing.assert_allclose(W.get_value(), _numpy_sgd(want), rtol=1e-12)


def test_cosine_matches_torch_cosine_annealing_lr():
    """torch's CosineAnnealingLR(T_max, eta_min = alpha lr) over its T_max steps."""
    opt = SGD(lr=0.2, schedule=Cosine(steps=7, alpha=0.25))
    x, y, loss, W = _model()
    updates = opt.get_updates([W], [sg.grad(loss, W)])
    f = sg.function([x, y], opt.effective_lr, updates=updates, backend="numpy")
    got = [float(f(X, Y)) for _ in range(8)]
    p = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([p], lr=0.2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=7, eta_min=0.05)
    want = []
    for _ in range(8):
        want.append(topt.param_groups[0]["lr"])
        topt.step()
        sched.step()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_cosine_warmup_is_linear_from_zero_then_decays(backend):
    opt = Adam(lr=0.3, schedule=Cosine(steps=4, warmup=3))
    x, y, loss, W = _model()
    updates = opt.get_updates([W], [sg.grad(loss, W)])
    f = sg.function([x, y], opt.effective_lr, updates=updates, backend=backend)
    got = [float(f(X, Y)) for _ in range(9)]
    decay = [0.5 * (1 + math.cos(math.pi * s / 4)) for s in (0, 1, 2, 3, 4, 4)]
    np.testing.assert_allclose(got, [0.3 * r for r in [0, 1 / 3, 2 / 3] + decay], rtol=1e-14,
                               atol=1e-17)


def test_schedule_advances_every_step_inside_one_native_epoch_call(backend):
    """``f.epoch`` runs all minibatches in one call: the counter still moves per step."""
    opt = SGD(lr=0.2, schedule=Step(drop=0.5, every=2))
    x, y, loss, W = _model()
    updates = opt.get_updates([W], [sg.grad(loss, W)])
    f = sg.function([x, y], [loss, opt.effective_lr], updates=updates, backend=backend)
    Xs, Ys = np.tile(X, (3, 1)), np.tile(Y, (3, 1))  # 3 batches of the same 6 rows
    _, rates = f.epoch(Xs, Ys, batch_size=6)
    np.testing.assert_allclose(rates, [0.2, 0.2, 0.1], rtol=1e-15)
    assert opt.iterations.get_value() == 3
    np.testing.assert_allclose(W.get_value(), _numpy_sgd([0.2, 0.2, 0.1]), rtol=1e-12)


def test_schedule_follows_a_changed_base_rate_without_recompiling(backend):
    opt = SGD(lr=0.2, schedule=Exponential(0.5, 2))
    x, y, loss, W = _model()
    updates = opt.get_updates([W], [sg.grad(loss, W)])
    f = sg.function([x, y], opt.effective_lr, updates=updates, backend=backend)
    program = f.program
    assert float(f(X, Y)) == 0.2
    opt.learning_rate = 1.0
    np.testing.assert_allclose(float(f(X, Y)), 1.0 * 0.5 ** 0.5, rtol=1e-14)  # t = 1
    assert f.program is program


def test_float32_schedule_keeps_parameter_sized_math_float32(backend):
    opt = Adam(lr=0.01, schedule=InverseTime(1.0, 3))
    x, y, loss, W = _model("float32")
    updates = opt.get_updates([W], [sg.grad(loss, W)])
    assert opt.effective_lr.dtype == np.float32
    # only the 0-d step-count arithmetic may be float64
    wide = [o for n in sg.graph.toposort(list(updates.values())) for o in n.outputs
            if o.dtype == np.float64]
    assert wide and all(o.ndim == 0 for o in wide)
    f = sg.function([x, y], opt.effective_lr, updates=updates, backend=backend)
    got = [f(X.astype("float32"), Y.astype("float32")) for _ in range(4)]
    assert all(g.dtype == np.float32 for g in got)
    np.testing.assert_allclose(got, [0.01 / (1 + t / 3) for t in range(4)], rtol=1e-6)


# ----------------------------------------------------------------------------- ReduceOnPlateau


def _plateau_run(schedule, values, lr=0.1):
    opt = SGD(lr=lr, schedule=schedule)
    rates = []
    for epoch, v in enumerate(values):
        opt.on_epoch_end(epoch, {"val_loss": v, "loss": 0.0})
        rates.append(opt.learning_rate)
    return rates


def test_reduce_on_plateau_worked_example():
    # patience 2: epochs 2 and 3 do not beat 0.9 -> halve after epoch 3; epoch 4 improves;
    # epochs 5, 6 do not beat 0.8 -> halve again; min_lr stops at 0.03
    values = [1.0, 0.9, 0.95, 0.91, 0.8, 0.85, 0.8, 0.81]
    rates = _plateau_run(ReduceOnPlateau(factor=0.5, patience=2, min_lr=0.03), values)
    assert rates == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.03, 0.03]


def _torch_plateau_rates(values, *, factor, patience, min_lr, mode, min_delta, cooldown):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    # torch reduces when bad epochs > patience; ours (Keras) when >= patience. torch also
    # skips a change smaller than 1e-8 (so the scenarios keep min_lr >= 1e-4).
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=factor, patience=patience - 1, threshold=min_delta,
        threshold_mode="abs", min_lr=min_lr, cooldown=cooldown)
    rates = []
    for v in values:
        sched.step(v)
        rates.append(opt.param_groups[0]["lr"])
    return rates


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", ["min", "max"])
def test_reduce_on_plateau_matches_torch(seed, mode):
    rng = np.random.default_rng(seed)
    values = list(np.cumsum(rng.normal(scale=0.1, size=40)) + rng.normal(scale=0.05, size=40))
    kwargs = dict(factor=[0.5, 0.3, 0.7, 0.1][seed], patience=[1, 2, 3, 2][seed],
                  min_lr=[1e-4, 0.01, 1e-3, 0.02][seed], mode=mode,
                  min_delta=[0.0, 0.01, 0.0, 0.03][seed], cooldown=[0, 2, 1, 0][seed])
    schedule = ReduceOnPlateau(monitor="val_loss", **kwargs)
    got = _plateau_run(schedule, values)
    want = _torch_plateau_rates(values, **kwargs)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert min(got) < 0.1  # the scenario reduced at least once


def test_reduce_on_plateau_reaches_the_compiled_step(backend):
    opt = SGD(lr=0.2, schedule=ReduceOnPlateau(factor=0.5, patience=1))
    x, y, loss, W = _model()
    updates = opt.get_updates([W], [sg.grad(loss, W)])
    assert opt.effective_lr is opt.lr  # host-side: the update is still p - lr * g
    f = sg.function([x, y], opt.effective_lr, updates=updates, backend=backend)
    program = f.program
    assert float(f(X, Y)) == 0.2
    opt.on_epoch_end(0, {"val_loss": 1.0})
    opt.on_epoch_end(1, {"val_loss": 1.0})  # no improvement for 1 epoch: halve
    assert float(f(X, Y)) == 0.1 and f.program is program


def test_reduce_on_plateau_cooldown_and_patience_zero():
    # cooldown 2: after the reduction at epoch 1, epochs 2 and 3 are cooldown (no counting)
    rates = _plateau_run(ReduceOnPlateau(factor=0.5, patience=1, cooldown=2),
                         [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert rates == [0.1, 0.05, 0.05, 0.05, 0.025, 0.025]
    # patience 0: every epoch without improvement reduces
    rates = _plateau_run(ReduceOnPlateau(factor=0.5, patience=0), [1.0, 2.0, 0.5, 0.6])
    assert rates == [0.1, 0.05, 0.05, 0.025]


def test_reduce_on_plateau_missing_monitor_names_the_keys():
    opt = SGD(schedule=ReduceOnPlateau(monitor="val_accuracy", mode="max"))
    with pytest.raises(KeyError, match=r"'val_accuracy'.*\['loss', 'val_loss'\]"):
        opt.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})


# ----------------------------------------------------------------------------- config, get, errors


@pytest.mark.parametrize("schedule", [Step(0.25, 7), Exponential(0.9, 100, staircase=True),
                                      InverseTime(0.5), Cosine(100, 0.01, 10),
                                      ReduceOnPlateau(0.2, 4, "loss", 1e-5,
                                                                        "max", 0.01, 1)],
                         ids=lambda s: type(s).__name__)
def test_get_config_round_trips(schedule):
    config = schedule.get_config()
    rebuilt = schedules.get(json.loads(json.dumps(config)))
    assert type(rebuilt) is type(schedule) and rebuilt.get_config() == config


def test_get_by_name_and_errors():
    assert isinstance(schedules.get("step"), Step)
    assert isinstance(schedules.get("reduce_on_plateau"), ReduceOnPlateau)
    assert isinstance(schedules.get({"type": "InverseTime", "rate": 1.0}), InverseTime)
    s = Step()
    assert schedules.get(s) is s
    assert isinstance(schedules.get({"type": "cosine", "steps": 10}), Cosine)
    with pytest.raises(ValueError, match="unknown schedule 'linear'; valid: .*'Cosine'.*'Step'"):
        schedules.get("linear")
    with pytest.raises(ValueError, match=r"Exponential needs argument\(s\) \['rate', 'steps'\]"):
        schedules.get("exponential")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['gamma'\]"):
        schedules.get({"type": "Step", "gamma": 0.5})
    with pytest.raises(ValueError, match="no 'type' key"):
        schedules.get({"drop": 0.5})
    with pytest.raises(TypeError, match="a name, a config dict or a Schedule"):
        schedules.get(3)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="Step: every must be an integer >= 1"):
        Step(every=0)
    with pytest.raises(ValueError, match="Step: every must be an integer, got 2.5"):
        Step(every=2.5)
    with pytest.raises(ValueError, match="Exponential: rate must be a finite number > 0"):
        Exponential(rate=-1, steps=10)
    with pytest.raises(ValueError, match="factor must be < 1"):
        ReduceOnPlateau(factor=2.0)
    with pytest.raises(ValueError, match="Cosine: alpha must be a finite number >= 0.0, <= 1.0"):
        Cosine(steps=10, alpha=1.5)
    with pytest.raises(ValueError, match="Cosine: warmup must be an integer >= 0"):
        Cosine(steps=10, warmup=-1)
    with pytest.raises(ValueError, match="Cosine: steps must be an integer >= 1"):
        Cosine(steps=0)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        ReduceOnPlateau(mode="avg")
