"""``model.summary()``: the model as a table — layers, output shapes, parameter counts."""

from __future__ import annotations

import numpy as np

from symgraph.graph import toposort
from symgraph.shapes import format_shape


def summary_text(model) -> str:
    rows = [("Layer (type)", "Output shape", "Params")]
    for layer in model.layers:
        shape = format_shape(layer.output_shape) if layer.output_shape is not None else "?"
        rows.append((f"{layer.name} ({layer.kind})", shape, f"{layer.count_params():,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    rule = "-" * (sum(widths) + 4)

    def line(r):
        return f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}"

    trainable = sum(int(np.prod(w.shape, dtype=np.int64)) for w in model.trainable_weights)
    total = model.count_params()
    out = [f'Model "{model.name}"', rule, line(rows[0]), rule]
    out += [line(r) for r in rows[1:]]
    out += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}"]
    if model.compiled:
        counts = model.node_counts
        out.append(f"Training step: {counts['forward']} forward nodes, {counts['gradient']} "
                   f"gradient nodes, {counts['update']} update nodes (loss {model.loss.name}, "
                   f"optimizer {type(model.optimizer).__name__})")
    return "\n".join(out)


def node_counts(outputs: list, updates: list) -> dict[str, int]:
    """Nodes of the training step: forward (loss, metrics), gradient (made by ``sg.grad``)
    and update (the optimizer's and the layers' state arithmetic), before rewrites."""
    step = toposort(outputs + updates)
    forward = {id(n) for n in toposort(outputs)}
    grad = sum(1 for n in step if n.grad_call is not None)
    return {"forward": len(forward), "gradient": grad,
            "update": len(step) - len(forward) - grad}
