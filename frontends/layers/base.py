"""The ``Layer``: parameters plus a rule that adds nodes to a symgraph graph.

A layer is called on symgraph ``Variable``s and returns one, so a model is
any graph built by calling layers (skip connections, several inputs). Every
node a call creates records the layer's name as its ``scope``
(``sg.name_scope``), so printed graphs, pictures and errors read as the model
does. Parameters are shared variables named ``<layer>/<param>`` (``dense_1/W``).

A call builds the *training* graph. Layers whose behaviour differs at
inference (``Dropout``, ``BatchNorm``) set ``has_mode``; the model rebuilds
its inference graph by calling them again with ``training=False``
(``symgraph.clone_replace``). Running statistics and other state a training
step must change are returned by ``state_updates`` and become part of the
compiled training step.

Padding masks travel with the graph, as Keras's: a layer's output may carry
``sequence_mask``, a (batch, length) bool variable that is True at the positions holding
data (``Embedding(mask_zero=True)`` makes it from the ids). Each layer says what it does
with one on its input (``masking``, ``output_mask``): a layer acting on each position's
features alone passes it on; attention, pooling and recurrent layers read it
(``uses_mask``: ``call`` gets ``mask=``); any other layer refuses it, since mixing or
moving the positions would silently let the padding back in. A mask that reaches the
model's output weighs the loss and the metrics as Keras 3's does (``frontends.figures``):
the padded positions are left out of both, whatever their labels.
"""

from __future__ import annotations

import itertools
import zlib
from collections import defaultdict

import numpy as np

import symgraph as sg
from frontends import initializers
from frontends.config import flag
from symgraph.graph import Site, at_site
from symgraph.ops import elemwise as ew

_counters: defaultdict[str, itertools.count] = defaultdict(lambda: itertools.count(1))


def _snake(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        # a digit before a capital keeps them together: Conv2D -> conv2d, as Keras spells it
        if c.isupper() and i and not name[i - 1].isdigit() and (
                not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(c.lower())
    return "".join(out)


class Weight:
    """One parameter of a layer: its shared variable and how to (re)draw its value."""

    def __init__(self, var: sg.SharedVariable, init: initializers.Initializer, fan_in: int,
                 fan_out: int, trainable: bool, regularizable: bool):
        self.var = var
        self.init = init
        self.fan_in, self.fan_out = fan_in, fan_out
        self.trainable = trainable
        self.regularizable = regularizable

    def draw(self, rng: np.random.Generator) -> None:
        value = self.init(tuple(self.var.shape), self.fan_in, self.fan_out, rng,
                          self.var.dtype)
        self.var.set_value(value)


class Layer:
    """Base class. Subclasses implement ``build(input_var)`` (create weights with
    ``add_weight``) and ``call(x, training)`` (graph ops); ``config_args`` lists the
    constructor arguments that ``get_config`` saves."""

    has_mode = False          # output differs between training and inference
    name_prefix: str | None = None  # automatic names' stem, when not the class name in
    #                                 snake case (SiLU -> "silu", not "si_lu")
    config_args: tuple[str, ...] = ()

    def __init__(self, name: str | None = None):
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"a layer name is a non-empty string without '/', got {name!r}")
        self.name = name
        self._weights: list[Weight] = []
        self.built = False
        self.state_updates: dict[sg.SharedVariable, sg.Variable] = {}
        self.input_shape: tuple | None = None
        self.output_shape: tuple | None = None
        self.output: sg.Variable | None = None
        self.seeded = False  # weights drawn from a model's seed (Model.initialize)
        #: where the user described the layer, when not in Python (a spec file's line): its
        #: nodes record it instead of the Python line that built them
        self.site: Site | None = None
        #: what keys the layer's random streams (dropout masks): its name, or for a name
        #: numbered per process (a functional model's unnamed layer) its place in the graph
        self.mask_key: str | None = None
        self._trainable = True

    # -- naming
    @property
    def kind(self) -> str:
        return type(self).__name__

    def ensure_name(self, taken: set[str] | None = None) -> str:
        """Give the layer a name if it has none: ``dense_1``, ``dense_2``, ... (per model
        when ``taken`` is given, else per process)."""
        if self.name is None:
            prefix = self.name_prefix or _snake(self.kind)
            if taken is None:
                self.name = f"{prefix}_{next(_counters[prefix])}"
            else:
                k = 1
                while f"{prefix}_{k}" in taken:
                    k += 1
                self.name = f"{prefix}_{k}"
        return self.name

    # -- weights
    def add_weight(self, pname: str, shape: tuple[int, ...], init, dtype, *,
                   fan_in: int | None = None, fan_out: int | None = None,
                   trainable: bool = True, regularizable: bool = False) -> sg.SharedVariable:
        """A parameter ``<layer>/<pname>``, drawn now from a stream seeded by the layer's name
        (a model redraws every weight from its own seed)."""
        init = initializers.get(init)
        shape = tuple(int(d) for d in shape)
        fan_in = shape[0] if fan_in is None else fan_in
        fan_out = shape[-1] if fan_out is None else fan_out
        var = sg.shared(np.zeros(shape, dtype), name=f"{self.name}/{pname}")
        weight = Weight(var, init, fan_in, fan_out, trainable, regularizable)
        weight.draw(np.random.default_rng(zlib.crc32(var.name.encode())))
        self._weights.append(weight)
        return var

    @property
    def weights(self) -> list[sg.SharedVariable]:
        """All parameters in Keras order (e.g. kernel then bias; BN: gamma, beta, mean, var)."""
        return [w.var for w in self._weights]

    @property
    def trainable(self) -> bool:
        """False freezes the layer (Keras's ``layer.trainable = False``, for fine-tuning): the
        next ``compile`` leaves its weights out of the gradient, the updates and the
        regulariser, and a frozen layer that ``freezes_to_inference`` (BatchNorm) also runs on
        its running statistics in training and keeps them, as Keras's. Set it before
        ``compile`` (``fit`` refuses a model whose layers changed it since)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = flag(f"layer {self.name or self.kind}", "trainable", value)

    #: a frozen layer of this kind runs in inference mode in the training step too
    freezes_to_inference = False

    #: the axis of the output that holds its units (features, NCHW channels); -1: the last,
    #: for a layer applied at every position of (batch, ..., features); None: its input's
    #: (an activation). ``Diagnostics`` counts dead units along it.
    unit_axis: int | None = 1

    #: the layer's ``fn`` (its ``activation``) is what it outputs, so ``Diagnostics`` reads
    #: the output as that nonlinearity (dead ReLUs, saturated sigmoids); False for a layer
    #: whose activation acts inside it (a transformer block's hidden units)
    activates_output = True

    #: what the layer does with a padding mask on its input (``sequence_mask``): "keep" for
    #: a layer that keeps the positions and acts on each one's features alone (the mask
    #: passes to its output); None for one that mixes, moves or drops positions, which
    #: ``output_mask`` refuses by a clear error rather than let the padding back in
    masking: str | None = None
    #: ``call`` reads the mask: it is called ``call(x, training, mask=...)`` (attention,
    #: pooling, recurrent layers)
    uses_mask = False

    def output_mask(self, x: sg.Variable, mask: sg.Variable | None) -> sg.Variable | None:
        """The padding mask of the output given the input's (None: none), or a ValueError
        naming the layer when it cannot honour the input's mask."""
        if mask is None or self.masking == "keep":
            return mask
        raise mask_error(self, x, mask, "it does not keep the positions of its input apart")

    @property
    def trainable_weights(self) -> list[sg.SharedVariable]:
        return [w.var for w in self._weights if w.trainable and self._trainable]

    @property
    def regularizable_weights(self) -> list[sg.SharedVariable]:
        return [w.var for w in self._weights if w.regularizable and w.trainable
                and self._trainable]

    @property
    def state(self) -> list[sg.SharedVariable]:
        """Variables the layer changes as it runs but that are not weights (dropout's counter)."""
        return []

    def initialize(self, rng: np.random.Generator) -> None:
        """Redraw every weight from ``rng`` (the model's stream for this layer)."""
        for w in self._weights:
            w.draw(rng)

    def check_ready(self, what: str) -> None:
        """Raise if the layer cannot run yet (a Normalization never adapted); ``what``
        (``"fit"``, ``"predict"``...) starts the message. Most layers always can."""

    def count_params(self) -> int:
        return int(sum(np.prod(w.var.shape, dtype=np.int64) for w in self._weights))

    # -- graph building
    def build(self, x: sg.Variable) -> None:
        """Create the weights for input ``x`` (its static shape and dtype)."""

    def call(self, x: sg.Variable, training: bool) -> sg.Variable:
        raise NotImplementedError

    def __call__(self, x: sg.Variable, *, training: bool = True) -> sg.Variable:
        """Add this layer's nodes to ``x``'s graph (training mode, unless told otherwise)."""
        if not isinstance(x, sg.Variable):
            raise TypeError(f"layer {self.name or self.kind} is called on symgraph Variables "
                            f"(e.g. fe.Input(shape)), got {type(x).__name__}")
        if self.has_mode and self.name is None and self.mask_key is None:
            # numbered per process (dropout_7), the name of a functional model's layer
            # differs between two builds of one model; the masks of the same layer must not
            # (only layers that act differently in training draw masks: the others need
            # no key, nor the walk of the graph that finds it)
            prefix = self.name_prefix or _snake(self.kind)
            self.mask_key = f"{prefix}@{_count_on_inputs(x, prefix)}"
        self.ensure_name()
        mask = getattr(x, "sequence_mask", None)
        with sg.name_scope(self.name), at_site(self.site):
            out_mask = self.output_mask(x, mask)  # (before any weight: a refusal builds none)
            if not self.built:
                self.input_shape = tuple(x.shape)
                self.build(x)
                self.built = True
            out = self.call(x, training, mask=mask) if self.uses_mask \
                else self.call(x, training)
            if out is x or out.owner is None:
                # a call that adds no node (Flatten of a matrix, Dropout(0), a linear
                # Activation) still gets one: tagging ``x`` itself would take it from the
                # layer that made it (that layer and its weights would drop out of the model)
                out = ew.apply(ew.identity, out)
        out.layer, out.layer_input = self, x  # the model's inference rebuild reads these
        out.layer_mask = mask if self.uses_mask else None  # (and this)
        out.sequence_mask = out_mask
        out.layer_training = bool(training)  # a model file records a training=False call
        self.output = out  # the latest call's output (feature extractors: Model(x, layer.output))
        if self.output_shape is None:
            self.output_shape = tuple(out.shape)
        return out

    # -- configuration
    def get_config(self) -> dict:
        """Constructor arguments (JSON-able): saved with the model, and a spec file's keys."""
        config = {"type": self.kind}
        for arg in self.config_args:
            value = getattr(self, arg)
            if hasattr(value, "get_config"):
                value = value.get_config()
            if callable(value):
                raise ValueError(
                    f"layer {self.name}: {arg}={getattr(value, '__name__', value)!r} is a Python "
                    "function, which a model file or spec cannot hold; keep the weights "
                    "(model.get_weights(), np.savez) and rebuild the model in code")
            config[arg] = value
        config["name"] = self.name
        if not self._trainable:  # (not a constructor argument: load_model sets it)
            config["trainable"] = False
        return config

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name or '(unnamed)'}>"


def _count_on_inputs(x: sg.Variable, prefix: str) -> int:
    """How many layers named ``prefix_*`` per process have now been called on graphs of
    ``x``'s first input: counted on that input (a fresh ``fe.Input`` per build), so two
    builds of one model count alike, and two branches of one build apart."""
    roots = [v for v in ([x] if x.owner is None else [i for node in sg.graph.toposort([x])
                                                      for i in node.inputs])
             if v.owner is None and not isinstance(v, (sg.SharedVariable, sg.Constant))]
    if not roots:
        return next(_counters[prefix + "@"])  # (a graph of constants: nothing to count on)
    root = min(roots, key=lambda v: v.id)
    counts = root.__dict__.setdefault("_layer_counts", defaultdict(int))
    counts[prefix] += 1
    return counts[prefix]


def mask_error(layer: Layer, x: sg.Variable, mask: sg.Variable, why: str) -> ValueError:
    """The error of a layer that cannot take the padding mask its input ``x`` carries."""
    origin = getattr(mask, "origin", None) or "an Embedding(mask_zero=True)"
    return ValueError(
        f"layer {layer.name}: {layer.kind} cannot take a padding mask, and its input "
        f"{x.shape} carries one (from {origin}): {why}. Pool the sequence first "
        "(GlobalAvgPool1D(data_format='channels_last'), or a recurrent layer without "
        "return_sequences), or drop mask_zero (Embedding(padding_idx=0) makes the padding "
        "zero vectors, which mask_value=0 of a pooling or recurrent layer skips)")


def fixed_features(layer: Layer, x: sg.Variable, what: str = "features") -> int:
    """The fixed size of ``x``'s last dim, or an error naming the layer."""
    d = x.shape[-1] if x.ndim else None
    if not isinstance(d, int):
        raise ValueError(f"layer {layer.name}: the number of input {what} (last dim) must be a "
                         f"fixed size, got shape {x.shape}")
    return d


def weight_dtype(x: sg.Variable, default="float32") -> str:
    """Weights take the input's float dtype (float32 models stay float32)."""
    return x.dtype.name if x.dtype.kind == "f" else default


def inference_substitute(var: sg.Variable, rebuilt) -> sg.Variable | None:
    """The inference rule, for ``sg.clone_replace(..., substitute=)``: the output of a
    layer whose behaviour depends on the mode (dropout, batch norm) is rebuilt by calling
    the layer again with ``training=False`` on its rebuilt input."""
    layer = getattr(var, "layer", None)
    if layer is None or not layer.has_mode:
        return None
    with sg.name_scope(layer.name):
        if not layer.uses_mask:
            return layer.call(rebuilt(var.layer_input), training=False)
        mask = getattr(var, "layer_mask", None)  # (a mask computed after a Dropout: rebuilt)
        return layer.call(rebuilt(var.layer_input), training=False,
                          mask=None if mask is None else rebuilt(mask))


def frozen_substitute(var: sg.Variable, rebuilt) -> sg.Variable | None:
    """The training graph's rule for frozen layers (``sg.clone_replace``): a layer frozen
    with ``trainable = False`` that ``freezes_to_inference`` is called in inference mode."""
    layer = getattr(var, "layer", None)
    if layer is None or layer.trainable or not layer.freezes_to_inference:
        return None
    return inference_substitute(var, rebuilt)
