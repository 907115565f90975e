"""What a model's compiled functions report: the loss, the metrics, the weighted metrics,
and, when the model's output carries a padding mask, what each of them weighs per batch.

A padding mask that reaches the output (``Embedding(mask_zero=True)`` -> ``LSTM(
return_sequences=True)`` -> ``Dense``: a tagger) leaves the padded positions out of the loss
and of every metric, as Keras 3 does (``keras/src/losses/loss.py``: ``Loss.__call__`` reads
``y_pred``'s mask, ``apply_mask`` / ``reduce_weighted_values``; ``keras/src/metrics/
reduction_metrics.py``: ``MeanMetricWrapper.update_state``, for ``metrics`` and
``weighted_metrics`` alike; ``frontends.weighting`` has the arithmetic). A batch's figures are
then means over its positions holding data, a count only the graph knows (the mask may be
computed from the inputs by any layer), so the functions also return, after the figures,
each figure's denominator: ``fit`` and ``evaluate`` weigh the batches by them
(``sample_weights.batch_weights``), and the epoch's figures are those over every position
holding data, whatever the batch size. A model without such a mask gets exactly the
functions it got before (no extra output).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import symgraph as sg
from frontends import weighting
from symgraph import shapes as sh

__all__ = ["check_mask", "clone_output", "figures", "mask_of"]


def mask_of(output: sg.Variable) -> sg.Variable | None:
    """The padding mask (batch, length) the model output carries, or None."""
    return getattr(output, "sequence_mask", None)


def clone_output(output: sg.Variable, others: Sequence[sg.Variable],
                 substitute: Callable) -> tuple[sg.Variable, list[sg.Variable]]:
    """``sg.clone_replace`` of the model output and ``others`` with its mask rebuilt in the
    same clone (a mask computed after a dropout is the inference graph's own), carried by
    the rebuilt output as the layers carry theirs."""
    mask = mask_of(output)
    extra = [] if mask is None else [mask]
    rebuilt = sg.clone_replace([output, *extra, *others], substitute=substitute)
    out = rebuilt[0]
    if mask is not None:
        if rebuilt[1] is not mask and getattr(mask, "origin", None):
            rebuilt[1].origin = mask.origin  # (what errors name it by)
        out.sequence_mask = rebuilt[1]
    return out, rebuilt[1 + len(extra):]


def check_mask(model, output: sg.Variable) -> None:
    """The output's mask fits the loss's values (one per position of its dims), or an error
    naming the layer, the shapes and the loss, before any function is compiled: a mask on
    values that are not per position would weigh the wrong things, or nothing."""
    mask = mask_of(output)
    if mask is None:
        return
    layer = getattr(model.output, "layer", None)
    where = (f"layer {layer.name}'s output" if layer is not None else "the model's output") + \
        f" {sh.format_shape(output.shape)}"
    origin = getattr(mask, "origin", None) or "an Embedding(mask_zero=True)"
    try:
        terms, _ = model.loss.terms(output, model.target)
    except TypeError as err:
        raise TypeError(f"{where} carries a padding mask (from {origin}), which weighs the "
                        f"loss as Keras's does, but {err}") from None
    if not weighting.fits(mask, terms):
        raise sh.ShapeError(
            f"{where} carries a padding mask of shape {sh.format_shape(mask.shape)} (from "
            f"{origin}), but the loss {model.loss.name} gives values of shape "
            f"{sh.format_shape(terms.shape)}, not one per position of the mask: pool the "
            "positions first (GlobalAvgPool1D(data_format='channels_last'), a recurrent "
            "layer without return_sequences), or drop the mask")


def figures(model, output: sg.Variable, weights: sg.Variable | None = None
            ) -> tuple[list[sg.Variable], list[sg.Variable]]:
    """``[loss, *metrics, *weighted_metrics]`` of ``output`` against ``model.target``
    (``weights``: fit's and evaluate's sample weights, for the loss and the weighted
    metrics), and what each divides by when the output carries a padding mask (else [])."""
    mask = mask_of(output)
    if mask is None:
        return ([model._total_loss(output, weights)]
                + [_metric(model, m, output) for m in model.metrics]
                + [_metric(model, m, output, weights) for m in model.weighted_metrics]), []
    loss, counted = model.loss.parts(output, model.target, weights, mask)
    values = ([model._regularized(loss)]
              + [_metric(model, m, output, mask=mask) for m in model.metrics]
              + [_metric(model, m, output, weights, mask) for m in model.weighted_metrics])
    dtype = output.dtype
    denominators = ([counted]
                    + [_weight(model, m, mask, None, dtype) for m in model.metrics]
                    + [_weight(model, m, mask, weights, dtype) for m in model.weighted_metrics])
    return values, denominators


def loss(model, output: sg.Variable, weights: sg.Variable | None = None) -> sg.Variable:
    """The loss of ``output`` (masked by its padding mask, if any), without regulariser."""
    mask = mask_of(output)
    if weights is None and mask is None:
        return model.loss(output, model.target)
    return model.loss(output, model.target, weights, mask)


def _metric(model, metric, output: sg.Variable, weights=None, mask=None) -> sg.Variable:
    """``metric``'s node; a label metric skips the loss's ``ignore_index`` as it does."""
    ignore = model.loss.ignore_index if getattr(metric, "labels", False) else None
    if weights is None and mask is None:
        if ignore is not None:
            return metric(output, model.target, ignore)
        return metric(output, model.target)
    return metric(output, model.target, ignore, weights, mask=mask)


def _weight(model, metric, mask: sg.Variable, weights, dtype) -> sg.Variable:
    """What ``metric``'s mean divides by, up to a factor the same for every batch: the
    weights times the mask, summed over the positions whose label is not ignored."""
    w = weighting.combine(weights, mask, dtype, metric.name)
    ignore = model.loss.ignore_index
    target = model.target
    if ignore is not None and getattr(metric, "labels", False) and target.dtype.kind in "iu":
        kept = sg.cast(sg.not_equal(target, ignore), dtype)
        w = weighting.product(w, kept, metric.name)
    return sg.sum(w)
