"""Weight penalties added to the training loss: L2, L1 and their sum (elastic net).

``Model.compile(regularizer=...)`` calls the regularizer on the parameters it
chooses to penalise (kernels; not biases or batch-norm parameters) and adds
the scalar to the loss before ``sg.grad``, so the penalty's gradient reaches
every optimizer the same way.

Keras' convention, not PyTorch's: ``L2(l)`` is ``l * sum(W^2)``, whose
gradient is ``2 l W`` — SGD with ``L2(l)`` is SGD with ``weight_decay=2*l`` in
``torch.optim.SGD`` (for Adam-like optimizers the penalty goes through the
adaptive scaling, i.e. coupled "L2", not decoupled AdamW decay).

>>> penalty = regularizers.get({"type": "L2", "l": 1e-4})([W1, W2])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

import symgraph as sg
from frontends.config import ConfigValue, number, resolve

__all__ = ["L1", "L1L2", "L2", "ElasticNet", "Regularizer", "get"]


class Regularizer(ConfigValue):
    """``regularizer(params)`` is a scalar penalty, summed over the given parameters.

    The result has the parameters' (common) float dtype, so adding it to a
    float32 loss keeps the loss float32. An empty list gives a constant 0 of
    ``dtype`` (default float32: adding it never widens a loss's dtype).
    """

    kind = "regularizer"

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        name = type(self).__name__
        self.l1 = number(name, "l1", l1)
        self.l2 = number(name, "l2", l2)

    def __call__(self, params: Sequence[sg.Variable], dtype=None) -> sg.Variable:
        """``l1 * sum |W| + l2 * sum W^2`` over every W in ``params`` (zero terms skipped)."""
        params = _check_params(type(self).__name__, params)
        if not params:
            return sg.constant(0.0, dtype=dtype or "float32")
        result_dtype = np.result_type(*(p.dtype for p in params))
        total = None
        for p in params:
            p = sg.cast(p, result_dtype)
            for coefficient, penalty in ((self.l1, sg.abs), (self.l2, sg.square)):
                if coefficient:
                    term = coefficient * sg.sum(penalty(p))
                    total = term if total is None else total + term
        if total is None:  # both coefficients zero: no graph to differentiate, just 0
            total = sg.constant(0.0, dtype=result_dtype)
        return sg.cast(total, dtype) if dtype is not None else total

    def get_config(self) -> dict:
        """``{"type": class name, coefficients}``; ``get(config)`` rebuilds the regularizer."""
        return {"type": type(self).__name__, "l1": self.l1, "l2": self.l2}


def _check_params(who: str, params) -> list[sg.Variable]:
    if isinstance(params, sg.Variable):
        raise TypeError(f"{who}: pass a list of parameters, not a single Variable ({params!r})")
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, sg.Variable):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, not a symgraph "
                            "Variable (sg.shared)")
        if np.dtype(p.dtype).kind != "f":
            raise TypeError(f"{who}: parameter {i} ({p.name or 'unnamed'}) is "
                            f"{p.dtype.name}; only float parameters can be penalised")
    return params


class L2(Regularizer):
    """``l * sum(W^2)``: gradient ``2 l W`` (weight decay with coefficient ``2 l``)."""

    def __init__(self, l: float = 0.01):  # noqa: E741 (the API's argument name)
        super().__init__(l2=number("L2", "l", l))  # errors name the argument passed

    @property
    def l(self) -> float:  # noqa: E743
        return self.l2

    def get_config(self) -> dict:
        return {"type": "L2", "l": self.l2}


class L1(Regularizer):
    """``l * sum(|W|)``: gradient ``l sign(W)`` (0 at W = 0), drives weights to exactly 0."""

    def __init__(self, l: float = 0.01):  # noqa: E741
        super().__init__(l1=number("L1", "l", l))

    @property
    def l(self) -> float:  # noqa: E743
        return self.l1

    def get_config(self) -> dict:
        return {"type": "L1", "l": self.l1}


class ElasticNet(Regularizer):
    """``l1 * sum(|W|) + l2 * sum(W^2)`` (Keras' ``L1L2``; ``L1L2`` is an alias)."""

    def __init__(self, l1: float = 0.01, l2: float = 0.01):
        super().__init__(l1=l1, l2=l2)


L1L2 = ElasticNet

_REGISTRY: dict[str, Callable[..., Regularizer]] = {
    "L2": L2, "l2": L2,
    "L1": L1, "l1": L1,
    "ElasticNet": ElasticNet, "elastic_net": ElasticNet, "L1L2": ElasticNet, "l1_l2": ElasticNet,
}


def get(identifier: str | Mapping | Regularizer) -> Regularizer:
    """The regularizer named by ``identifier``: ``"l2"``, ``{"type": "L2", "l": 1e-4}`` or one.

    A bare name gets the default coefficient (0.01, as in Keras). Unknown
    names and arguments raise ``ValueError`` listing the valid ones.
    """
    return resolve(identifier, _REGISTRY, Regularizer)
