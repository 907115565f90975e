"""The TensorBoard callback: event files read back with TensorBoard's own reader
(``EventAccumulator``) hold the History's values, the learning rate of the schedule's
closed form, and histograms of every weight; a run per directory; a clear error without
the writer package."""

import math
import os
import sys

import numpy as np
import pytest

import frontends as fe
from frontends.callbacks import TensorBoard

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

L = fe.layers


def _data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype("float32")
    y = (X[:, 0] - X[:, 2] > 0).astype("int64") + (X[:, 1] > 1).astype("int64")
    return X, y


def _model(optimizer=None, backend="numpy"):
    model = fe.Sequential([L.Dense(7, activation="tanh"), L.Dense(3)], input_shape=(5,),
                          seed=0)
    model.compile(loss="cross_entropy", optimizer=optimizer or fe.optimizers.SGD(lr=0.2),
                  metrics=["accuracy"], backend=backend)
    return model


def _read(path: str):
    reader = event_accumulator.EventAccumulator(
        path, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0})
    reader.Reload()
    return reader


def _scalars(reader, tag):
    events = reader.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


class WeightRecorder(fe.Callback):
    """The weights at every epoch end, recorded apart from the TensorBoard callback."""

    def on_train_begin(self, logs):
        self.weights = []

    def on_epoch_end(self, epoch, logs):
        self.weights.append(self.model.get_weights())


def test_scalars_equal_the_history(tmp_path, backend):
    X, y = _data()
    Xv, yv = _data(30, seed=1)
    model = _model(backend=backend)
    board = TensorBoard(tmp_path / "logs", histograms=False)
    history = model.fit(X, y, batch_size=16, epochs=3, validation_data=(Xv, yv),
                        callbacks=[board], progress=False, verbose=False)
    assert sorted(os.listdir(tmp_path / "logs")) == [os.path.basename(board.run_dir)]
    assert sorted(os.listdir(board.run_dir)) == ["train", "validation"]
    train = _read(os.path.join(board.run_dir, "train"))
    validation = _read(os.path.join(board.run_dir, "validation"))
    assert sorted(train.Tags()["scalars"]) == ["epoch_accuracy", "epoch_learning_rate",
                                                "epoch_loss", "epoch_time"]
    assert sorted(validation.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss"]
    assert train.Tags()["histograms"] == []
    for key, values in history.history.items():
        reader, tag = ((validation, key[4:]) if key.startswith("val_") else (train, key))
        steps, logged = _scalars(reader, f"epoch_{tag}")
        assert steps == [0, 1, 2], key
        # event files hold float32 scalars (TensorBoard's simple_value)
        assert logged == [float(np.float32(v)) for v in values], key


@pytest.mark.parametrize("schedule, expected", [
    # in-graph: halve every 6 steps = every epoch (90 examples / 16 a batch); the rate after
    # epoch e is the next step's, 0.2 * 0.5 ** (e + 1)
    (fe.schedules.Step(drop=0.5, every=6), [0.1, 0.05, 0.025]),
    # host-side: no epoch improves on the first by 1e9 (the first improves on inf), so
    # from the second epoch on each epoch halves the rate before the callback sees it
    (fe.schedules.ReduceOnPlateau(factor=0.5, patience=1, monitor="loss", min_delta=1e9),
     [0.2, 0.1, 0.05]),
])
def test_learning_rate_follows_the_schedule(tmp_path, schedule, expected):
    X, y = _data()
    assert math.ceil(len(X) / 16) == 6
    model = _model(fe.optimizers.SGD(lr=0.2, schedule=schedule))
    board = TensorBoard(tmp_path, histograms=False)
    model.fit(X, y, batch_size=16, epochs=3, callbacks=[board], progress=False, verbose=False)
    steps, rates = _scalars(_read(os.path.join(board.run_dir, "train")),
                            "epoch_learning_rate")
    assert steps == [0, 1, 2]
    assert rates == [float(np.float32(r)) for r in expected]


def test_weight_histograms_describe_each_epochs_weights(tmp_path):
    X, y = _data()
    model = _model(fe.optimizers.Adam(lr=0.05))
    recorder = WeightRecorder()
    board = TensorBoard(tmp_path, histogram_every=2)
    model.fit(X, y, batch_size=16, epochs=3, callbacks=[recorder, board], progress=False,
              verbose=False)
    reader = _read(os.path.join(board.run_dir, "train"))
    names = [w.name for w in model.weights]
    assert {f"weights/{n}" for n in names} <= set(reader.Tags()["histograms"])
    for i, name in enumerate(names):
        events = reader.Histograms(f"weights/{name}")
        assert [e.step for e in events] == [0, 2]  # every second epoch, from the first
        for event in events:
            weight = recorder.weights[event.step][i].astype(np.float64)
            hist = event.histogram_value
            assert hist.num == weight.size
            assert sum(hist.bucket) == weight.size
            assert (hist.min, hist.max) == (weight.min(), weight.max())
            assert hist.sum == pytest.approx(weight.sum(), rel=1e-12, abs=1e-12)
            assert hist.sum_squares == pytest.approx((weight ** 2).sum(), rel=1e-12)
    # the weights moved between the logged epochs, and the histograms saw it
    first = reader.Histograms(f"weights/{names[0]}")
    assert first[0].histogram_value.sum != first[1].histogram_value.sum


def _torch_gradients(weights, X, y):
    """The mean cross-entropy gradient of the tanh MLP of ``_model`` (float64, torch)."""
    torch = pytest.importorskip("torch")
    W1, b1, W2, b2 = (torch.tensor(w, dtype=torch.float64, requires_grad=True)
                      for w in weights)
    logits = torch.tanh(torch.tensor(X, dtype=torch.float64) @ W1 + b1) @ W2 + b2
    torch.nn.functional.cross_entropy(logits, torch.tensor(y)).backward()
    return [t.grad.numpy() for t in (W1, b1, W2, b2)]


def test_gradient_histograms_describe_the_gradient_on_the_probe_batch(tmp_path, backend):
    X, y = _data()  # 90 examples: the probe batch (the first 256) is all of them
    model = _model(fe.optimizers.SGD(lr=0.5), backend=backend)
    recorder = WeightRecorder()
    board = TensorBoard(tmp_path)
    model.fit(X, y, batch_size=16, epochs=2, callbacks=[recorder, board], progress=False,
              verbose=False)
    reader = _read(os.path.join(board.run_dir, "train"))
    names = [w.name for w in model.trainable_weights]
    assert sorted(t for t in reader.Tags()["histograms"] if t.startswith("gradients/")) == \
        sorted(f"gradients/{n}" for n in names)
    for i, name in enumerate(names):
        events = reader.Histograms(f"gradients/{name}")
        assert [e.step for e in events] == [0, 1]
        for event in events:
            expected = _torch_gradients(recorder.weights[event.step], X, y)[i]
            hist = event.histogram_value
            assert hist.num == expected.size == sum(hist.bucket)
            scale = np.abs(expected).max()
            assert hist.min == pytest.approx(expected.min(), abs=1e-5 * scale)
            assert hist.max == pytest.approx(expected.max(), abs=1e-5 * scale)
            assert hist.sum_squares == pytest.approx((expected ** 2).sum(), rel=1e-4)


def test_non_finite_entries_are_left_out_with_a_warning(tmp_path):
    model = _model()
    weights = model.get_weights()
    weights[1][2] = np.nan  # dense_1/b
    model.set_weights(weights)
    board = TensorBoard(tmp_path)
    board.set_model(model)  # no fit, so no training data: weights only
    board.on_train_begin({})
    with pytest.warns(RuntimeWarning, match=r"weights/dense_1/b has 1 non-finite entries of 7"):
        board.on_epoch_end(0, {"loss": 1.0})
    board.on_train_end({})
    hist = _read(os.path.join(board.run_dir, "train")).Histograms("weights/dense_1/b")
    finite = np.delete(weights[1], 2).astype(np.float64)
    assert hist[0].histogram_value.num == 6
    assert hist[0].histogram_value.sum == pytest.approx(finite.sum(), rel=1e-12, abs=1e-15)


def test_runs_get_their_own_directories_and_a_second_fit_continues_a_run(tmp_path):
    X, y = _data()
    boards = [TensorBoard(tmp_path, histograms=False) for _ in range(2)]
    model = _model()
    for board in boards:
        model.fit(X, y, batch_size=16, epochs=2, callbacks=[board], progress=False,
                  verbose=False)
    assert boards[0].run_dir != boards[1].run_dir
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(b.run_dir) for b in boards)
    # the same callback again, resuming: the same run, epochs 2 and 3 after 0 and 1
    history = model.fit(X, y, batch_size=16, epochs=4, initial_epoch=2, callbacks=[boards[1]],
                        progress=False, verbose=False)
    steps, losses = _scalars(_read(os.path.join(boards[1].run_dir, "train")), "epoch_loss")
    assert steps == [0, 1, 2, 3]
    assert losses[2:] == [float(np.float32(v)) for v in history.history["loss"]]


def test_missing_writer_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'symgraph\[tensorboard\]'"):
        TensorBoard(tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kwargs, error, message", [
    ({"histogram_every": 0}, ValueError, "histogram_every must be a positive integer"),
    ({"histogram_every": 1.5}, ValueError, "histogram_every"),
    ({"histograms": "yes"}, TypeError, "histograms must be True or False"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        TensorBoard(tmp_path, **kwargs)


def test_bad_log_dir_is_named(tmp_path):
    with pytest.raises(TypeError, match="log_dir must be a directory path"):
        TensorBoard(3)
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match=r"log_dir '.*f' is a file, not a directory"):
        TensorBoard(tmp_path / "f")
