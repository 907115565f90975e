"""Per-example weights in the graph: how a loss and a metric combine Keras's ``sample_weight``
and the padding mask of the model's output with their per-example (or per-position) values.

The rules are Keras 3's (``keras.src.losses.loss.reduce_weighted_values``, reduction
``"sum_over_batch_size"``, and ``keras.metrics.Mean``):

* a loss: ``sum_i w_i l_i / N``, N the count the unweighted loss divides by (the examples or
  positions; those not ignored under ``ignore_index``, as Keras's mask; the labels' total
  class ``weight`` for torch's per-class weight) -- weights of 1 give the unweighted loss,
  and the weights are NOT renormalised (a weight of 2 doubles an example's pull);
* a weighted metric: ``sum_i w_i v_i / sum_i w_i``, a weighted mean.

A weight of shape (batch,) covers every position of its example; one of shape (batch,
length) (Keras's temporal weights) one position each: a weight broadcasts from the left.

A padding mask (batch, length) that reaches the model's output (``layers.base``) is Keras 3's
``apply_mask`` (``keras/src/losses/loss.py``): it multiplies the weights as 0/1, and for the
loss (``Loss.__call__`` -> ``reduce_weighted_values``, ``"sum_over_batch_size"``) it also
scales them by ``total / valid``, so the loss is ``sum(w l mask) / count(mask)``: the mean over
the positions holding data, never renormalised by the weights. Keras's metrics
(``MeanMetricWrapper.update_state``, ``keras/src/metrics/reduction_metrics.py``) take
``apply_mask(..., reduction="sum")``, the weights times the mask, in their weighted mean. The
mask is combined with ``ignore_index`` as Keras's ``in_mask & out_mask``: a position counts
when it holds data and its label is not ignored. Unlike Keras, a (batch,) weight broadcasts
over a (batch, length) mask from the left (Keras's numpy-style product aligns the last axes,
which fails unless batch == length), and a batch whose every position is padding gives NaN
(Keras's ``divide_no_nan``: 0), which ``fit`` and ``evaluate`` give no weight.
Only the graph is here; the host-side checks and the compiled functions are in
``frontends.sample_weights``.
"""

from __future__ import annotations

import numpy as np

import symgraph as sg
from symgraph import shapes as sh

__all__ = ["combine", "expand", "product", "to_rows", "weighted_loss", "weighted_mean"]


def fits(weights: sg.Variable, values: sg.Variable) -> bool:
    """Whether ``weights``' dims are a prefix of ``values``' (False only when known not)."""
    return weights.ndim <= values.ndim and not any(
        sh.dims_equal(a, b) is False for a, b in zip(weights.shape, values.shape))


def expand(weights: sg.Variable, values: sg.Variable, who: str) -> sg.Variable:
    """``weights`` (batch, ...) with trailing axes of 1 so they broadcast over ``values``
    (batch, ..., more): their dims must be a prefix of the values' (else a ShapeError)."""
    if not fits(weights, values):
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


def combine(weights: sg.Variable | None, mask: sg.Variable | None, dtype, who: str
            ) -> sg.Variable | None:
    """The weights times the padding mask as 0/1 (Keras's ``apply_mask`` with reduction
    ``"sum"``), in ``dtype``: what a metric weighs each value by; either may be None. The
    one of lower rank broadcasts over the other from the left."""
    if mask is None:
        return weights
    mask = sg.cast(mask, dtype)
    return mask if weights is None else product(weights, mask, who)


def product(a: sg.Variable, b: sg.Variable, who: str) -> sg.Variable:
    """``a * b`` where the one of lower rank broadcasts over the other from the left
    (:func:`expand`)."""
    return expand(a, b, who) * b if a.ndim <= b.ndim else a * expand(b, a, who)


def weighted_loss(terms: sg.Variable, counts: sg.Variable | None,
                  weights: sg.Variable | None, who: str, mask: sg.Variable | None = None
                  ) -> tuple[sg.Variable, sg.Variable]:
    """``(sum(w * mask * terms) / sum(counts * mask), that denominator)``: Keras's weighted
    ``sum_over_batch_size`` (``counts`` None: each value counts 1; the mask as
    ``apply_mask``'s ``total / valid``). A padded position adds nothing even when its value
    is inf or NaN (a ``where``, not Keras's product). A denominator of 0 (every label in
    the batch ignored or padding) gives NaN with a zero gradient, as the unweighted loss
    does: fit gives that batch no weight."""
    product = terms if weights is None else terms * expand(weights, terms, who)
    if mask is None and counts is None:
        return sg.mean(product), sg.cast(sg.sum(sg.ones_like(terms)), terms.dtype)
    counted = sg.ones_like(terms) if counts is None else counts
    if mask is not None:
        if not fits(mask, terms):
            raise sh.ShapeError(
                f"{who}: the padding mask of shape {sh.format_shape(mask.shape)} does not fit "
                f"the loss's values of shape {sh.format_shape(terms.shape)}: it needs one "
                "value per position of the mask")
        kept = expand(sg.cast(mask, terms.dtype), terms, who) > 0
        product = sg.where(kept, product, 0)
        counted = sg.where(kept, counted, 0)
    denominator = sg.sum(counted)
    some = sg.greater(denominator, 0)
    mean = sg.sum(product) / sg.where(some, denominator, 1)
    return sg.where(some, mean, np.array(np.nan, terms.dtype)), denominator


def weighted_mean(values: sg.Variable, weights: sg.Variable, who: str) -> sg.Variable:
    """``sum(w * v) / sum(w)`` with ``w`` broadcast over ``values`` (a metric, Keras's
    ``Mean`` with ``sample_weight``); NaN for a batch whose weights are all 0."""
    expanded = expand(weights, values, who)
    return sg.sum(values * expanded) / sg.sum(expanded * sg.ones_like(values))
