"""Every picture symgraph draws, for the digits MLP and for the Hessian of the XOR loss.

The digits MLP is the main job's model (``frontends/datasets/digits_mlp.yaml``),
trained a few epochs with ``fe.callbacks.Diagnostics``; then:

* ``digits_ops``      -- every node of the training step: forward, gradient, updates,
                         clustered by layer (``sg.render(..., view="ops")``);
* ``digits_layers``   -- one box per layer, forward and gradient side by side;
* ``digits_kernels``  -- the llvm backend's fused kernels around the user's nodes;
* ``digits_profile``  -- the kernels shaded by their share of a step's time
                         (``model.profile`` on one minibatch);
* ``digits_curves``   -- learning curves (``history.plot``);
* ``digits_diagnostics`` -- per-layer norms, update/weight ratios, dead units,
                         activation histograms (``history.plot_diagnostics``);
* ``digits_weights``  -- the first layer's weights as 8x8 images (``fe.plot_weights``);
* ``digits_small_kernels`` / ``digits_small_profile`` -- the same two views of a
  64-32-10 MLP with plain SGD, small enough to read every kernel;
* ``xor_hessian_ops`` / ``xor_hessian_kernels`` -- the second-order graph of a 2-2-1
  tanh net's loss: ``sg.hessian`` is ``grad`` of ``grad``, ordinary nodes, so the
  picture shows the gradient of the gradient (``d²(loss)/d(w)²``) and what the compiler
  fused of it.

    python examples/visualize.py [--out DIR] [--format svg|png|pdf] [--epochs N] [--dpi 110]
                                 [--compress]

The README's pictures in ``docs/`` come from ``--format png --dpi 72 --compress``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import frontends as fe
import symgraph as sg
from frontends.spec import DEFAULT_SPEC, load_spec


def digits(out: str, fmt: str, epochs: int, dpi: int) -> list[str]:
    """The main job's MLP: trained with diagnostics, then every view of its training step."""
    model, cfg = load_spec(DEFAULT_SPEC, backend="llvm")
    data_cfg = dict(cfg["data"])
    data = fe.datasets.load(data_cfg.pop("name"), **data_cfg)
    (X, y), validation = data.train, data.validation
    history = model.fit(X, y, batch_size=cfg["fit"]["batch_size"], epochs=epochs,
                        validation_data=validation, shuffle=True, progress=False,
                        verbose=False, callbacks=[fe.callbacks.Diagnostics()])
    print(f"digits MLP: {epochs} epochs, validation accuracy "
          f"{history.history['val_accuracy'][-1]:.3f}")
    batch = cfg["fit"]["batch_size"]
    rows = model.profile(X[:batch], y[:batch], n=300)
    print(sg.format_profile(rows, limit=6))
    written = []
    for view in ("ops", "layers", "kernels", "profile"):
        path = os.path.join(out, f"digits_{view}.{fmt}")
        start = time.perf_counter()
        # the ops view of the whole step is ~600 nodes: draw it all (dot takes ~1 s)
        model.plot_graph(path, view=view, max_nodes=None, **_dpi(fmt, dpi))
        print(f"  {path}  ({time.perf_counter() - start:.2f} s)")
        written.append(path)
    return written + plots(out, history, model.layers[0])


def plots(out: str, history, layer) -> list[str]:
    """The learning curves, diagnostics and ``layer``'s weights as PNGs; none, with a note,
    without matplotlib (the optional extra ``[plot]``: the graph pictures need only dot)."""
    written = []
    for name, draw in (("curves", history.plot), ("diagnostics", history.plot_diagnostics),
                       # 64 inputs: one 8x8 tile per hidden unit
                       ("weights", lambda path: fe.plot_weights(layer, path))):
        path = os.path.join(out, f"digits_{name}.png")
        try:
            draw(path)
        except ImportError as err:
            print(f"  skipped the plots: {err}")
            break
        written.append(path)
    return written


def digits_small(out: str, fmt: str, dpi: int) -> list[str]:
    """The kernels and profile of a one-hidden-layer digits MLP with plain SGD: small
    enough to read every kernel (the README's pictures of those views)."""
    (X, y), _ = fe.datasets.load_digits()
    [X] = fe.datasets.standardize(X)
    model = fe.Sequential([fe.layers.Dense(32, activation="relu"), fe.layers.Dense(10)],
                          input_shape=(64,), dtype="float32", seed=0, name="digits_small")
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.1), backend="llvm")
    model.profile(X[:64], y[:64], n=2000)
    written = []
    for view in ("kernels", "profile"):
        path = os.path.join(out, f"digits_small_{view}.{fmt}")
        model.plot_graph(path, view=view, max_nodes=None, **_dpi(fmt, dpi))
        written.append(path)
    return written


def xor_hessian(out: str, fmt: str, dpi: int) -> list[str]:
    """The Hessian of the XOR loss of a 2-2-1 tanh net w.r.t. its output weights."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    Y = np.array([0, 1, 1, 0], dtype=np.float64)
    x = sg.tensor("x", ("n", 2))
    t = sg.tensor("t", ("n",))
    W = sg.shared(np.array([[1.0, -0.6], [0.8, 1.2]]), name="W")
    w = sg.shared(np.array([0.5, -1.0]), name="w")
    with sg.name_scope("hidden"):
        h = sg.tanh(x @ W)
    with sg.name_scope("output"):
        z = h @ w
    loss = sg.nn.binary_cross_entropy(z, t)
    loss.name = "loss"  # gradients are then labelled d(loss)/d(w)
    H = sg.hessian(loss, w)          # (2, 2): d/dw of d(loss)/dw
    f = sg.function([x, t], [loss, H], backend="llvm", name="xor_hessian")
    value, hess = f(X, Y)
    print(f"XOR loss {value:.4f}, Hessian w.r.t. w:\n{np.array2string(hess, precision=4)}")
    written = []
    for view in ("ops", "kernels"):
        path = os.path.join(out, f"xor_hessian_{view}.{fmt}")
        sg.render(f, path, view=view, max_nodes=None, **_dpi(fmt, dpi))
        written.append(path)
    return written


def compress_png(path: str) -> None:
    """Rewrite a PNG as a 64-colour palette image: drawings have few colours, so it looks
    the same at a third of the size (Pillow comes with matplotlib)."""
    from PIL import Image

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.NONE)
    palette.save(path, optimize=True)


def _dpi(fmt: str, dpi: int) -> dict:
    return {"dpi": dpi} if fmt == "png" else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="pictures", help="directory for the pictures")
    parser.add_argument("--format", default="svg", choices=("svg", "png", "pdf"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--dpi", type=int, default=110, help="resolution of PNG pictures")
    parser.add_argument("--compress", action="store_true",
                        help="PNGs as 64-colour palettes, ~3x smaller (the README's pictures)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    written = (digits(args.out, args.format, args.epochs, args.dpi)
               + digits_small(args.out, args.format, args.dpi)
               + xor_hessian(args.out, args.format, args.dpi))
    if args.compress:
        for path in written:
            if path.endswith(".png"):
                compress_png(path)
    print(f"wrote {len(written)} pictures to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
