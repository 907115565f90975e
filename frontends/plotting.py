"""Pictures of training with matplotlib (the optional ``[plot]`` extra).

* ``plot_history``: learning curves (``history.plot(path)``);
* ``plot_diagnostics``: the ``Diagnostics`` callback's per-layer records
  (``history.plot_diagnostics(path)``);
* ``plot_weights``: a layer's weights as image tiles, one per hidden unit
  (``fe.plot_weights(model.layers[0], "w.png")``: the 8x8 strokes first-layer
  units of a digits MLP respond to).

Every function writes one image file of a fixed size (no tight bounding box)
and closes its figure; matplotlib runs on the Agg backend, no display needed.
"""

from __future__ import annotations

import math

import numpy as np

import symgraph as sg

#: the update/weight ratio band drawn as healthy (Karpathy's rule of thumb: about 1e-3)
HEALTHY_UPDATE_RATIO = (1e-4, 1e-2)
#: dots per inch of the diagnostics and weights pictures
DPI = 100
#: inches per weight tile (plot_weights)
TILE_INCHES = 0.6


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'symgraph[plot]'") from err
    return plt


def plot_history(history, path) -> None:
    """One panel per quantity (loss, each metric), training and validation curves per epoch."""
    plt = _pyplot()
    names = [k for k in history.history if not k.startswith("val_") and k != "time"]
    if not names:
        raise ValueError("history.plot: nothing recorded yet (train with model.fit first)")
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    epochs = [e + 1 for e in history.epoch]
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, history.history[name], label=f"training {name}")
        if f"val_{name}" in history.history:
            ax.plot(epochs, history.history[f"val_{name}"], label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        if name == "loss" and _positive(history.history[name]):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- diagnostics


def plot_diagnostics(history, path) -> None:
    """Weight norms, gradient norms, update/weight ratios (healthy band shaded), dead and
    saturated fractions per epoch, and the last probed epoch's activation histograms.

    Size: 16 x 3.2 inches per row at ``DPI``; row 1 the four curves, then four histograms
    per row."""
    epochs_done = getattr(history, "diagnostics_epoch", None)
    if not epochs_done:
        raise ValueError("plot_diagnostics: the history has no diagnostics; train with "
                         "callbacks=[fe.callbacks.Diagnostics()]")
    plt = _pyplot()
    records = history.diagnostics
    layers_with_histogram = [name for name, stats in records.items() if "histogram" in stats]
    histogram_rows = math.ceil(len(layers_with_histogram) / 4)
    rows = 1 + histogram_rows
    fig, axes = plt.subplots(rows, 4, figsize=(16, 3.2 * rows), squeeze=False)
    x = [e + 1 for e in epochs_done]
    marker = "o" if len(x) <= 30 else None

    panels = (("weight_norm", "weight norm ||W||"), ("grad_norm", "gradient norm ||dL/dW||"),
              ("update_ratio", "update / weight ||dW|| / ||W||"))
    for ax, (stat, title) in zip(axes[0], panels):
        drawn = []
        for layer, stats in records.items():
            for key, values in stats.items():
                if key.split("/", 1)[0] == stat:
                    ax.plot(x, values, marker=marker, ms=3,
                            label=f"{layer}/{key.split('/', 1)[1]}")
                    drawn += list(values)
        if stat == "update_ratio":
            low, high = HEALTHY_UPDATE_RATIO
            ax.axhspan(low, high, color="tab:green", alpha=0.12, label="healthy band")
            ax.axhline(1e-3, color="tab:green", ls="--", lw=1)
            drawn += [low, high]
        if _positive(drawn):
            ax.set_yscale("log")
        _finish(ax, title)

    ax = axes[0][3]
    any_fraction = False
    for layer, stats in records.items():
        for stat, label in (("dead_fraction", "dead"), ("saturated_fraction", "saturated")):
            if stat in stats:
                ax.plot(x, stats[stat], marker=marker, ms=3, label=f"{layer} {label}")
                any_fraction = True
    ax.set_ylim(-0.03, 1.03)
    if not any_fraction:
        ax.text(0.5, 0.5, "no ReLU, sigmoid or tanh layers", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    _finish(ax, "dead ReLU units / saturated activations (fraction)", legend=any_fraction)

    hist_axes = [ax for row in axes[1:] for ax in row]
    for ax, layer in zip(hist_axes, layers_with_histogram):
        counts = np.asarray(records[layer]["histogram"][-1], np.float64)
        edges = np.asarray(records[layer]["histogram_edges"][-1], np.float64)
        if edges[-1] <= edges[0]:  # every activation equal: a visible bar around the value
            edges = edges[0] + np.linspace(-0.5, 0.5, len(edges))
        ax.stairs(counts, edges, fill=True, alpha=0.8)
        ax.set_title(f"{layer}: activations, epoch {x[-1]}", fontsize=9)
        ax.set_xlabel("value")
        ax.grid(alpha=0.3)
    for ax in hist_axes[len(layers_with_histogram):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _positive(values) -> bool:
    a = np.asarray(values, np.float64).ravel()
    return bool(np.any(np.isfinite(a) & (a > 0)))


def _finish(ax, title: str, legend: bool = True) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


# --------------------------------------------------------------------------- weights


def weight_tiles(weights: np.ndarray, shape: tuple[int, int] | None = None,
                 name: str = "weights") -> np.ndarray:
    """The mosaic ``plot_weights`` draws: one ``shape`` tile per unit, row-major on a
    ``ceil(sqrt(units))``-wide grid, NaN between tiles and in unused cells.

    ``weights`` is a kernel ``(inputs, units)`` (unit ``j``'s tile is column ``j`` reshaped)
    or a one-channel convolution kernel ``(filters, 1, kh, kw)``.
    """
    w = np.asarray(weights, np.float64)
    if w.ndim == 4:
        if w.shape[1] != 1:
            raise ValueError(f"plot_weights: {name} is a convolution kernel with {w.shape[1]} "
                             "input channels; tiles can show one-channel kernels only")
        tiles = w[:, 0]
        if shape is not None and tuple(shape) != tiles.shape[1:]:
            raise ValueError(f"plot_weights: {name}'s kernels are {tiles.shape[1:]}, "
                             f"shape={tuple(shape)}")
    elif w.ndim == 2:
        inputs = w.shape[0]
        if shape is None:
            side = math.isqrt(inputs)
            if side * side != inputs:
                raise ValueError(f"plot_weights: {name} has {inputs} inputs per unit, not a "
                                 f"square number; pass shape=(height, width) with "
                                 f"height * width = {inputs}")
            shape = (side, side)
        shape = tuple(int(d) for d in shape)
        if len(shape) != 2 or shape[0] * shape[1] != inputs or min(shape) < 1:
            raise ValueError(f"plot_weights: shape={shape} does not hold {name}'s {inputs} "
                             "inputs per unit (height * width must equal it)")
        tiles = w.T.reshape(-1, *shape)  # unit j: column j as an image
    else:
        raise ValueError(f"plot_weights: {name} has shape {w.shape}; expected a kernel "
                         "(inputs, units) or a one-channel conv kernel (filters, 1, kh, kw)")
    units, h, wd = tiles.shape
    if units == 0:
        raise ValueError(f"plot_weights: {name} has no units")
    cols = math.ceil(math.sqrt(units))
    rows = math.ceil(units / cols)
    padded = np.full((rows * cols, h + 1, wd + 1), np.nan)  # a NaN gap right and below
    padded[:units, :h, :wd] = tiles
    grid = padded.reshape(rows, cols, h + 1, wd + 1).transpose(0, 2, 1, 3)
    return grid.reshape(rows * (h + 1), cols * (wd + 1))[:-1, :-1]


def plot_weights(layer, path, *, shape: tuple[int, int] | None = None) -> None:
    """Draw a layer's weights as images, one tile per unit, in a colour map symmetric
    around 0 (red positive, blue negative): first-layer units of an image model show
    the strokes they detect.

    ``layer`` is a layer (its kernel: the first weight of two or more dims), a shared
    variable or an array; ``shape`` is a tile's ``(height, width)``, inferred when the
    number of inputs is a square (64 -> 8x8).

    >>> fe.plot_weights(model.layers[0], "w.png")     # digits: 8x8 tiles
    """
    name, weights = _kernel_of(layer)
    mosaic = weight_tiles(weights, shape, name)
    plt = _pyplot()
    limit = float(np.nanmax(np.abs(mosaic))) or 1.0
    height, width = mosaic.shape
    scale = TILE_INCHES / 9.0  # inches per pixel of the mosaic: an 8x8 tile plus gap
    fig_w = max(3.0, width * scale) + 1.2  # room for the colour bar
    fig_h = max(2.0, height * scale) + 0.7  # and the title
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0.02, 0.02, 1 - 1.2 / fig_w - 0.02, 1 - 0.7 / fig_h - 0.02))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")  # the gaps between tiles
    image = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-limit, vmax=limit,
                      interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    units = int(np.asarray(weights).shape[-1 if np.ndim(weights) == 2 else 0])
    ax.set_title(f"{name}: {units} units", fontsize=10)
    bar_ax = fig.add_axes((1 - 1.0 / fig_w, 0.1, 0.25 / fig_w, 0.8))
    fig.colorbar(image, cax=bar_ax)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _kernel_of(layer) -> tuple[str, np.ndarray]:
    if isinstance(layer, np.ndarray):
        return "weights", layer
    if isinstance(layer, sg.SharedVariable):
        return layer.name or "weights", layer.get_value()
    weights = getattr(layer, "weights", None)
    if weights is None:
        raise TypeError(f"plot_weights takes a layer, a shared variable or an array, got "
                        f"{type(layer).__name__}")
    for var in weights:
        if var.ndim >= 2:
            return var.name, var.get_value()
    raise ValueError(f"plot_weights: layer {getattr(layer, 'name', layer)} has no kernel "
                     "(a weight of two or more dims)")
