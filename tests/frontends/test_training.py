"""fit: history, validation, callbacks, early stopping (restores the best parameters), errors,
and Ctrl-C never leaving half an update."""

import os
import signal

import numpy as np
import pytest

import frontends as fe

L = fe.layers


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype("int64")
    return X, y


def _model(seed=0, lr=0.1, metrics=("accuracy",)):
    model = fe.Sequential([L.Dense(12, activation="tanh"), L.Dense(2)], input_shape=(6,),
                          seed=seed)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=lr),
                  metrics=list(metrics))
    return model


class Recorder(fe.Callback):
    def on_train_begin(self, logs):
        self.events, self.weights, self.logs = ["begin"], [], []

    def on_epoch_end(self, epoch, logs):
        self.events.append(epoch)
        self.weights.append(self.model.get_weights())
        self.logs.append(dict(logs))

    def on_train_end(self, logs):
        self.events.append("end")


def test_history_and_validation_logs_match_evaluate():
    X, y = _data()
    Xv, yv = _data(40, seed=1)
    model = _model()
    rec = Recorder()

    class Check(fe.Callback):
        def on_epoch_end(self, epoch, logs):  # validation is evaluated on this epoch's weights
            assert self.model.evaluate(Xv, yv) == pytest.approx(
                {"loss": logs["val_loss"], "accuracy": logs["val_accuracy"]})

    history = model.fit(X, y, batch_size=32, epochs=3, validation_data=(Xv, yv),
                        callbacks=[rec, Check()], progress=False, verbose=False)
    assert rec.events == ["begin", 0, 1, 2, "end"]
    assert history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "time"}
    assert all(len(v) == 3 for v in history.history.values())
    assert history.history["loss"][-1] < history.history["loss"][0]
    csv = history.to_csv().splitlines()
    assert csv[0] == "epoch,loss,accuracy,val_loss,val_accuracy,time" and len(csv) == 4


def test_training_loss_is_the_example_weighted_mean_of_the_steps():
    X, y = _data(n=50)
    model, twin = _model(), _model()
    history = model.fit(X, y, batch_size=16, epochs=1, shuffle=False, progress=False,
                        verbose=False)
    losses = [float(twin.train_function(X[i:i + 16], y[i:i + 16])[0]) for i in range(0, 50, 16)]
    sizes = [16, 16, 16, 2]
    assert history.history["loss"][0] == pytest.approx(np.dot(losses, sizes) / 50, rel=1e-6)


def test_early_stopping_restores_the_best_parameters():
    X, y = _data(n=40)
    Xv, yv = _data(n=200, seed=7)
    y = 1 - y  # noisy labels: validation loss gets worse while training loss falls
    model = _model(lr=0.5)
    rec = Recorder()
    history = model.fit(X, y, batch_size=8, epochs=30, validation_data=(Xv, yv),
                        early_stopping=3, callbacks=[rec], progress=False, verbose=False)
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) == best + 4 < 30  # stopped 3 epochs after the best
    for a, b in zip(model.get_weights(), rec.weights[best]):
        np.testing.assert_array_equal(a, b)


def test_callback_can_stop_training_and_lambda_callback():
    X, y = _data()
    model = _model()
    seen = []

    def stop_at_one(epoch, logs):
        seen.append(epoch)
        if epoch == 1:
            model.stop_training = True

    model.fit(X, y, epochs=10, callbacks=[fe.callbacks.LambdaCallback(on_epoch_end=stop_at_one)],
              progress=False, verbose=False)
    assert seen == [0, 1]


def test_shuffle_is_reproducible_from_the_model_seed():
    X, y = _data()
    a, b, c = _model(seed=2), _model(seed=2), _model(seed=2)
    for m in (a, b):
        m.fit(X, y, batch_size=16, epochs=2, progress=False, verbose=False)
    c.fit(X, y, batch_size=16, epochs=2, shuffle=False, progress=False, verbose=False)
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_verbose_prints_one_line_per_epoch_without_a_terminal(capsys):
    X, y = _data()
    _model().fit(X, y, epochs=2, validation_split=0.25, progress=True, verbose=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2 and "val_accuracy" in lines[0]


def test_fit_errors_change_nothing():
    X, y = _data()
    model = _model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="x has 120 examples, y has 119"):
        model.fit(X, y[:-1], progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.fit(X, y, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="input 'x'"):
        model.fit(X[:, :5], y, progress=False)
    with pytest.raises(TypeError, match="'y'"):
        model.fit(X, y.astype("float64") + 0.5, progress=False)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_diverging_loss_stops_with_a_clear_error():
    X, y = _data()
    X[3, 0] = np.nan
    with pytest.raises(FloatingPointError, match="training loss became nan in epoch 1"):
        _model().fit(X, y, epochs=2, progress=False, verbose=False)


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test (a process started in the background by a
    non-interactive shell begins with SIGINT ignored), the one before restored after."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _interrupting(model):
    """Make ``model``'s native epochs receive a SIGINT while they "run"; returns the list
    of chunk sizes they were called with."""
    native = model.train_function.epoch
    calls = []

    def interrupted_epoch(*arrays, **kwargs):
        calls.append(len(arrays[0]))
        os.kill(os.getpid(), signal.SIGINT)
        return native(*arrays, **kwargs)

    model.train_function.epoch = interrupted_epoch
    return calls


def test_ctrl_c_during_a_chunk_finishes_the_chunk_then_stops(python_sigint):
    X, y = _data(n=200)
    model, reference = _model(), _model()
    calls = _interrupting(model)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, batch_size=10, epochs=3, shuffle=False, progress=False, verbose=False)
    assert calls == [80]  # the first chunk (8 batches) ran whole, then the interrupt
    reference.train_function.epoch(X[:80], y[:80], batch_size=10)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored_and_a_custom_handler_is_called(python_sigint):
    """Held SIGINTs go to the handler that was installed: none for SIG_IGN (a process the
    shell started in the background), each one to a custom handler after its chunk."""
    X, y = _data(n=200)
    kw = dict(batch_size=10, epochs=2, shuffle=False, progress=False, verbose=False)
    reference = _model()
    reference.fit(X, y, **kw)
    seen = []

    def custom(signum, frame):
        seen.append(signum)

    for handler in (signal.SIG_IGN, custom):
        seen.clear()
        signal.signal(signal.SIGINT, handler)
        model = _model()
        calls = _interrupting(model)
        model.fit(X, y, **kw)  # every chunk gets a SIGINT; training runs to the end
        assert len(calls) > 2 and signal.getsignal(signal.SIGINT) is handler
        assert seen == ([] if handler is signal.SIG_IGN else [signal.SIGINT] * len(calls))
        for a, b in zip(model.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_friendly_inputs_and_target_shape_errors():
    X, y = _data(n=40)
    model = fe.Sequential([L.Dense(2)], input_shape=6, seed=0)  # an int input shape
    model.compile(loss="cross_entropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"cross_entropy takes targets of shape \(batch,\) "
                                         r"\(int64\), got y of shape \(40, 2\).*argmax"):
        model.fit(X, np.eye(2)[y], progress=False)
    twin = fe.Sequential([L.Dense(2)], input_shape=(6,), seed=0)
    twin.compile(loss="cross_entropy", optimizer="sgd")
    model.fit(X.tolist(), y.tolist(), shuffle=False, progress=False, verbose=False)  # lists
    twin.fit([X], y, shuffle=False, progress=False, verbose=False)  # [array] for one input
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
