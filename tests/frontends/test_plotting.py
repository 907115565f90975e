"""Pictures: learning curves, diagnostics and weight tiles are written as PNG files of the
expected size that are not blank; the tile mosaic against direct indexing; the errors."""

import sys

import numpy as np
import pytest

import frontends as fe
from frontends import plotting
from frontends.callbacks import Diagnostics, History

mpimg = pytest.importorskip("matplotlib.image")
L = fe.layers


def _read(path) -> np.ndarray:
    image = mpimg.imread(str(path))
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    rgb = image[..., :3]
    assert rgb.var() > 0  # not blank
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10  # more than one colour
    return rgb


def _trained(epochs=3, callbacks=()):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 16)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    model = fe.Sequential([L.Dense(8, activation="relu"), L.Dense(6, activation="tanh"),
                           L.Dense(4, activation="sigmoid"), L.Dense(2)], input_shape=(16,),
                          seed=0)
    model.compile(optimizer=fe.optimizers.SGD(lr=0.1), metrics=["accuracy"], backend="numpy")
    history = model.fit(X, y, epochs=epochs, batch_size=16, validation_split=0.2,
                        callbacks=list(callbacks), progress=False, verbose=False)
    return model, history


def test_history_plot_writes_learning_curves(tmp_path):
    _, history = _trained()
    history.plot(tmp_path / "curves.png")
    rgb = _read(tmp_path / "curves.png")
    assert rgb.shape[:2] == (374, 990)  # two panels (loss, accuracy): 9 x 3.4 inches, 110 dpi


def test_plot_diagnostics_writes_every_panel(tmp_path):
    _, history = _trained(callbacks=[Diagnostics()])
    history.plot_diagnostics(tmp_path / "diag.png")
    rgb = _read(tmp_path / "diag.png")
    # a row of curves and one row of four histograms: 16 x 6.4 inches at 100 dpi
    assert rgb.shape[:2] == (640, 1600)
    # the healthy update-ratio band is shaded green somewhere in the third panel
    band = rgb[:320, 800:1200]
    assert ((band[..., 1] > band[..., 0] + 0.05) & (band[..., 1] > band[..., 2])).any()


def test_plot_diagnostics_without_records_is_a_clear_error(tmp_path):
    _, history = _trained(epochs=1)
    with pytest.raises(ValueError, match=r"callbacks=\[fe.callbacks.Diagnostics\(\)\]"):
        history.plot_diagnostics(tmp_path / "diag.png")
    with pytest.raises(ValueError, match="nothing recorded"):
        History().plot(tmp_path / "curves.png")


def test_weight_tiles_are_the_units_columns():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(64, 10))
    mosaic = plotting.weight_tiles(W)
    cols, rows = 4, 3  # ceil(sqrt(10)) wide, ceil(10 / 4) high
    assert mosaic.shape == (rows * 9 - 1, cols * 9 - 1)
    for j in range(10):
        r, c = divmod(j, cols)
        np.testing.assert_array_equal(mosaic[r * 9:r * 9 + 8, c * 9:c * 9 + 8],
                                      W[:, j].reshape(8, 8))
    assert np.isnan(mosaic[8, :]).all() and np.isnan(mosaic[:, 8]).all()  # gaps
    assert np.isnan(mosaic[18:, 18:]).all()  # the two unused cells of the last row
    assert np.isfinite(mosaic).sum() == W.size
    # explicit tile shape and one-channel convolution kernels
    tall = plotting.weight_tiles(rng.normal(size=(12, 2)), shape=(4, 3))
    assert tall.shape == (4, 3 * 2 + 1)
    kernels = rng.normal(size=(4, 1, 3, 3))
    np.testing.assert_array_equal(plotting.weight_tiles(kernels)[4:7, 0:3], kernels[2, 0])


def test_plot_weights_digits_tiles_in_a_symmetric_colour_map(tmp_path):
    model = fe.Sequential([L.Dense(16, activation="relu"), L.Dense(10)], input_shape=(64,))
    W = np.full((64, 16), 0.5, "float32")
    W[:, 8:] = -0.5
    W[:4, :] = 0.0
    model.layers[0].W.set_value(W)
    plotting.plot_weights(model.layers[0], tmp_path / "w.png")
    rgb = _read(tmp_path / "w.png")
    # a 4 x 4 grid of 8x8 tiles: 35 x 35 mosaic pixels at TILE_INCHES / 9 inches each
    side = 35 * plotting.TILE_INCHES / 9
    assert rgb.shape[:2] == (round((max(2.0, side) + 0.7) * 100),
                             round((max(3.0, side) + 1.2) * 100))
    tiles = rgb[:, :rgb.shape[1] - 120]  # without the colour bar
    red = tiles[..., 0] - tiles[..., 2] > 0.25
    blue = tiles[..., 2] - tiles[..., 0] > 0.25
    assert red.sum() > 1000 and blue.sum() > 1000  # +0.5 and -0.5 units, equally strong
    assert abs(int(red.sum()) - int(blue.sum())) < 0.1 * red.sum()

    # positive weights only: no blue at all (0 is white, not the low end of the map)
    model.layers[0].W.set_value(np.abs(W) + 0.1)
    plotting.plot_weights(model.layers[0].W, tmp_path / "pos.png")
    tiles = _read(tmp_path / "pos.png")[:, :rgb.shape[1] - 120]
    assert not (tiles[..., 2] - tiles[..., 0] > 0.05).any()
    assert (tiles[..., 0] - tiles[..., 2] > 0.25).sum() > 1000


def test_plot_weights_errors(tmp_path):
    with pytest.raises(ValueError, match=r"60 inputs per unit, not a square number; pass "
                                         r"shape=\(height, width\)"):
        plotting.plot_weights(np.zeros((60, 3)), tmp_path / "w.png")
    with pytest.raises(ValueError, match=r"shape=\(7, 8\) does not hold"):
        plotting.plot_weights(np.zeros((60, 3)), tmp_path / "w.png", shape=(7, 8))
    with pytest.raises(ValueError, match="3 input channels"):
        plotting.plot_weights(np.zeros((4, 3, 3, 3)), tmp_path / "w.png")
    with pytest.raises(ValueError, match="has no kernel"):
        plotting.plot_weights(L.BatchNorm(), tmp_path / "w.png")
    with pytest.raises(TypeError, match="takes a layer, a shared variable or an array"):
        plotting.plot_weights("dense_1", tmp_path / "w.png")
    plotting.plot_weights(np.ones((60, 3)) * [[-1.0, 0.0, 1.0]], tmp_path / "ok.png",
                          shape=(6, 10))
    _read(tmp_path / "ok.png")


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    _, history = _trained(epochs=1, callbacks=[Diagnostics()])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for draw in (lambda: history.plot(tmp_path / "a.png"),
                 lambda: history.plot_diagnostics(tmp_path / "b.png"),
                 lambda: plotting.plot_weights(np.ones((4, 2)), tmp_path / "c.png")):
        with pytest.raises(ImportError, match=r"pip install 'symgraph\[plot\]'"):
            draw()
    assert not list(tmp_path.iterdir())
