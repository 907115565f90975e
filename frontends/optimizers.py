"""Optimizers as graph updates: ``(params, grads) -> {shared_var: new_value_expr}``.

An optimizer does not step anything itself. ``get_updates`` builds the update
expressions of the parameters and of the optimizer's own state (velocities,
accumulators, the step counter), all shared variables, so that forward,
backward and update compile into ONE native function::

    opt = Adam(lr=1e-3)
    f = sg.function([x, y], loss, updates=opt.get_updates(params, sg.grad(loss, params)))

The base learning rate is a 0-d shared variable in the parameters' dtype
(``opt.lr``): setting ``opt.learning_rate`` changes it for the next call of the
already compiled function. In-graph schedules (``frontends.schedules``) turn it
into an effective rate from the ``iterations`` counter; ``clip_norm`` rescales
the gradients by their global norm inside the graph.

Update rules (background.md section 3; ``g`` the gradient, ``t`` the 1-based step):

* SGD: ``p - lr * g`` -- exactly this expression, so the LLVM backend can fold it
  into the weight gradient's gemm (``codegen.fusion._sgd_fold``);
* momentum: ``v = mu v - lr g; p += v``; Nesterov (variable-changed form):
  ``v' = mu v - lr g; p += -mu v + (1 + mu) v'``; SGD's ``weight_decay`` adds
  ``wd p`` to ``g`` first (coupled L2, as torch.optim.SGD);
* Adagrad: ``c += g^2; p -= lr g / (sqrt(c) + eps)``;
* RMSProp: ``c = d c + (1 - d) g^2; p -= lr g / (sqrt(c) + eps)``; centered (Graves
  2013): ``a = d a + (1 - d) g`` and ``sqrt(c - a^2)`` in the denominator; with momentum
  ``b = mu b + g / (sqrt(.) + eps); p -= lr b`` (as torch.optim.RMSprop);
* Adadelta (Zeiler 2012): ``a = r a + (1 - r) g^2;
  u = sqrt(s + eps) / sqrt(a + eps) g; s = r s + (1 - r) u^2; p -= lr u``;
* Adam: ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  p -= lr m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
  ``v_hat = v / (1 - b2^t)``, written as ``(lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)``
  so the bias corrections are 0-d values computed once per step; AMSGrad (Reddi et al.
  2018, ``amsgrad=True``) divides by the running maximum of ``v`` instead;
* AdamW (Loshchilov and Hutter 2019, decoupled weight decay): Adam applied to
  ``p (1 - lr wd)``, the decay scaled by the same (scheduled) ``lr`` as in
  torch.optim.AdamW and Keras; parameters named in ``exclude`` (by their short
  name, ``"b"`` for every layer's bias, or their full one, ``"dense_1/W"``) are
  not decayed. Unlike ``L2``, the decay does not pass through Adam's
  per-parameter scaling, so every weight shrinks at the same rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

import symgraph as sg
from frontends import schedules as schedules_module
from frontends.config import Configurable, flag, number, resolve
from frontends.schedules import Schedule
from symgraph.shapes import dims_equal

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSProp", "Adadelta", "Adam", "AdamW",
           "clip_by_global_norm", "get"]

#: added to the global norm before dividing (torch.nn.utils.clip_grad_norm_ uses the same)
CLIP_TINY = 1e-6


def clip_by_global_norm(grads: Sequence[sg.Variable], clip_norm: float) -> list[sg.Variable]:
    """``g * min(1, clip_norm / (||grads||_global + 1e-6))`` for every ``g``, in the graph.

    The global norm is the 2-norm of all gradients concatenated (as
    ``torch.nn.utils.clip_grad_norm_``); the scale is one 0-d value, so the
    direction of the whole update is kept.
    """
    grads = list(grads)
    if not grads:
        return []
    dtype = np.result_type(*(g.dtype for g in grads))
    total = None
    for g in grads:
        part = sg.cast(sg.sum(g * g), dtype)
        total = part if total is None else total + part
    scale = sg.minimum(1.0, clip_norm / (sg.sqrt(total) + CLIP_TINY))
    return [g * sg.cast(scale, g.dtype) for g in grads]


def _param_labels(params: list[sg.SharedVariable]) -> list[str]:
    """Names for the state variables: the parameter's name, made unique by its position."""
    names = [p.name or f"param{i}" for i, p in enumerate(params)]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [n if counts[n] == 1 else f"{n}#{i}" for i, n in enumerate(names)]


class Optimizer(Configurable):
    """Base class: learning rate, schedule, clipping, step counter and state bookkeeping.

    Subclasses set ``slot_names`` (per-parameter state, in ``variables()`` order) and
    implement ``_update_rule(param, grad, lr, slots)`` returning the updates of one
    parameter and its slots. Compared by identity: an optimizer owns its state.
    """

    kind = "optimizer"
    slot_names: tuple[str, ...] = ()

    def __init__(self, lr: float, *, schedule: Schedule | str | dict | None = None,
                 clip_norm: float | None = None, name: str | None = None):
        kind = type(self).__name__
        self._lr_value = number(kind, "lr", lr)
        self.schedule: Schedule | None = (None if schedule is None
                                          else schedules_module.get(schedule))
        self.clip_norm = None if clip_norm is None else number(kind, "clip_norm", clip_norm,
                                                                 lo_open=True)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"{kind}: name must be a non-empty string, got {name!r}")
        self.name = name or kind
        #: number of steps taken (int64, incremented by the update)
        self.iterations = sg.shared(np.int64(0), name=f"{self.name}/iterations")
        #: the effective learning rate of the current step (0-d Variable), after get_updates
        self.effective_lr: sg.Variable | None = None
        self._lr: sg.SharedVariable | None = None
        self._slots: list[sg.SharedVariable] = []
        self._step_counts: dict[np.dtype, sg.Variable] = {}

    # -- learning rate
    @property
    def lr(self) -> sg.SharedVariable:
        """The 0-d shared variable holding the base learning rate (created by get_updates)."""
        if self._lr is None:
            raise AttributeError(f"{self.name}.lr (the learning-rate shared variable) is created "
                                 "by get_updates, in the parameters' dtype; before that use "
                                 "learning_rate")
        return self._lr

    @property
    def learning_rate(self) -> float:
        """The current base learning rate (schedules scale it inside the graph)."""
        if self._lr is None:
            return self._lr_value
        current = self._lr.get_value()
        if current == np.asarray(self._lr_value, dtype=self._lr.dtype):
            return self._lr_value  # 1e-3, not float32's 0.0010000000474974513, in configs
        return float(current)  # set through opt.lr.set_value

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        value = number(self.name, "learning_rate", value)
        self._lr_value = value
        if self._lr is not None:  # a shared variable: compiled functions see it next call
            self._lr.set_value(np.asarray(value, dtype=self._lr.dtype))

    # -- building the updates
    def get_updates(self, params: Sequence[sg.SharedVariable],
                    grads: Sequence[sg.Variable]) -> dict[sg.SharedVariable, sg.Variable]:
        """Updates of the parameters, the optimizer state and ``iterations``, for
        ``sg.function(..., updates=...)``. Call once: the state belongs to these params."""
        if self._lr is not None:
            raise RuntimeError(f"{self.name}: get_updates was already called; an optimizer's "
                               "state belongs to one set of parameters (create another one)")
        params, grads = list(params), list(grads)
        self._check(params, grads)
        dtype = np.result_type(*(p.dtype for p in params))
        self._lr = sg.shared(np.asarray(self._lr_value, dtype=dtype), name=f"{self.name}/lr")
        lr = self._lr
        if self.schedule is not None:
            lr = self.schedule(self._lr, self.iterations)
            if not isinstance(lr, sg.Variable) or lr.ndim != 0 or lr.dtype != dtype:
                raise TypeError(f"{self.name}: schedule {self.schedule!r} must return a 0-d "
                                f"{dtype.name} Variable, got {lr!r}")
        self.effective_lr = lr
        if self.clip_norm is not None:
            grads = clip_by_global_norm(grads, self.clip_norm)
        lr_of = {dtype: lr}
        updates: dict[sg.SharedVariable, sg.Variable] = {}
        for p, g, label in zip(params, grads, _param_labels(params)):
            if p.dtype not in lr_of:
                lr_of[p.dtype] = sg.cast(lr, p.dtype)
            slots = [self._slot(p, label, s) for s in self.slot_names]
            updates.update(self._update_rule(p, g, lr_of[p.dtype], slots))
        updates[self.iterations] = self._next_iteration
        return updates

    def _check(self, params: list, grads: list) -> None:
        if not params:
            raise ValueError(f"{self.name}.get_updates: no parameters to optimize")
        if len(params) != len(grads):
            raise ValueError(f"{self.name}.get_updates: {len(params)} parameters but "
                             f"{len(grads)} gradients")
        seen = set()
        for i, (p, g) in enumerate(zip(params, grads)):
            if not isinstance(p, sg.SharedVariable):
                raise TypeError(f"{self.name}.get_updates: parameter {i} ({p!r}) is not a "
                                "shared variable")
            if p in seen:
                raise ValueError(f"{self.name}.get_updates: parameter {p.name!r} is listed twice")
            seen.add(p)
            if p.dtype.kind != "f":
                raise TypeError(f"{self.name}.get_updates: parameter {p.name!r} is "
                                f"{p.dtype.name}; only float parameters can be trained")
            if not isinstance(g, sg.Variable):
                raise TypeError(f"{self.name}.get_updates: the gradient of {p.name!r} is "
                                f"{type(g).__name__}, not a Variable")
            if g.dtype != p.dtype or g.ndim != p.ndim or any(
                    dims_equal(a, b) is False for a, b in zip(g.shape, p.shape)):
                raise TypeError(f"{self.name}.get_updates: the gradient of {p.name!r} is "
                                f"{g.type}, the parameter {p.type}")

    @property
    def _next_iteration(self) -> sg.Variable:
        if "next" not in self._step_counts:
            self._step_counts["next"] = self.iterations + 1
        return self._step_counts["next"]

    def _step_count(self, dtype) -> sg.Variable:
        """The 1-based number of the step being taken, as a 0-d ``dtype`` value."""
        dtype = np.dtype(dtype)
        if dtype not in self._step_counts:
            self._step_counts[dtype] = sg.cast(self._next_iteration, dtype)
        return self._step_counts[dtype]

    def _slot(self, param: sg.SharedVariable, label: str, slot: str) -> sg.SharedVariable:
        zeros = np.zeros(param.get_value().shape, dtype=param.dtype)
        var = sg.shared(zeros, name=f"{self.name}/{label}/{slot}", shape=param.type.shape)
        self._slots.append(var)
        return var

    def _update_rule(self, param, grad, lr, slots) -> dict:
        raise NotImplementedError

    # -- state, hooks, config
    def variables(self) -> list[sg.SharedVariable]:
        """All optimizer state: ``lr`` (once built), ``iterations``, then each parameter's
        slots in parameter order (names ``"<opt name>/<param name>/<slot>"``)."""
        head = [] if self._lr is None else [self._lr]
        return head + [self.iterations] + list(self._slots)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Host-side hook for the training loop (``ReduceOnPlateau`` acts here)."""
        if self.schedule is not None:
            self.schedule.on_epoch_end(self, epoch, logs)

    def _hyperparameters(self) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        """JSON-able config; ``get(config)`` rebuilds an equal optimizer. ``lr`` is the
        current base learning rate (after any ReduceOnPlateau reductions)."""
        config = {"type": type(self).__name__, "lr": self.learning_rate}
        config.update(self._hyperparameters())
        config["schedule"] = None if self.schedule is None else self.schedule.get_config()
        config["clip_norm"] = self.clip_norm
        if self.name != type(self).__name__:
            config["name"] = self.name
        return config


class SGD(Optimizer):
    """Minibatch SGD, with optional (Nesterov) momentum and weight decay.

    >>> SGD(lr=0.1); SGD(lr=0.1, momentum=0.9); SGD(lr=0.1, momentum=0.9, nesterov=True)
    >>> SGD(lr=0.1, momentum=0.9, weight_decay=5e-4)

    Momentum keeps ``v = mu v - lr g`` (lr inside the velocity, as background.md and
    Sutskever et al.); torch keeps ``b = mu b + g`` and steps ``-lr b``: the same
    iterates while the learning rate is constant, different ones under a schedule.
    ``weight_decay`` adds ``wd p`` to every gradient before the step, as torch.optim.SGD
    does (the gradient of an ``L2(wd / 2)`` penalty, biases included: use the
    regularizers to decay only some parameters).
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, *, schedule=None, clip_norm=None, name=None):
        super().__init__(lr, schedule=schedule, clip_norm=clip_norm, name=name)
        self.momentum = number("SGD", "momentum", momentum, hi=1.0, hi_open=True)
        self.nesterov = flag("SGD", "nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")
        self.weight_decay = number("SGD", "weight_decay", weight_decay)
        self.slot_names = ("velocity",) if self.momentum else ()

    def _update_rule(self, param, grad, lr, slots):
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if not self.momentum:
            return {param: param - lr * grad}  # without decay, the gemm-foldable form
        (velocity,) = slots
        mu = self.momentum
        new_velocity = mu * velocity - lr * grad
        if self.nesterov:
            new_param = param - mu * velocity + (1.0 + mu) * new_velocity
        else:
            new_param = param + new_velocity
        return {velocity: new_velocity, param: new_param}

    def _hyperparameters(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011): ``c += g^2; p -= lr g / (sqrt(c) + eps)``, eps outside
    the square root (as torch.optim.Adagrad with ``initial_accumulator_value=0``)."""

    slot_names = ("accumulator",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-8, *, schedule=None, clip_norm=None,
                 name=None):
        super().__init__(lr, schedule=schedule, clip_norm=clip_norm, name=name)
        self.eps = number("Adagrad", "eps", eps)

    def _update_rule(self, param, grad, lr, slots):
        (acc,) = slots
        new_acc = acc + grad * grad
        return {acc: new_acc, param: param - lr * grad / (sg.sqrt(new_acc) + self.eps)}

    def _hyperparameters(self):
        return {"eps": self.eps}


class RMSProp(Optimizer):
    """RMSProp (Tieleman and Hinton 2012): ``c = d c + (1 - d) g^2;
    p -= lr g / (sqrt(c) + eps)``, eps outside the root (as torch.optim.RMSprop, alpha=d).

    ``centered=True`` (Graves 2013) also averages the gradient, ``a = d a + (1 - d) g``,
    and divides by ``sqrt(c - a^2) + eps``: an estimate of the gradient's standard
    deviation rather than its root mean square.  ``momentum=mu`` accumulates the scaled
    steps, ``b = mu b + g / (sqrt(.) + eps); p -= lr b``.  Both as torch.optim.RMSprop.

    >>> RMSProp(lr=1e-3, centered=True, momentum=0.9)
    """

    def __init__(self, lr: float = 0.001, decay: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, centered: bool = False, *, schedule=None,
                 clip_norm=None, name=None):
        super().__init__(lr, schedule=schedule, clip_norm=clip_norm, name=name)
        self.decay = number("RMSProp", "decay", decay, hi=1.0, hi_open=True)
        self.eps = number("RMSProp", "eps", eps)
        self.momentum = number("RMSProp", "momentum", momentum, hi=1.0, hi_open=True)
        self.centered = flag("RMSProp", "centered", centered)
        self.slot_names = (("mean_square",) + (("mean_grad",) if self.centered else ())
                           + (("momentum",) if self.momentum else ()))

    def _update_rule(self, param, grad, lr, slots):
        ms, d = slots[0], self.decay
        new_ms = d * ms + (1.0 - d) * (grad * grad)
        updates = {ms: new_ms}
        if self.centered:
            mg = slots[1]
            updates[mg] = new_mg = d * mg + (1.0 - d) * grad
            scale = sg.sqrt(new_ms - new_mg * new_mg) + self.eps
        else:
            scale = sg.sqrt(new_ms) + self.eps
        if self.momentum:
            buf = slots[-1]
            updates[buf] = new_buf = self.momentum * buf + grad / scale
            updates[param] = param - lr * new_buf
        else:
            updates[param] = param - lr * grad / scale
        return updates

    def _hyperparameters(self):
        return {"decay": self.decay, "eps": self.eps, "momentum": self.momentum,
                "centered": self.centered}


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012), eps inside both square roots (as torch.optim.Adadelta):
    ``a = r a + (1-r) g^2; u = sqrt(s + eps) / sqrt(a + eps) g; s = r s + (1-r) u^2;
    p -= lr u``. ``lr=1.0`` is the paper's method."""

    slot_names = ("mean_square_grad", "mean_square_delta")

    def __init__(self, lr: float = 1.0, rho: float = 0.95, eps: float = 1e-6, *,
                 schedule=None, clip_norm=None, name=None):
        super().__init__(lr, schedule=schedule, clip_norm=clip_norm, name=name)
        self.rho = number("Adadelta", "rho", rho, hi=1.0, hi_open=True)
        self.eps = number("Adadelta", "eps", eps)
        if self.eps == 0:
            raise ValueError("Adadelta: eps must be > 0 (the first step is sqrt(eps) / ...)")

    def _update_rule(self, param, grad, lr, slots):
        msg, msd = slots
        r, eps = self.rho, self.eps
        new_msg = r * msg + (1.0 - r) * (grad * grad)
        delta = sg.sqrt(msd + eps) / sg.sqrt(new_msg + eps) * grad
        new_msd = r * msd + (1.0 - r) * (delta * delta)
        return {msg: new_msg, msd: new_msd, param: param - lr * delta}

    def _hyperparameters(self):
        return {"rho": self.rho, "eps": self.eps}


class Adam(Optimizer):
    """Adam (Kingma and Ba 2015) with bias correction; eps is added to ``sqrt(v_hat)``
    (outside the root), as in the paper and torch.optim.Adam.

    ``amsgrad=True`` (Reddi et al. 2018) keeps the running maximum of ``v`` (a slot
    ``v_max``) and divides by it, so a parameter's step size never grows back after a
    burst of large gradients; the bias correction is applied to the maximum, as
    torch.optim.Adam does.
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, amsgrad: bool = False, *, schedule=None, clip_norm=None,
                 name=None):
        super().__init__(lr, schedule=schedule, clip_norm=clip_norm, name=name)
        kind = type(self).__name__
        self.beta1 = number(kind, "beta1", beta1, hi=1.0, hi_open=True)
        self.beta2 = number(kind, "beta2", beta2, hi=1.0, hi_open=True)
        self.eps = number(kind, "eps", eps)
        self.amsgrad = flag(kind, "amsgrad", amsgrad)
        self.slot_names = ("m", "v", "v_max") if self.amsgrad else ("m", "v")
        self._corrections: dict = {}

    def _bias_corrections(self, dtype) -> tuple[sg.Variable, sg.Variable]:
        """``(1 - b1^t, sqrt(1 - b2^t))``: 0-d, once per dtype and step, computed in float64
        and cast (as torch does in Python floats): in float32, 0.999 ** t rounds 0.999 to
        0.99900001, and 1 - b2^t at t = 1 came out 0.00099999 -- every step of the first
        thousand ~6.5e-6 short."""
        if dtype not in self._corrections:
            t = self._step_count("float64")
            bc1, sqrt_bc2 = 1.0 - self.beta1 ** t, sg.sqrt(1.0 - self.beta2 ** t)
            self._corrections[dtype] = (sg.cast(bc1, dtype), sg.cast(sqrt_bc2, dtype))
        return self._corrections[dtype]

    def _update_rule(self, param, grad, lr, slots):
        m, v = slots[:2]
        b1, b2 = self.beta1, self.beta2
        bc1, sqrt_bc2 = self._bias_corrections(param.dtype)
        new_m = b1 * m + (1.0 - b1) * grad
        new_v = b2 * v + (1.0 - b2) * (grad * grad)
        updates = {m: new_m, v: new_v}
        second = new_v
        if self.amsgrad:
            updates[slots[2]] = second = sg.maximum(slots[2], new_v)
        start = self._decayed(param, lr)
        updates[param] = start - (lr / bc1) * new_m / (sg.sqrt(second) / sqrt_bc2 + self.eps)
        return updates

    def _decayed(self, param: sg.SharedVariable, lr: sg.Variable) -> sg.Variable:
        """The value Adam's step starts from: the parameter itself (AdamW decays it)."""
        return param

    def _hyperparameters(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter 2019), as torch.optim.AdamW:
    each step starts from ``p * (1 - lr * weight_decay)``. ``exclude``: parameters not to
    decay, each named by its short name (the part after the last ``/``: ``"b"`` is every
    layer's bias, ``"gamma"``/``"beta"`` the normalisation layers' scale and shift) or its
    full name (``"dense_1/W"``); a name that matches no parameter is an error, so a typo
    cannot silently decay everything.

    >>> AdamW(lr=1e-3, weight_decay=0.05, exclude=["b", "gamma", "beta"])
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False, *,
                 exclude: Sequence[str] = (), schedule=None, clip_norm=None, name=None):
        super().__init__(lr, beta1, beta2, eps, amsgrad, schedule=schedule,
                         clip_norm=clip_norm, name=name)
        self.weight_decay = number("AdamW", "weight_decay", weight_decay)
        parts = exclude if isinstance(exclude, (list, tuple)) else None
        if parts is None or not all(isinstance(e, str) and e for e in parts):
            raise TypeError("AdamW: exclude must be a list of non-empty strings (parameter "
                            f"names, e.g. ['b']), got {exclude!r}")
        self.exclude = tuple(parts)

    def _excluded(self, param: sg.SharedVariable, entry: str) -> bool:
        name = param.name or ""
        return entry == name or entry == name.rsplit("/", 1)[-1]

    def get_updates(self, params, grads):
        params = list(params)
        unmatched = [e for e in self.exclude if not any(self._excluded(p, e) for p in params)]
        if unmatched:
            shown = sorted({(p.name or "").rsplit("/", 1)[-1] for p in params})
            raise ValueError(f"{self.name}: exclude names {unmatched}, which match no "
                             f"parameter; short names here: {shown} (or give full names "
                             "such as 'dense_1/W')")
        return super().get_updates(params, grads)

    def _decayed(self, param, lr):
        if self.weight_decay == 0 or any(self._excluded(param, e) for e in self.exclude):
            return param
        return param * (1.0 - lr * self.weight_decay)

    def _hyperparameters(self):
        return {**super()._hyperparameters(), "weight_decay": self.weight_decay,
                "exclude": list(self.exclude)}


#: lower-case name -> factory; "momentum"/"nesterov" are SGD with preset arguments
_OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "sgd": SGD,
    "momentum": partial(SGD, momentum=0.9),
    "nesterov": partial(SGD, momentum=0.9, nesterov=True),
    "adagrad": Adagrad,
    "rmsprop": RMSProp,
    "adadelta": Adadelta,
    "adam": Adam,
    "adamw": AdamW,
}


def get(identifier: str | Mapping | Optimizer) -> Optimizer:
    """An optimizer from a name (``"adam"``, ``"SGD"``, ``"momentum"``; case and ``_``
    ignored), a config dict (``{"type": "Adam", "lr": 1e-3}``, as ``get_config`` writes)
    or an instance (returned). Unknown names and arguments raise ``ValueError``.

    >>> get({"type": "SGD", "lr": 0.1, "momentum": 0.9})
    SGD(lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0)
    """
    return resolve(identifier, _OPTIMIZERS, Optimizer,
                   normalize=lambda name: name.replace("_", "").lower())
