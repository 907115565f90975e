"""frontends.config: the one lookup and the argument checks every component uses."""

import math
from functools import partial

import numpy as np
import pytest

from frontends.config import Configurable, build, integer, number, resolve


class Widget(Configurable):
    kind = "widget"

    def __init__(self, size: int, colour: str = "red"):
        self.size, self.colour = size, colour

    def get_config(self):
        return {"type": "Widget", "size": self.size, "colour": self.colour}


REGISTRY = {"Widget": Widget, "big": partial(Widget, size=10)}


def test_resolve_names_configs_instances_and_presets():
    w = Widget(3)
    assert resolve(w, REGISTRY, Widget) is w
    assert resolve({"type": "Widget", "size": 2}, REGISTRY, Widget).size == 2
    assert resolve("big", REGISTRY, Widget).size == 10
    assert resolve("BIG", REGISTRY, Widget, normalize=str.lower).size == 10
    assert repr(resolve({"type": "Widget", "size": 2, "colour": "blue"}, REGISTRY, Widget)) \
        == "Widget(size=2, colour='blue')"


@pytest.mark.parametrize("identifier, error, message", [
    ("small", ValueError, r"unknown widget 'small'; valid: \['Widget', 'big'\]"),
    ({"size": 1}, ValueError, "widget config .* has no 'type' key"),
    ({"type": "Widget", "sise": 1}, ValueError,
     r"widget Widget: unknown argument\(s\) \['sise'\]"),
    ({"type": "Widget"}, ValueError, r"widget Widget needs argument\(s\) \['size'\]"),
    (3.5, TypeError, "not a widget"),
    (Widget, TypeError, r"not a widget: the class Widget; pass an instance: Widget\(\.\.\.\)"),
])
def test_resolve_errors(identifier, error, message):
    with pytest.raises(error, match=message):
        resolve(identifier, REGISTRY, Widget)


def test_resolve_suggests_a_near_miss_as_the_registry_spells_it():
    with pytest.raises(ValueError, match=r"unknown widget 'widgit' \(did you mean 'Widget'\?\)"):
        resolve("widgit", REGISTRY, Widget, normalize=str.lower)
    with pytest.raises(ValueError, match=r"unknown widget 'bigg' \(did you mean 'big'\?\)"):
        resolve({"type": "bigg"}, REGISTRY, Widget)


def test_build_passes_anything_to_a_factory_taking_kwargs():
    assert build(lambda **kw: kw, {"a": 1, "b": 2}, "anything") == {"a": 1, "b": 2}


@pytest.mark.parametrize("value, kwargs, ok", [
    (0.0, {}, True), (-1e-9, {}, False), (0.0, {"lo_open": True}, False),
    (1.0, {"hi": 1.0}, True), (1.0, {"hi": 1.0, "hi_open": True}, False),
    (-5.0, {"lo": None}, True), (math.inf, {"lo": None}, False), (math.nan, {}, False),
    (np.float32(0.5), {}, True), (3, {}, True),
])
def test_number_bounds(value, kwargs, ok):
    if ok:
        assert number("Thing", "x", value, **kwargs) == float(value)
    else:
        with pytest.raises(ValueError, match="Thing: x must be a finite number"):
            number("Thing", "x", value, **kwargs)


def test_number_and_integer_types():
    with pytest.raises(TypeError, match="Thing: x must be a number, got '0.1'"):
        number("Thing", "x", "0.1")
    with pytest.raises(TypeError, match="must be a number"):
        number("Thing", "x", True)
    assert integer("Thing", "n", 10.0) == 10 and integer("Thing", "n", np.int64(3)) == 3
    assert integer("Thing", "n", 0, lo=0) == 0
    for bad in (2.5, True, 0):
        with pytest.raises(ValueError, match="Thing: n must be an integer"):
            integer("Thing", "n", bad)
    with pytest.raises(TypeError, match="Thing: n must be an integer"):
        integer("Thing", "n", "3")


def test_suggest_names_a_near_miss_only():
    from frontends.config import suggest
    assert suggest("val_los", ["loss", "val_loss", "time"]) == " (did you mean 'val_loss'?)"
    assert suggest("zzz", ["loss", "val_loss"]) == ""
