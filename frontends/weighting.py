"""Per-example weights in the graph: how a loss and a metric combine Keras's ``sample_weight``
with their per-example (or per-position) values.

The rules are Keras 3's (``keras.src.losses.loss.reduce_weighted_values``, reduction
``"sum_over_batch_size"``, and ``keras.metrics.Mean``):

* a loss: ``sum_i w_i l_i / N``, N the count the unweighted loss divides by (the examples or
  positions; those not ignored under ``ignore_index``, as Keras's mask; the labels' total
  class ``weight`` for torch's per-class weight) -- weights of 1 give the unweighted loss,
  and the weights are NOT renormalised (a weight of 2 doubles an example's pull);
* a weighted metric: ``sum_i w_i v_i / sum_i w_i``, a weighted mean.

A weight of shape (batch,) covers every position of its example; one of shape (batch,
length) (Keras's temporal weights) one position each: a weight broadcasts from the left.
Only the graph is here; the host-side checks and the compiled functions are in
``frontends.sample_weights``.
"""

from __future__ import annotations

import numpy as np

import symgraph as sg
from symgraph import shapes as sh

__all__ = ["expand", "to_rows", "weighted_loss", "weighted_mean"]


def expand(weights: sg.Variable, values: sg.Variable, who: str) -> sg.Variable:
    """``weights`` (batch, ...) with trailing axes of 1 so they broadcast over ``values``
    (batch, ..., more): their dims must be a prefix of the values' (else a ShapeError)."""
    if weights.ndim > values.ndim or any(
            sh.dims_equal(a, b) is False for a, b in zip(weights.shape, values.shape)):
        raise sh.ShapeError(
            f"{who}: sample weights of shape {sh.format_shape(weights.shape)} do not fit its "
            f"values of shape {sh.format_shape(values.shape)}: a weight per example, or per "
            "position of the leading dims")
    if weights.dtype != values.dtype:
        weights = sg.cast(weights, values.dtype)
    extra = values.ndim - weights.ndim
    return sg.expand_dims(weights, tuple(range(weights.ndim, values.ndim))) if extra \
        else weights


def to_rows(weights: sg.Variable, labels: sg.Variable, who: str) -> sg.Variable:
    """Weights for labels (batch, ...) flattened into rows as ``losses._rows`` flattens
    them: broadcast to the labels' shape, then one per row. Shaped against a float
    stand-in of the labels: ``expand`` casts to its values' dtype, and the labels' int64
    truncated the weights (a tagger's weighted accuracy read 0.7 as 0)."""
    stand_in = sg.ones_like(labels, weights.dtype)
    if labels.ndim <= 1:
        return expand(weights, stand_in, who)
    full = expand(weights, stand_in, who) * stand_in
    return sg.reshape(full, (-1,))


def weighted_loss(terms: sg.Variable, denominator: sg.Variable | None,
                  weights: sg.Variable, who: str) -> sg.Variable:
    """``sum(w * terms) / denominator`` (None: the count of ``terms``, Keras's
    ``sum_over_batch_size``). A denominator of 0 (every label in the batch ignored) gives
    NaN with a zero gradient, as the unweighted loss does: fit gives that batch no weight."""
    product = terms * expand(weights, terms, who)
    if denominator is None:
        return sg.mean(product)
    some = sg.greater(denominator, 0)
    mean = sg.sum(product) / sg.where(some, denominator, 1)
    return sg.where(some, mean, np.array(np.nan, terms.dtype))


def weighted_mean(values: sg.Variable, weights: sg.Variable, who: str) -> sg.Variable:
    """``sum(w * v) / sum(w)`` with ``w`` broadcast over ``values`` (a metric, Keras's
    ``Mean`` with ``sample_weight``); NaN for a batch whose weights are all 0."""
    expanded = expand(weights, values, who)
    return sg.sum(values * expanded) / sg.sum(expanded * sg.ones_like(values))
