"""Weight initialisers: how a layer's parameters get their first values.

Each initialiser maps ``(shape, fan_in, fan_out, rng, dtype)`` to an array.
The ``rng`` is a ``numpy.random.Generator`` handed down by the model, one
stream per layer derived from the model seed and the layer's position, so a model is
reproducible bit for bit and appending a layer does not change the draws of the layers
before it (inserting one moves the streams of those after it).

Names follow Keras: ``glorot_uniform`` (Dense's default), ``glorot_normal``,
``he_normal``, ``he_uniform``, ``normal(std)``, ``uniform(a)``, ``orthogonal(gain)``,
``zeros``, ``ones``, ``constant(c)``; a plain number means ``constant`` (``bias_init=0.1``
for ReLU biases).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from frontends.config import Configurable, resolve


class Initializer(Configurable):
    """Base class: subclasses implement ``sample`` and list their arguments in ``args``."""

    kind = "initialiser"
    name = "initializer"
    args: tuple[str, ...] = ()

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int,
                 rng: np.random.Generator, dtype) -> np.ndarray:
        # draw in float64 and round once: the same numbers for float32 and float64 models
        return np.asarray(self.sample(tuple(shape), max(fan_in, 1), max(fan_out, 1), rng),
                          dtype=np.float64).astype(dtype)

    def sample(self, shape, fan_in, fan_out, rng) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"type": self.name, **{a: getattr(self, a) for a in self.args}}


class GlorotUniform(Initializer):
    """``U[-b, b]``, ``b = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio, 2010)."""

    name = "glorot_uniform"

    def sample(self, shape, fan_in, fan_out, rng):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, shape)


class GlorotNormal(Initializer):
    """Normal with ``std = sqrt(2 / (fan_in + fan_out))``, truncated at two std as Keras does."""

    name = "glorot_normal"

    def sample(self, shape, fan_in, fan_out, rng):
        return _truncated_normal(rng, math.sqrt(2.0 / (fan_in + fan_out)), shape)


class HeNormal(Initializer):
    """Normal with ``std = sqrt(2 / fan_in)``, truncated at two std (He et al., 2015; for ReLU)."""

    name = "he_normal"

    def sample(self, shape, fan_in, fan_out, rng):
        return _truncated_normal(rng, math.sqrt(2.0 / fan_in), shape)


class HeUniform(Initializer):
    """``U[-b, b]``, ``b = sqrt(6 / fan_in)``."""

    name = "he_uniform"

    def sample(self, shape, fan_in, fan_out, rng):
        bound = math.sqrt(6.0 / fan_in)
        return rng.uniform(-bound, bound, shape)


class Normal(Initializer):
    """``N(0, std^2)``."""

    name = "normal"
    args = ("std",)

    def __init__(self, std: float = 0.05):
        if not std > 0:
            raise ValueError(f"normal: std must be positive, got {std}")
        self.std = float(std)

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.normal(0.0, self.std, shape)


class Uniform(Initializer):
    """``U[-a, a]``."""

    name = "uniform"
    args = ("a",)

    def __init__(self, a: float = 0.05):
        if not a > 0:
            raise ValueError(f"uniform: a must be positive, got {a}")
        self.a = float(a)

    def sample(self, shape, fan_in, fan_out, rng):
        return rng.uniform(-self.a, self.a, shape)


class Constant(Initializer):
    """Every entry ``value`` (``zeros`` and ``ones`` are the common cases)."""

    name = "constant"
    args = ("value",)

    def __init__(self, value: float = 0.0):
        self.value = _finite("constant", "value", value)

    def sample(self, shape, fan_in, fan_out, rng):
        return np.full(shape, self.value)


class Zeros(Constant):
    name = "zeros"
    args = ()

    def __init__(self):
        super().__init__(0.0)


class Ones(Constant):
    name = "ones"
    args = ()

    def __init__(self):
        super().__init__(1.0)


class Orthogonal(Initializer):
    """A random orthogonal matrix times ``gain`` (Saxe et al. 2014; Keras's ``orthogonal``,
    recurrent layers' default): the QR factor of a normal matrix, signs fixed by R's
    diagonal so it is uniform over orthogonal matrices; a wide (rows < columns) shape gets
    orthonormal rows, a tall one orthonormal columns."""

    name = "orthogonal"
    args = ("gain",)

    def __init__(self, gain: float = 1.0):
        self.gain = _finite("orthogonal", "gain", gain)

    def sample(self, shape, fan_in, fan_out, rng):
        if len(shape) < 2:
            raise ValueError(f"orthogonal: needs a matrix (2 or more dims), got shape {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        q, r = np.linalg.qr(rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols))))
        q *= np.sign(np.diag(r))
        return self.gain * (q.T if rows < cols else q).reshape(shape)


def _finite(owner: str, name: str, value) -> float:
    """``value`` as a float, if it is a finite real number (a bool is a mistake)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


class Overwritten(Initializer):
    """``base``'s draw with ``where`` (an index: a row, a slice) set to ``value``: LSTM's
    forget-gate bias of 1, an embedding's zero padding row. Built by layers, not named in
    specs (a spec names the base)."""

    name = "overwritten"

    def __init__(self, base: Initializer, where, value: float):
        self.base, self.where, self.value = base, where, float(value)

    def sample(self, shape, fan_in, fan_out, rng):
        value = np.array(self.base.sample(shape, fan_in, fan_out, rng), dtype=np.float64)
        value[self.where] = self.value
        return value


def _truncated_normal(rng: np.random.Generator, std: float, shape) -> np.ndarray:
    """Normal draws redrawn until within two std; scaled so the std is ``std`` (as Keras)."""
    scale = std / 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
    out = rng.normal(0.0, 1.0, shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * scale


INITIALIZERS: dict[str, type[Initializer]] = {
    cls.name: cls for cls in (GlorotUniform, GlorotNormal, HeNormal, HeUniform, Normal, Uniform,
                              Constant, Zeros, Ones, Orthogonal)
}


def get(identifier) -> Initializer:
    """An initialiser from a name (``"he_normal"``), a config dict (``{"type": "normal",
    "std": 0.01}``), a number (a constant) or an ``Initializer``.

    >>> get("glorot_uniform"); get(0.1); get({"type": "uniform", "a": 0.1})
    """
    # numpy scalars too (np.float32(0.1)); a bool is a mistake, not a constant
    if isinstance(identifier, numbers.Real) and not isinstance(identifier, (bool, np.bool_)):
        return Constant(identifier)
    return resolve(identifier, INITIALIZERS, Initializer,
                   accepts="a name such as 'glorot_uniform', a number, a config dict or "
                           "an Initializer")


def checked(owner: str, name: str, identifier):
    """``identifier`` unchanged (a model file saves it as given) once :func:`get` accepts it,
    else :func:`get`'s error naming the layer class and the argument: a misspelt ``init``
    fails where the layer is made, not later when a model builds it."""
    try:
        get(identifier)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{owner}: {name}: {err}") from None
    return identifier
