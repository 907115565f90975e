"""Recurrent layers: ``SimpleRNN``, ``LSTM``, ``GRU`` over (batch, time, features).

The time loop is unrolled into the graph: the sequence length must be a fixed dim, and the
backward pass is ordinary backprop through the unrolled steps (BPTT), so the whole training
step still compiles to one native function. The input projection of every time step is one
product ``x @ W`` of the whole sequence (a single gemm); only ``h @ U`` is per step. Compile
time grows with the length, though the steps' equal kernels compile once
(``codegen.dedupe``): on this 2-core machine an LSTM(32) training step (batch 32, 16
features, Adam) compiles in ~1.6 s over 20 steps and ~3.4 s over 50, once (the disk cache
keeps it), and then takes 0.26x and 0.38x torch eager's step (``bench/rnn.py``). Long
sequences want a loop op the graph does not have yet.

Weights are named as Dense's (``W`` input, ``U`` recurrent, ``b`` bias) and laid out as
Keras's ``kernel``, ``recurrent_kernel``, ``bias`` (``get_weights`` order and shapes): ``W``
(features, k units), ``U`` (units, k units), ``b``; gate order LSTM ``i, f, c, o`` (as
torch's ``i, f, g, o``), GRU ``z, r, h`` with ``reset_after=True`` (Keras 2's default, the
same recurrence as ``torch.nn.GRU``: the reset gate scales ``h @ U_h + b_h``), so GRU's
bias is (2, 3 units): input and recurrent. Initial state zeros; ``U`` orthogonal.

Dropout (Keras's arguments, Gal & Ghahramani's variational form): ``dropout`` drops input
features and ``recurrent_dropout`` drops ``h_{t-1}`` where it enters ``h_{t-1} @ U`` (the
state it carries is kept), each with one mask per sequence for all its steps, new at every
training step; inference uses no masks. Masks come from a
:class:`frontends.layers.core.MaskStream`, as ``Dropout``'s.

Variable lengths: with ``mask_value`` set, a time step whose features all equal it is
padding. The state passes it unchanged and its output (``return_sequences``) is zeros, so an
example's result is the unpadded sequence's, as ``torch.nn.utils.rnn.pack_padded_sequence``
gives: the last state of a post-padded batch is each sequence's own last, ``Bidirectional``'s
backward half starts at each sequence's own end, and nothing flows into the padding's
gradient. Padding may sit anywhere (pre-padding too); ``Embedding(padding_idx=...)`` makes
padded token ids zero vectors for a layer with ``mask_value=0``; a per-step loss leaves the
padding out by its labels (``cross_entropy``'s ``ignore_index``). Every step is still
computed for the whole batch, so padding saves no time (torch's packed runs skip it).
A padding mask on the input (``Embedding(mask_zero=True)``, Keras's) marks the padded
steps the same way, with or without ``mask_value`` (a step is padding if either says so);
with ``return_sequences`` it passes on to the output, else it is used up.
"""

from __future__ import annotations

import numpy as np

import symgraph as sg
from frontends import initializers
from frontends.config import flag, integer
from frontends.layers.activations import get_activation
from frontends.layers.base import Layer, mask_error, weight_dtype
from frontends.layers.core import MaskStream, dropout_rate


def _sequence(layer: Layer, x: sg.Variable) -> tuple[int, int]:
    """(time steps, features) of a (batch, time, features) input with both fixed."""
    if x.ndim != 3 or not all(isinstance(d, int) for d in x.shape[1:]):
        raise ValueError(f"layer {layer.name}: {layer.kind} takes (batch, time, features) "
                         f"with a fixed number of time steps and features, got shape "
                         f"{x.shape}")
    if x.shape[1] < 1:
        raise ValueError(f"layer {layer.name}: {layer.kind} needs at least one time step, got "
                         f"shape {x.shape}")
    return x.shape[1], x.shape[2]


def checked_mask_value(kind: str, value) -> float | None:
    """``mask_value`` as a float, or None; NaN is refused (no feature equals it)."""
    import numbers
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{kind}: mask_value must be a number (the value of every feature of "
                        f"a padded time step) or None, got {value!r}")
    if value != value:
        raise ValueError(f"{kind}: mask_value cannot be NaN: NaN equals nothing, so no step "
                         "would be padding")
    return float(value)


def holds_value(dtype: np.dtype, value: float | None) -> bool:
    """True if ``value`` rounds to a finite ``dtype`` value (or is itself infinite, or
    None: no mask value)."""
    if value is None:
        return True
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.asarray(value, dtype))) or not np.isfinite(value)


class _Recurrent(Layer):
    """What the three share: units, initialisers, ``return_sequences`` and the weights."""

    config_args = ("units", "return_sequences", "init", "recurrent_init", "bias_init",
                   "dropout", "recurrent_dropout", "mask_value")
    gates = 1
    states = 1  # h (LSTM: h and c)
    unit_axis = -1  # (batch, units) or, with return_sequences, (batch, length, units)
    _h_mask = None  # recurrent dropout's mask during a training call (see _recurrent)
    uses_mask = True  # (a padding mask: the padded steps)

    def __init__(self, units: int, return_sequences: bool = False, init="glorot_uniform",
                 recurrent_init="orthogonal", bias_init="zeros", dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, mask_value: float | None = None,
                 name: str | None = None):
        super().__init__(name)
        self.units = integer(self.kind, "units", units)
        if not isinstance(return_sequences, bool):
            raise TypeError(f"{self.kind}: return_sequences must be True or False, got "
                            f"{return_sequences!r}")
        self.return_sequences = return_sequences
        self.init, self.recurrent_init, self.bias_init = (
            initializers.checked(self.kind, arg, value) for arg, value in
            (("init", init), ("recurrent_init", recurrent_init), ("bias_init", bias_init)))
        self.dropout = dropout_rate(self.kind, "dropout", dropout)
        self.recurrent_dropout = dropout_rate(self.kind, "recurrent_dropout",
                                              recurrent_dropout)
        self.has_mode = bool(self.dropout or self.recurrent_dropout)
        self.masks = MaskStream(self) if self.has_mode else None
        self.mask_value = checked_mask_value(self.kind, mask_value)

    def build(self, x):
        _, features = _sequence(self, x)
        dt, width = weight_dtype(x), self.gates * self.units
        self.W = self.add_weight("W", (features, width), self.init, dt, regularizable=True)
        self.U = self.add_weight("U", (self.units, width), self.recurrent_init, dt,
                                 regularizable=True)
        self.b = self.add_weight("b", self._bias_shape(width), self._bias_initializer(), dt)
        if self.masks is not None:
            self.masks.build()

    @property
    def state(self):
        return self.masks.state if self.masks is not None else []

    def initialize(self, rng):
        super().initialize(rng)
        if self.masks is not None:
            self.masks.initialize(rng)

    def _bias_shape(self, width: int) -> tuple[int, ...]:
        return (width,)

    def _bias_initializer(self) -> initializers.Initializer:
        return initializers.get(self.bias_init)

    def output_mask(self, x, mask):
        return sequence_output_mask(self, x, mask, self.return_sequences)

    def call(self, x, training, mask=None):
        steps, _ = _sequence(self, x)
        # (batch, time, 1): does step t of an example hold data? (None: every step does)
        # compared in a float dtype: the mask value cast to integer ids would be another
        # value (0.5 -> 0, or -1 -> 255 of uint8), and one that overflows x's float dtype
        # would be inf (1e300 in float32), which an inf feature would then match
        seen = x if x.dtype.kind == "f" and holds_value(x.dtype, self.mask_value) \
            else sg.cast(x, "float64")
        real = None if self.mask_value is None else sg.any(
            sg.not_equal(seen, sg.constant(self.mask_value, seen.dtype)), axis=-1,
            keepdims=True)
        if mask is not None:  # the padding mask: (batch, time) -> (batch, time, 1)
            given = sg.expand_dims(mask, -1)
            real = given if real is None else sg.logical_and(real, given)
        if real is not None and self.mask_value != 0.0:
            # padded steps read zeros: x @ W of a pad of inf (or one whose products
            # overflow) is NaN there, which the backward pass spread into every weight
            x = sg.where(real, x, 0.0)
        drop_x = training and self.dropout > 0  # one mask for every step (Gal & Ghahramani)
        projected = self._project(  # (batch, time, k units): one product for every step
            x * self.masks.mask(x[:, :1, :], self.dropout, "/x") if drop_x else x)
        # the recurrent input h_{t-1} of h_{t-1} @ U is dropped, not the state it carries
        self._h_mask = self.masks.mask(projected[:, 0, :self.units], self.recurrent_dropout,
                                       "/h") if training and self.recurrent_dropout else None
        # the zero first state is implicit (no product with U), except for one step: then
        # an explicit one keeps U in the graph (its gradient is zero, as in torch and Keras)
        state = None if steps > 1 else self._zero_state(projected)
        outputs = []
        for t in range(steps):
            new = self._step(projected[:, t, :], state)
            if real is None:
                state = new
                outputs.append(new[0])
                continue
            here = real[:, t, :]  # (batch, 1): a padded example keeps its state
            old = state if state is not None else (0.0,) * self.states
            state = tuple(sg.where(here, n, o) for n, o in zip(new, old))
            outputs.append(sg.where(here, new[0], 0.0) if self.return_sequences else state[0])
        return sg.stack(outputs, axis=1) if self.return_sequences else outputs[-1]

    def _zero_state(self, projected) -> tuple:
        zeros = sg.zeros_like(projected[:, 0, :self.units])  # (batch, units)
        return (zeros,) * self.states

    def _project(self, x):
        return x @ self.W + self.b

    def _step(self, projected, state):
        raise NotImplementedError

    def _recurrent(self, state):
        """``h_{t-1} @ U``, with recurrent dropout's mask on ``h_{t-1}`` in training."""
        h = state[0] if self._h_mask is None else state[0] * self._h_mask
        return h @ self.U

    def _gate(self, z, k: int):
        n = self.units
        return z[:, k * n:(k + 1) * n]


class SimpleRNN(_Recurrent):
    """``h_t = activation(x_t W + h_{t-1} U + b)`` (Elman), as ``torch.nn.RNN``.

    >>> rnn = fe.layers.SimpleRNN(32)            # (batch, T, F) -> (batch, 32)
    """

    config_args = _Recurrent.config_args + ("activation",)

    def __init__(self, units: int, activation="tanh", return_sequences: bool = False,
                 init="glorot_uniform", recurrent_init="orthogonal", bias_init="zeros",
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 mask_value: float | None = None, name: str | None = None):
        super().__init__(units, return_sequences, init, recurrent_init, bias_init, dropout,
                         recurrent_dropout, mask_value, name)
        self.fn = get_activation(activation, type(self).__name__)
        self.activation = activation

    def _step(self, projected, state):
        z = projected if state is None else projected + self._recurrent(state)
        return (self.fn(z),)


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate), as
    ``torch.nn.LSTM`` and Keras: ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``.
    ``unit_forget_bias`` starts the forget gate's bias at 1 (Keras's default).

    >>> lstm = fe.layers.LSTM(64, return_sequences=True)
    """

    config_args = _Recurrent.config_args + ("unit_forget_bias",)
    gates = 4
    states = 2

    def __init__(self, units: int, return_sequences: bool = False, init="glorot_uniform",
                 recurrent_init="orthogonal", bias_init="zeros", unit_forget_bias: bool = True,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 mask_value: float | None = None, name: str | None = None):
        super().__init__(units, return_sequences, init, recurrent_init, bias_init, dropout,
                         recurrent_dropout, mask_value, name)
        self.unit_forget_bias = flag("LSTM", "unit_forget_bias", unit_forget_bias)

    def _bias_initializer(self):
        base = super()._bias_initializer()
        if not self.unit_forget_bias:
            return base
        return initializers.Overwritten(base, slice(self.units, 2 * self.units), 1.0)

    def _step(self, projected, state):
        z = projected if state is None else projected + self._recurrent(state)
        i, f = sg.nn.sigmoid(self._gate(z, 0)), sg.nn.sigmoid(self._gate(z, 1))
        g, o = sg.tanh(self._gate(z, 2)), sg.nn.sigmoid(self._gate(z, 3))
        c = i * g if state is None else f * state[1] + i * g
        return (o * sg.tanh(c), c)


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al. 2014), Keras's ``reset_after=True`` form, which is
    ``torch.nn.GRU``'s: ``z, r = sigmoid(..)``, ``n = tanh(x W_h + b_h + r (h U_h + b'_h))``,
    ``h_t = z h_{t-1} + (1 - z) n``. Bias (2, 3 units): input then recurrent.

    >>> gru = fe.layers.GRU(64)
    """

    gates = 3

    def _bias_shape(self, width):
        return (2, width)

    def _zero_state(self, projected) -> tuple:
        zeros = sg.zeros_like(projected[:, 0, :self.units])  # (batch, units)
        return (zeros,) * self.states

    def _project(self, x):
        return x @ self.W + self.b[0]

    def _step(self, projected, state):
        recurrent = self.b[1] if state is None else (
            self._recurrent(state) + self.b[1])
        z = sg.nn.sigmoid(self._gate(projected, 0) + self._gate_of(recurrent, 0, state))
        r = sg.nn.sigmoid(self._gate(projected, 1) + self._gate_of(recurrent, 1, state))
        n = sg.tanh(self._gate(projected, 2) + r * self._gate_of(recurrent, 2, state))
        h = (1.0 - z) * n if state is None else z * state[0] + (1.0 - z) * n
        return (h,)

    def _gate_of(self, recurrent, k: int, state):
        """Gate ``k`` of the recurrent term: a (batch, units) slice, or at the first step
        (zero state) the recurrent bias's (units,) slice, which broadcasts."""
        n = self.units
        return recurrent[k * n:(k + 1) * n] if state is None else self._gate(recurrent, k)


def sequence_output_mask(layer: Layer, x: sg.Variable, mask: sg.Variable | None,
                         sequences: bool) -> sg.Variable | None:
    """A recurrent layer's output mask: the input's with ``return_sequences`` (the steps
    stay), none without (used up); a mask not over x's (batch, time) is refused."""
    if mask is None:
        return None
    if x.ndim != 3 or mask.ndim != 2:
        raise mask_error(layer, x, mask, "its padding mask is not over the (batch, time) "
                         "steps of a (batch, time, features) input")
    return mask if sequences else None


_CELLS = {cls.__name__: cls for cls in (SimpleRNN, LSTM, GRU)}


def _merge_concat(a, b):
    return sg.concatenate([a, b], axis=-1)


#: how Bidirectional joins the two directions (Keras's ``merge_mode`` names)
MERGES = {"concat": _merge_concat, "sum": lambda a, b: a + b, "mul": lambda a, b: a * b,
          "ave": lambda a, b: (a + b) * 0.5}


class Bidirectional(Layer):
    """A recurrent layer run forward in time and a copy of it (its own weights) run
    backward, merged (Keras's ``Bidirectional``; ``concat`` is ``torch.nn.LSTM(...,
    bidirectional=True)``'s layout). Without ``return_sequences`` the backward half is its
    state after reading the whole sequence from the end (torch's ``h_n[1]``); with it,
    each step's backward state is aligned with that step. Weights: the forward layer's,
    then the backward layer's (``<name>_forward/W``, ...).

    >>> fe.layers.Bidirectional(fe.layers.LSTM(32))        # (batch, T, F) -> (batch, 64)
    """

    config_args = ("layer", "merge")
    uses_mask = True  # (the backward half reads it reversed)

    def __init__(self, layer, merge: str = "concat", name: str | None = None):
        super().__init__(name)
        if isinstance(layer, dict):  # a spec file's or a model file's {type: LSTM, ...}
            config = dict(layer)
            kind = config.pop("type", None)
            if kind not in _CELLS:
                raise TypeError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got "
                                f"{{'type': {kind!r}, ...}}")
            layer = _CELLS[kind](**config)
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got "
                            f"{type(layer).__name__}")
        if layer.built:
            raise ValueError(f"Bidirectional needs a layer not yet used, got {layer.name!r} "
                             "(its weights belong to the model that used it)")
        if not isinstance(merge, str) or merge not in MERGES:
            raise ValueError(f"Bidirectional: merge must be one of {sorted(MERGES)}, got "
                             f"{merge!r}")
        self.layer, self.merge = layer, merge
        # the constructor's own arguments, not get_config's: a function activation or an
        # Initializer instance is a legitimate argument that a config cannot hold
        self.backward_layer = type(layer)(**{k: getattr(layer, k) for k in layer.config_args})
        self.has_mode = layer.has_mode  # (dropout)

    @property
    def state(self):
        return self.layer.state + self.backward_layer.state

    def initialize(self, rng):
        for sub in (self.layer, self.backward_layer):  # weights, then any dropout counter
            sub.initialize(rng)

    def build(self, x):
        for sub, direction in ((self.layer, "forward"), (self.backward_layer, "backward")):
            sub.name = f"{self.name}_{direction}"
            sub.mask_key = self.mask_key and f"{self.mask_key}_{direction}"
            sub.build(x)
            sub.built = True
        self._weights = self.layer._weights + self.backward_layer._weights

    def output_mask(self, x, mask):
        return sequence_output_mask(self, x, mask, self.layer.return_sequences)

    def call(self, x, training, mask=None):
        ahead = self.layer.call(x, training, mask=mask)
        behind = self.backward_layer.call(sg.flip(x, axis=1), training,
                                          mask=None if mask is None else sg.flip(mask, axis=1))
        if self.layer.return_sequences:  # step t of the reversed run is step T-1-t
            behind = sg.flip(behind, axis=1)
        return MERGES[self.merge](ahead, behind)


class Masking(Layer):
    """Marks the padded steps of a (batch, time, features) sequence that is not token ids,
    as Keras's ``Masking(mask_value)``: a step whose features all equal ``mask_value`` is
    padding. The output is the input with those steps zeroed (Keras's; an inf pad would
    otherwise reach the arithmetic) and carries the padding mask that attention (torch's
    ``key_padding_mask``), ``GlobalAvgPool1D(data_format="channels_last")`` and the
    recurrent layers read, as ``Embedding(mask_zero=True)``'s for ids.

    >>> fe.layers.Masking(-1.0)          # steps of -1 in every feature are padding
    """

    config_args = ("mask_value",)
    unit_axis = None  # its input's units

    def __init__(self, mask_value: float = 0.0, name: str | None = None):
        super().__init__(name)
        self.mask_value = checked_mask_value("Masking", mask_value)
        if self.mask_value is None:
            raise TypeError("Masking: mask_value must be a number (the value of every "
                            "feature of a padded step), got None")

    def _real(self, x: sg.Variable) -> sg.Variable:
        """(batch, time): does the step hold data? (compared as the recurrent layers do)"""
        _sequence(self, x)
        seen = x if x.dtype.kind == "f" and holds_value(x.dtype, self.mask_value) \
            else sg.cast(x, "float64")
        return sg.any(sg.not_equal(seen, sg.constant(self.mask_value, seen.dtype)), axis=-1)

    def output_mask(self, x, mask):
        real = self._real(x)
        real.origin = f"Masking {self.name}"
        return real if mask is None else sg.logical_and(mask, real)

    def call(self, x, training):
        return sg.where(sg.expand_dims(self._real(x), -1), x, 0.0)


__all__ = ["GRU", "LSTM", "MERGES", "Bidirectional", "Masking", "SimpleRNN"]
