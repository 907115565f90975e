"""Learning curves with matplotlib (the optional ``[plot]`` extra)."""

from __future__ import annotations


def plot_history(history, path) -> None:
    """One panel per quantity (loss, each metric), training and validation curves per epoch."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("learning curves need matplotlib: pip install 'symgraph[plot]'") \
            from err
    names = [k for k in history.history if not k.startswith("val_") and k != "time"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    epochs = [e + 1 for e in history.epoch]
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, history.history[name], label=f"training {name}")
        if f"val_{name}" in history.history:
            ax.plot(epochs, history.history[f"val_{name}"], label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        if name == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
