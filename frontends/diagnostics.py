"""Training diagnostics ("babysitting"): per-layer health statistics from one compiled probe.

``Probe(model, x, y)`` fixes a batch of training examples (the first ``size``)
and compiles, once, ONE ``sg.function`` that computes on that batch, in the
graph:

* the gradient of the model's training loss (regulariser included) w.r.t.
  every trainable parameter;
* per parameter: ``||W||``, ``||dL/dW||`` and the update/weight ratio
  ``||dW|| / ||W||`` of one optimizer step (healthy: about 1e-3);
* per layer: the fraction of dead ReLU units, of saturated sigmoid/tanh
  activations, and a histogram of the layer's activations.

The probe runs the *inference* graph (``training=False``, as ``evaluate``:
dropout off, batch norm on its running statistics) and only reads model
state: the function has no updates, not even the shared variables' default
updates (dropout's counter), so training with or without diagnostics gives the
same parameters bit for bit. ``frontends.callbacks.Diagnostics`` runs it after
epochs and stores the results in the ``History``; ``history.plot_diagnostics``
draws them.

Statistics per layer (``probe.stats()[layer_name]``; ``<p>`` is the parameter's
short name, ``W`` for ``dense_1/W``):

=====================  ===============================================================
``weight_norm/<p>``    ``||W||`` (2-norm of all entries, float64)
``grad_norm/<p>``      ``||dL/dW||`` on the probe batch
``update_ratio/<p>``   ``||U(W) - W|| / ||W||``; ``nan`` when ``||W|| = 0`` (zero biases)
``dead_fraction``      ReLU only: fraction of units that are 0 for every probe example
``saturated_fraction`` sigmoid: fraction of activations < 0.01 or > 0.99; tanh: |a| > 0.99
``histogram``          counts (int64) of the activations in ``HISTOGRAM_BINS`` equal bins
``histogram_edges``    the ``HISTOGRAM_BINS + 1`` bin edges, from the batch's min to max
                       (in the activations' dtype)
=====================  ===============================================================

The update ``U(W)`` is the optimizer's own update expression (the one compiled
into ``model.train_function``: learning rate and schedule, clipping, momentum
and Adam moments in their current state) evaluated on the probe batch's
gradient and *not applied*: the step the optimizer would take next if the next
minibatch were the probe batch. It is built by ``sg.clone_replace`` of the
model's update expressions with the training gradients swapped for the
probe's, so it cannot drift from the real update rule; reading the actual
change over the epoch's last step instead would need a copy of every
parameter before each step (a write) or a second step function.

A unit of a layer with output ``(batch, units)`` is a column; for ``(batch,
channels, ...)`` outputs (NCHW) a unit is a channel, over every position. The
saturation thresholds are where the derivative has collapsed: ``sigma'(z) <
0.0099`` and ``tanh'(z) < 0.02``. Histogram bins are ``np.histogram``'s: each
``[e_i, e_{i+1})``, the last one closed; the counts come from comparing the
activations with the edges in the graph, not from a Python loop.
"""

from __future__ import annotations

import numpy as np

import symgraph as sg
from frontends.figures import clone_output
from frontends.layers.activations import ACTIVATIONS
from frontends.layers.base import inference_substitute
from symgraph.graph import toposort

__all__ = ["HISTOGRAM_BINS", "SIGMOID_SATURATION", "TANH_SATURATION", "Probe",
           "activation_kind"]

#: bins of every activation histogram
HISTOGRAM_BINS = 30
#: a sigmoid activation below the first or above the second value is saturated
SIGMOID_SATURATION = (0.01, 0.99)
#: a tanh activation with ``|a|`` above this value is saturated
TANH_SATURATION = 0.99

_KINDS = {"relu": ACTIVATIONS["relu"], "sigmoid": ACTIVATIONS["sigmoid"],
          "tanh": ACTIVATIONS["tanh"]}
_LAYER_KINDS = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}


def activation_kind(layer) -> str | None:
    """``"relu"``, ``"sigmoid"`` or ``"tanh"`` when the layer's output is that nonlinearity
    (``Dense(activation="relu")``, ``Activation("tanh")``, ``ReLU()``), else ``None``: also
    for a layer whose activation is inside it (``TransformerEncoder``'s feed-forward units),
    whose output (after a residual and LayerNorm) is no ReLU's nor tanh's."""
    if not getattr(layer, "activates_output", True):
        return None
    fn = getattr(layer, "fn", None)
    for kind, f in _KINDS.items():
        if fn is f:
            return kind
    return _LAYER_KINDS.get(type(layer).__name__)


class Probe:
    """One compiled function that reads a model's health on a fixed batch of examples.

    >>> probe = Probe(model, X, y, size=256)
    >>> probe.gradients()["dense_1/W"].shape
    (64, 128)
    >>> probe.stats()["dense_1"]["update_ratio/W"]
    0.0012

    The model must be compiled (the loss, regulariser and optimizer are its own).
    """

    def __init__(self, model, x, y, *, size: int = 256):
        model._require_compiled("Probe")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"Probe: size must be a positive integer, got {size!r}")
        arrays = model._arrays(x, y, "Probe")
        if len(arrays[0]) == 0:
            raise ValueError("Probe: no examples")
        self.model = model
        #: the training step whose optimizer the update ratio evaluates
        self.train_function = model.train_function
        self.size = min(int(size), len(arrays[0]))
        # copies: the probe batch stays fixed even if the caller's arrays change
        self.batch = [np.array(a[:self.size]) for a in arrays]
        self._param_names: list[str] = []
        self._stat_keys: list[tuple[str, str]] = []
        outputs = self._build()
        self.function = sg.function(model.inputs + [model.target], outputs,
                                    backend=model.backend, name="probe",
                                    flush_denormals=model.flush_denormals)
        if self.function.updates:  # _build avoids every default update; a check, not a hope
            names = ", ".join(v.name or "?" for v, _ in self.function.updates)
            raise RuntimeError(f"Probe: the probe function would update {names}")

    # -- the graph
    def _build(self) -> list[sg.Variable]:
        model = self.model
        params = model.trainable_weights
        tagged = _layer_outputs(model.output)
        # the inference versions of the model output and of every layer's output (one clone,
        # the model's own rule: has-mode layers called again with training=False)
        output, activations = clone_output(model.output, [v for _, v in tagged],
                                           inference_substitute)
        _check_no_default_updates(output)
        loss = model._total_loss(output)
        outputs: list[sg.Variable] = []
        if params:
            grads = sg.grad(loss, params)
            _, train_grads, train_updates = model.train_graph
            # the optimizer's update expressions with the training gradients swapped for the
            # probe's: the real update rule, evaluated, never applied
            news = sg.clone_replace([train_updates[p] for p in params],
                                    replace=dict(zip(train_grads, grads)))
            outputs += grads
            self._param_names = [p.name for p in params]
            owner = {id(w): layer for layer in model.layers for w in layer.trainable_weights}
            for p, g, new in zip(params, grads, news):
                layer = owner[id(p)]
                short = p.name.split("/", 1)[1] if p.name.startswith(f"{layer.name}/") \
                    else p.name
                w_norm = _norm(p)
                self._add(outputs, layer.name, f"weight_norm/{short}", w_norm)
                self._add(outputs, layer.name, f"grad_norm/{short}", _norm(g))
                # nan, without a division warning, when the weight is all zeros
                safe = sg.where(w_norm > 0, w_norm, np.nan)
                self._add(outputs, layer.name, f"update_ratio/{short}",
                          _norm(sg.cast(new, "float64") - sg.cast(p, "float64")) / safe)
        for (layer, var), a in zip(tagged, activations):
            if a.dtype.kind != "f" or a.ndim < 2:
                continue
            kind = activation_kind(layer)
            if not (layer.trainable_weights or kind):
                continue  # dropout, flatten, pooling: the previous layer's values again
            if kind == "relu":
                units = _unit_axis(layer, var) % a.ndim
                axes = tuple(d for d in range(a.ndim) if d != units)  # all but the units'
                dead = sg.cast(sg.max(a, axis=axes) <= 0.0, "float64")
                self._add(outputs, layer.name, "dead_fraction", sg.mean(dead))
            elif kind == "sigmoid":
                low, high = SIGMOID_SATURATION
                tails = sg.logical_or(a < low, a > high)
                self._add(outputs, layer.name, "saturated_fraction",
                          sg.mean(sg.cast(tails, "float64")))
            elif kind == "tanh":
                self._add(outputs, layer.name, "saturated_fraction",
                          sg.mean(sg.cast(sg.abs(a) > TANH_SATURATION, "float64")))
            counts, edges = _histogram(a, HISTOGRAM_BINS)
            self._add(outputs, layer.name, "histogram", counts)
            self._add(outputs, layer.name, "histogram_edges", edges)
        return outputs

    def _add(self, outputs: list, layer: str, stat: str, expr: sg.Variable) -> None:
        self._stat_keys.append((layer, stat))
        outputs.append(expr)

    # -- running
    def _run(self) -> list[np.ndarray]:
        return self.function(*self.batch)

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradient of the training loss (with the regulariser) on the probe batch, per
        parameter name (``"dense_1/W"``), computed in inference mode."""
        values = self._run()
        return {name: np.asarray(v) for name, v in zip(self._param_names, values)}

    def stats(self) -> dict[str, dict[str, float | np.ndarray]]:
        """Every statistic of the module docstring's table, per layer name."""
        values = self._run()[len(self._param_names):]
        out: dict[str, dict[str, float | np.ndarray]] = {}
        for (layer, stat), v in zip(self._stat_keys, values):
            v = np.asarray(v)
            out.setdefault(layer, {})[stat] = float(v) if v.ndim == 0 else v
        return out

    def __repr__(self) -> str:
        return f"<Probe of {self.model.name}: {self.size} examples, " \
               f"{len(self._stat_keys)} statistics>"


# --------------------------------------------------------------------------- helpers


def _layer_outputs(output: sg.Variable) -> list[tuple[object, sg.Variable]]:
    """``(layer, its output)`` in graph order; a layer called twice: its last call."""
    found: dict[int, tuple[object, sg.Variable]] = {}
    for node in toposort([output]):
        for var in node.outputs:
            layer = getattr(var, "layer", None)
            if layer is not None:
                found.pop(id(layer), None)
                found[id(layer)] = (layer, var)
    return list(found.values())


def _unit_axis(layer, var: sg.Variable) -> int:
    """The axis of ``layer``'s output ``var`` that holds its units (``Layer.unit_axis``); an
    activation's, a dropout's, a LayerNorm's or a merge's are those of the layer it reads.
    A Dense on (batch, length, features) has them last: axis 1, the convolutions' channels,
    counted a dead unit per position."""
    while getattr(layer, "unit_axis", 1) is None:
        var = getattr(var, "layer_input", None)
        if isinstance(var, (list, tuple)):  # Add, Concatenate: their first input's
            var = var[0] if var else None
        layer = getattr(var, "layer", None)
        if layer is None:  # a model input: (batch, features)
            return 1
    return getattr(layer, "unit_axis", 1)


def _check_no_default_updates(output: sg.Variable) -> None:
    for v in sg.graph.graph_inputs([output]):
        if isinstance(v, sg.SharedVariable) and v.default_update is not None:
            raise RuntimeError(f"Probe: the inference graph reads {v.name}, which advances on "
                               "every call (a layer without an inference mode?)")


def _norm(x: sg.Variable) -> sg.Variable:
    x64 = sg.cast(x, "float64")
    return sg.sqrt(sg.sum(x64 * x64))


def _histogram(a: sg.Variable, bins: int) -> tuple[sg.Variable, sg.Variable]:
    """Counts (int64) in ``bins`` equal bins from min to max, and the edges, in the graph.

    ``below[k] = #(a < e_k)`` for the interior edges by one broadcast comparison of the
    activations, flattened along the contiguous axis, with a column of edges (reducing along
    the last axis is several times faster than along the first); the counts are its
    differences, the last bin closed (as ``np.histogram``). Compared in the activations'
    own dtype: a float64 copy of them would cost more than the counting."""
    flat = sg.reshape(a, (1, -1))
    lo, hi = sg.min(flat), sg.max(flat)
    steps = np.arange(1, bins, dtype=a.dtype) / np.asarray(bins, a.dtype)
    interior = lo + (hi - lo) * steps
    below = sg.sum(sg.cast(flat < sg.reshape(interior, (-1, 1)), "int64"), axis=1)
    total = sg.ops.size(flat, dtype="int64")
    cumulative = sg.concatenate([np.zeros(1, np.int64), below, sg.reshape(total, (1,))])
    counts = cumulative[1:] - cumulative[:-1]
    edges = sg.concatenate([sg.reshape(lo, (1,)), interior, sg.reshape(hi, (1,))])
    return counts, edges
