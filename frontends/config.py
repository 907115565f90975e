"""Configurable components: one way to name, build, compare and print them.

Losses, metrics, regularizers, optimizers, schedules and initialisers are each
given as a name (``"adam"``), a config dict as ``get_config`` writes it and spec
files hold (``{"type": "Adam", "lr": 1e-3}``) or an object. Each module keeps
its registry of names and its public ``get``, a call to ``resolve`` here, so a
mistake in a config file is reported the same way everywhere, naming the valid
choices (all ``ValueError``; an identifier of the wrong kind is a ``TypeError``)::

    unknown optimizer 'adamax'; valid: ['adadelta', 'adagrad', ...]
    optimizer config {'lr': 0.1} has no 'type' key; valid types: [...]
    optimizer Adam: unknown argument(s) ['momentum']; valid: ['lr', 'beta1', ...]
    schedule Exponential needs argument(s) ['rate', 'steps']
"""

from __future__ import annotations

import difflib
import inspect
import math
import reprlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["ConfigValue", "Configurable", "build", "integer", "number", "resolve",
           "suggest"]

T = TypeVar("T")


class Configurable:
    """Mixin for a component described by ``get_config()``: its ``repr`` is the constructor
    call that rebuilds it (``Adam(lr=0.001, ...)``; ``None`` arguments, always defaults,
    left out). ``kind`` ("loss", "optimizer", ...) names the family in error messages."""

    kind: str = "component"

    def get_config(self) -> dict[str, Any]:
        """``{"type": <name get knows>, <constructor arguments>}``; ``get(config)``
        rebuilds an equal component."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if k != "type" and v is not None)
        return f"{type(self).__name__}({args})"


class ConfigValue(Configurable):
    """A stateless ``Configurable`` that *is* its config: equal to (and hashed like) any
    object of its class with the same config, so ``get("mse") == MeanSquaredError()``.
    Components with training state (optimizers, schedules) stay plain ``Configurable``."""

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash(_frozen(self.get_config()))


def _frozen(value):
    """A config value made hashable: lists (class weights) become tuples, dicts sorted
    item tuples."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def build(factory: Callable[..., T], kwargs: Mapping[str, Any], label: str) -> T:
    """``factory(**kwargs)``, but unknown or missing arguments are a ``ValueError`` naming
    them (configs come from files: a typo must say which key is wrong). Works for classes
    and ``functools.partial`` (bound arguments count as given); ``label`` starts the message.

    >>> build(Adam, {"lr": 0.1, "momentum": 0.9}, "optimizer Adam")
    ValueError: optimizer Adam: unknown argument(s) ['momentum']; valid: ['lr', 'beta1', ...]
    """
    params = inspect.signature(factory).parameters.values()
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        valid = [p.name for p in named]
        unknown = [k for k in kwargs if k not in valid]
        if unknown:
            raise ValueError(f"{label}: unknown argument(s) {unknown}"
                             f"{suggest(unknown[0], valid)}; valid: {valid}")
    missing = [p.name for p in named if p.default is p.empty and p.name not in kwargs]
    if missing:
        raise ValueError(f"{label} needs argument(s) {missing}")
    return factory(**kwargs)


#: other libraries' names of our arguments (Keras's, mostly), which no spelling is near
OTHER_NAMES = {"learning_rate": "lr", "beta_1": "beta1", "beta_2": "beta2", "epsilon": "eps",
               "rho": "decay"}


def suggest(key: str, valid: Iterable[str], spelled: Mapping[str, str] | None = None) -> str:
    """`` (did you mean 'units'?)`` for a near miss of one of ``valid``, or another
    library's name of one (``learning_rate``: ``lr``), else nothing; ``spelled`` maps a
    (normalised) valid key to the spelling to show.

    >>> suggest("val_los", ["loss", "val_loss"])
    " (did you mean 'val_loss'?)"
    """
    valid = list(valid)
    if OTHER_NAMES.get(key) in valid:
        return f" (did you mean {OTHER_NAMES[key]!r}? symgraph's name for {key!r})"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {(spelled or {}).get(close[0], close[0])!r}?)"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def resolve(identifier: Any, registry: Mapping[str, Callable[..., T]], base: type[T], *,
            normalize: Callable[[str], str] | None = None, accepts: str | None = None) -> T:
    """The ``base`` object ``identifier`` stands for: an instance (returned as is), a
    registry name (built with no arguments) or a config dict ``{"type": name, **kwargs}``.

    ``registry`` maps names to factories (classes, or ``functools.partial`` for a name
    with preset arguments); ``normalize`` (e.g. lower-casing) applies to the given name
    and the registry's before matching. ``base.kind`` names the family in messages,
    ``accepts`` the accepted forms in the ``TypeError`` for anything else.

    >>> resolve({"type": "hinge", "margin": 2.0}, {"hinge": Hinge}, Loss)
    Hinge(margin=2.0)
    """
    kind = getattr(base, "kind", base.__name__)
    if isinstance(identifier, base):
        return identifier
    valid = sorted(registry)
    if isinstance(identifier, str):
        name, kwargs = identifier, {}
    elif isinstance(identifier, Mapping):
        if "type" not in identifier:
            raise ValueError(f"{kind} config {dict(identifier)!r} has no 'type' key; "
                             f"valid types: {valid}")
        kwargs = dict(identifier)
        name = kwargs.pop("type")
    elif isinstance(identifier, type) and issubclass(identifier, base):
        raise TypeError(f"not {_article(kind)} {kind}: the class {identifier.__name__}; pass "
                        f"an instance: {identifier.__name__}(...)")
    else:
        accepts = accepts or (f"a name, a config dict or {_article(base.__name__)} "
                              f"{base.__name__}")
        raise TypeError(f"not {_article(kind)} {kind}: {reprlib.repr(identifier)} "
                        f"({type(identifier).__name__}); expected {accepts}")
    normalize = normalize or (lambda key: key)
    factory = ({normalize(key): value for key, value in registry.items()}
               .get(normalize(name)) if isinstance(name, str) else None)
    if factory is None:
        spelled = {normalize(key): key for key in registry}
        hint = suggest(normalize(name), spelled, spelled) if isinstance(name, str) else ""
        raise ValueError(f"unknown {kind} {name!r}{hint}; valid: {valid}")
    cls = getattr(factory, "func", factory)  # a partial's class
    return build(factory, kwargs, f"{kind} {getattr(cls, '__name__', name)}")


def number(owner: str, name: str, value, *, lo: float | None = 0.0, hi: float = math.inf,
           lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float within the bounds (``lo=None``: no lower bound), else an
    error naming the component and argument: a config's ``lr: "0.1"`` or ``eps: -1`` must
    fail where it is built, not as a NaN three epochs later.

    >>> number("Adam", "beta1", 0.9, hi=1.0, hi_open=True)
    0.9
    """
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    value = float(value)
    ok = math.isfinite(value)
    if lo is not None:
        ok = ok and (value > lo if lo_open else value >= lo)
    ok = ok and (value < hi if hi_open else value <= hi)
    if not ok:
        bounds = []
        if lo is not None:
            bounds.append(f"{'>' if lo_open else '>='} {float(lo)}")
        if hi != math.inf:
            bounds.append(f"{'<' if hi_open else '<='} {float(hi)}")
        shown = " " + ", ".join(bounds) if bounds else ""
        raise ValueError(f"{owner}: {name} must be a finite number{shown}, got {value!r}")
    return value


def flag(owner: str, name: str, value) -> bool:
    """``value`` if it is a bool, else an error naming the component and argument: a
    config's ``"false"`` or ``1`` is a mistake, not a truthy value (``bool("false")`` is
    True)."""
    import numpy as np
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def integer(owner: str, name: str, value, *, lo: int = 1) -> int:
    """``value`` as an int ``>= lo`` (an integral float such as ``10.0`` from a config is
    accepted; ``2.5`` or ``True`` is a ValueError, not silently an int), else an error
    naming the argument; a non-number is a TypeError."""
    import numbers
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")
    if isinstance(value, bool) or not (isinstance(value, numbers.Integral)
                                       or float(value).is_integer()):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    if int(value) < lo:
        raise ValueError(f"{owner}: {name} must be an integer >= {lo}, got {value!r}")
    return int(value)
