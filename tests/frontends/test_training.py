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


def test_fit_in_a_loop_shuffles_as_one_fit_and_initialize_starts_over():
    """fit(epochs=1) three times drew the same order every time; it now goes on with the
    model's stream, so it is one fit(epochs=3), bit for bit. initialize (a fresh model)
    starts the stream again."""
    X, y = _data()
    whole, looped = _model(seed=3), _model(seed=3)
    whole.fit(X, y, batch_size=16, epochs=3, progress=False, verbose=False)
    for _ in range(3):
        looped.fit(X, y, batch_size=16, epochs=1, progress=False, verbose=False)
    for a, b in zip(whole.get_weights(), looped.get_weights()):
        np.testing.assert_array_equal(a, b)
    once = _model(seed=3)
    once.fit(X, y, batch_size=16, epochs=1, progress=False, verbose=False)
    looped.initialize()
    looped.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.1),
                   metrics=["accuracy"])
    looped.fit(X, y, batch_size=16, epochs=1, progress=False, verbose=False)
    for a, b in zip(once.get_weights(), looped.get_weights()):
        np.testing.assert_array_equal(a, b)


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
    with pytest.raises(ValueError, match=r"shuffle must be True or False, got 'yes'"):
        model.fit(X, y, shuffle="yes", progress=False)
    with pytest.raises(ValueError, match=r"got the class History; pass History\(...\)"):
        model.fit(X, y, callbacks=[fe.callbacks.History], progress=False)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_callbacks_given_as_a_generator_all_run():
    """fit reads its callbacks once (a generator read twice ran none of them)."""
    X, y = _data()
    seen = []

    class Seen(fe.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(epoch)
    _model().fit(X, y, epochs=2, callbacks=(cb for cb in [Seen()]), progress=False,
                 verbose=False)
    assert seen == [0, 1]


def test_diverging_loss_stops_with_a_clear_error():
    X, y = _data()  # clean data (NaN data is refused before training): a huge learning rate
    model = fe.Sequential([L.Dense(2)], input_shape=(6,), seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=1e30))
    with pytest.raises(FloatingPointError, match="training loss became (nan|inf) in epoch 1"):
        model.fit(X * 1e10, y, epochs=2, progress=False, verbose=False)


def test_diverged_epoch_restores_the_parameters_and_optimizer_state():
    """Nothing is lost: the epoch whose loss became NaN/inf is undone -- weights and
    optimizer state back at its start (the previous epoch's end), epochs before it kept."""
    X, y = _data()
    model = fe.Sequential([L.Dense(8, activation="relu"), L.Dense(2)], input_shape=(6,),
                          seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=0.1, momentum=0.9))
    model.fit(X, y, epochs=2, batch_size=16, progress=False, verbose=False)
    state = [model.get_weights(), [v.get_value() for v in model.optimizer.variables()]]
    assert any(np.abs(v).max() > 0 for v in state[1][2:])  # the velocities are not zero
    with pytest.raises(fe.errors.TrainingDiverged, match="back at the start of epoch 1") as err:
        model.fit(X * 1e15, y, epochs=3, batch_size=16, progress=False, verbose=False)
    assert err.value.epoch == 0 and isinstance(err.value, FloatingPointError)
    after = [model.get_weights(), [v.get_value() for v in model.optimizer.variables()]]
    for a, b in zip(state[0] + state[1], after[0] + after[1]):
        np.testing.assert_array_equal(a, b)


def test_a_model_over_the_undo_size_is_not_copied_and_the_error_says_so(monkeypatch):
    """Above UNDO_BYTES fit keeps no copy per epoch (it would double the model's memory):
    the diverged epoch's values stay, and the message does not claim otherwise."""
    from frontends import training
    monkeypatch.setattr(training, "UNDO_BYTES", 100)
    X, y = _data()
    model = fe.Sequential([L.Dense(8, activation="relu"), L.Dense(2)], input_shape=(6,),
                          seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=0.1, momentum=0.9))
    with pytest.raises(fe.errors.TrainingDiverged, match=r"The parameters hold that epoch's "
                                                         r"values \(a model over 0 MiB") as err:
        model.fit(X * 1e15, y, epochs=2, batch_size=16, progress=False, verbose=False)
    assert not err.value.restored
    assert not all(np.isfinite(w).all() for w in model.get_weights())


def test_many_quick_epochs_in_one_fit():
    """A small data set trained for thousands of epochs (tutorials do): the batches per
    native call stop growing at an epoch's, where they overflowed a float after ~511."""
    X, y = _data(n=64)
    model = _model()
    history = model.fit(X, y, epochs=1500, batch_size=64, progress=False, verbose=False)
    assert len(history.epoch) == 1500
    assert np.isfinite(history.history["loss"]).all()


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


# ------------------------------------------------------------------ checks before training


def _state(model):
    return model.get_weights() + [v.get_value() for v in model.optimizer.variables()]


def _adam_model():
    model = fe.Sequential([L.Dense(12, activation="tanh"), L.Dense(3)], input_shape=(6,), seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=1e-2),
                  metrics=["accuracy"])
    return model


def _with(array, index, value):
    array = array.copy()
    array[index] = value
    return array


X0, Y0 = _data(n=120)


@pytest.mark.parametrize("args, kwargs, message", [
    ((X0[:, :5], Y0), {}, r"^fit: input 'x' expects shape \(batch, 6\), got \(120, 5\)$"),
    ((X0, _with(Y0, 70, 3)), {},
     r"^fit: label 3 at row 70 of y is out of range.*\(batch, 3\) scores 3 classes.*\[0, 3\)"),
    ((X0, _with(Y0, 70, -1)), {}, r"^fit: label -1 at row 70 of y is out of range"),
    ((_with(X0, (5, 3), np.nan), Y0), {}, r"^fit: input 'x' holds NaN at row 5, column 3; "
                                          "nothing was trained"),
    ((_with(X0, (100, 0), -np.inf), Y0), {"validation_split": 0.25},
     r"^fit: input 'x' holds -inf at row 100, column 0"),  # the user's row, not the split's
    ((X0, Y0), {"validation_data": (X0[:10, :4], Y0[:10])},
     r"^fit \(validation_data\): input 'x' expects shape \(batch, 6\), got \(10, 4\)"),
    ((X0, Y0), {"validation_data": (X0[:10], _with(Y0[:10], 2, 7))},
     r"^fit \(validation_data\): label 7 at row 2 of y"),
    ((X0, Y0), {"validation_data": (_with(X0[:10], (4, 1), np.inf), Y0[:10])},
     r"^fit \(validation_data\): input 'x' holds inf at row 4, column 1"),
    ((X0, Y0), {"validation_data": (X0[:0], Y0[:0])}, "validation_data has no examples"),
    ((X0[:5], Y0[:5]), {"validation_split": 0.05},
     r"validation_split=0.05 of 5 examples rounds to 0 validation examples"),
])
def test_fit_checks_all_its_data_before_the_first_step(args, kwargs, message):
    model = _adam_model()
    model.fit(X0, Y0, epochs=1, progress=False, verbose=False)  # optimizer state is non-zero
    before = _state(model)
    with pytest.raises(fe.errors.UserInputError, match=message):
        model.fit(*args, epochs=2, progress=False, verbose=False, **kwargs)
    for a, b in zip(before, _state(model)):
        np.testing.assert_array_equal(a, b)


def test_fit_checks_float_targets_for_nan_and_label_range_honours_ignore_index():
    X, _ = _data(n=40)
    model = fe.Sequential([L.Dense(2)], input_shape=(6,), seed=0)
    model.compile(loss="mse", optimizer="sgd")
    before = model.get_weights()
    with pytest.raises(fe.errors.UserInputError, match=r"^fit: y holds NaN at row 9, column 1"):
        model.fit(X, _with(np.zeros((40, 2), "float32"), (9, 1), np.nan), progress=False)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    ignoring = fe.Sequential([L.Dense(2)], input_shape=(6,), seed=0)
    ignoring.compile(loss=fe.losses.CrossEntropy(ignore_index=-100), optimizer="sgd")
    y = np.where(np.arange(40) % 5 == 0, -100, np.arange(40) % 2)
    ignoring.fit(X, y, progress=False, verbose=False)  # -100 is skipped, not out of range
    with pytest.raises(fe.errors.UserInputError, match=r"label 2 at row 3 .*\(or -100, ignored\)"):
        ignoring.fit(X, _with(y, 3, 2), progress=False, verbose=False)


@pytest.mark.parametrize("name, value, message", [
    ("batch_size", 2.5, "batch_size must be a positive integer, got 2.5"),
    ("epochs", 1.7, "epochs must be an integer >= 0, got 1.7"),
    ("epochs", True, "epochs must be an integer >= 0, got True"),
    ("initial_epoch", 0.5, "initial_epoch must be an integer >= 0, got 0.5"),
    ("early_stopping", 2.5, "early_stopping must be an integer >= 0, got 2.5"),
])
def test_fit_rejects_non_integer_counts(name, value, message):
    X, y = _data(n=40)
    model = _model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.fit(X, y, progress=False, verbose=False, **{name: value})
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    history = model.fit(X, y, batch_size=16.0, epochs=2.0, progress=False, verbose=False)
    assert history.params["batch_size"] == 16 and history.epoch == [0, 1]  # whole floats


def test_duck_typed_callback_needs_only_the_hooks_it_uses():
    X, y = _data(n=40)
    seen = []

    class Duck:  # not a fe.Callback: api.md promises on_epoch_end(epoch, logs)
        def on_epoch_end(self, epoch, logs):
            seen.append((epoch, sorted(logs)))

    _model().fit(X, y, epochs=2, callbacks=[Duck()], progress=False, verbose=False)
    assert seen == [(0, ["accuracy", "loss", "time"]), (1, ["accuracy", "loss", "time"])]


def test_monitors_are_checked_before_training():
    X, y = _data()
    model = _model()
    before = model.get_weights()
    typo = fe.callbacks.EarlyStopping(monitor="val_los")
    with pytest.raises(fe.errors.UserInputError,
                       match=r"EarlyStopping watches 'val_los', which is not logged \(did you "
                             r"mean 'val_loss'\?\); logged: loss, accuracy, time, val_loss"):
        model.fit(X, y, epochs=2, validation_split=0.25, callbacks=[typo], progress=False,
                  verbose=False)
    with pytest.raises(fe.errors.UserInputError,
                       match="EarlyStopping watches 'val_accuracy', which needs validation_data"):
        model.fit(X, y, epochs=2, progress=False, verbose=False,
                  callbacks=[fe.callbacks.EarlyStopping(monitor="val_accuracy")])
    plateau = fe.optimizers.SGD(lr=0.1, schedule=fe.schedules.ReduceOnPlateau(monitor="acuracy"))
    model.compile(loss="cross_entropy", optimizer=plateau, metrics=["accuracy"])
    with pytest.raises(fe.errors.UserInputError, match=r"'acuracy'.*did you mean 'accuracy'"):
        model.fit(X, y, epochs=2, progress=False, verbose=False)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_may_watch_what_a_users_callback_logs():
    """A callback of the user's own, listed before EarlyStopping, may add the watched key."""
    X, y = _data()

    class Score(fe.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["score"] = -float(epoch)  # improves never after epoch 0

    history = _model().fit(X, y, epochs=5, progress=False, verbose=False,
                           callbacks=[Score(), fe.callbacks.EarlyStopping(monitor="score",
                                                                          mode="max",
                                                                          patience=1)])
    assert len(history.history["loss"]) == 2  # stopped once the score fell


@pytest.mark.parametrize("patience, epochs", [(0, 2), (1, 2), (2, 3)])
def test_early_stopping_patience_counts_epochs_without_improvement(patience, epochs):
    """A score that improves only at epoch 0: patience 0 and 1 stop after epoch 1 (Keras
    stops both there too), 2 after epoch 2."""
    X, y = _data()

    class Score(fe.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["score"] = -float(epoch)

    stop = fe.callbacks.EarlyStopping(monitor="score", mode="max", patience=patience)
    history = _model().fit(X, y, epochs=6, progress=False, verbose=False,
                           callbacks=[Score(), stop])
    assert len(history.history["loss"]) == epochs and stop.stopped_epoch == epochs - 1


def test_early_stopping_patience_must_be_a_whole_number_from_zero():
    with pytest.raises(ValueError, match="EarlyStopping: patience must be an integer >= 0"):
        fe.callbacks.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="EarlyStopping: patience must be an integer, got 2.5"):
        fe.callbacks.EarlyStopping(patience=2.5)


def test_fit_early_stopping_zero_is_a_patience_not_off():
    """``fit(early_stopping=0)`` is ``EarlyStopping(patience=0)`` (it was silently off);
    None and False are off. A learning rate of 0 repeats epoch 0's loss exactly."""
    X, y = _data()
    settings = (0, 1, 2, None, False)  # (not dict keys: False == 0)
    runs = [len(_model(lr=0.0).fit(X, y, epochs=5, early_stopping=setting, shuffle=False,
                                   progress=False, verbose=False).history["loss"])
            for setting in settings]
    assert runs == [2, 2, 3, 5, 5]


def test_early_stopping_refuses_a_negative_or_nan_min_delta_and_a_bad_monitor():
    """``EarlyStopping(min_delta=-0.1)`` took worse values for improvements: with scores
    1.0, 1.05, 1.08, 1.2 and patience 1 it ran 4 epochs and restored epoch 2's weights
    (score 1.08), where Keras (``abs(min_delta)``) stops after epoch 1 and restores epoch 0.
    NaN made no epoch an improvement, a string was float()-ed; monitor=None failed with
    "argument of type 'NoneType' is not iterable". All are now errors naming the argument
    (as ReduceOnPlateau's min_delta), and so is a LambdaCallback hook that is not callable
    (it failed only after the first epoch had changed the weights)."""
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="EarlyStopping: min_delta must be a finite "
                                             "number >= 0"):
            fe.callbacks.EarlyStopping(min_delta=bad)
    with pytest.raises(TypeError, match="EarlyStopping: min_delta must be a number"):
        fe.callbacks.EarlyStopping(min_delta="0.1")
    with pytest.raises(TypeError, match="EarlyStopping: restore_best_weights must be True or "
                                        "False"):
        fe.callbacks.EarlyStopping(restore_best_weights="no")
    for cls in (fe.callbacks.EarlyStopping, fe.callbacks.ModelCheckpoint):
        name = cls.__name__
        with pytest.raises(TypeError, match=f"{name}: monitor must be a logged key"):
            cls(monitor=None) if cls is fe.callbacks.EarlyStopping else cls("m.npz",
                                                                            monitor=None)
    with pytest.raises(TypeError, match="ModelCheckpoint: save_best_only must be True or "
                                        "False"):
        fe.callbacks.ModelCheckpoint("m.npz", save_best_only="False")
    with pytest.raises(TypeError, match="LambdaCallback: on_epoch_end must be a function"):
        fe.callbacks.LambdaCallback(on_epoch_end="print")


def test_history_records_what_a_users_callback_adds_to_the_logs():
    """History ran first, so a value a callback adds to the epoch's logs (which
    EarlyStopping may watch) was missing from ``history.history`` and its CSV; Keras's
    callback list appends History last, so it records them."""
    X, y = _data()
    written = []

    class LogRate(fe.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["rate"] = 0.5 ** epoch
            written.append(logs["rate"])

    history = _model().fit(X, y, epochs=3, progress=False, verbose=False,
                           callbacks=[LogRate()])
    assert written == [1.0, 0.5, 0.25]
    assert history.history.get("rate") == written
    assert history.to_csv().splitlines()[0].endswith(",rate")


def test_history_keeps_a_sometimes_logged_key_aligned_and_skips_non_numbers():
    """With History recording what callbacks log, a key logged in some epochs only must not
    shift the others' rows (NaN where it is missing), and a note that is not a number must
    not stop training after the first epoch."""
    X, y = _data()

    class Sometimes(fe.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            logs["note"] = "checked"
            if epoch % 2:
                logs["odd"] = float(epoch)

    history = _model().fit(X, y, epochs=4, progress=False, verbose=False,
                           callbacks=[Sometimes()])
    assert "note" not in history.history
    np.testing.assert_array_equal(history.history["odd"], [np.nan, 1.0, np.nan, 3.0])
    rows = history.to_csv().splitlines()
    assert len(rows) == 5 and rows[2].endswith(",1.0") and rows[4].endswith(",3.0")


def test_diverged_message_names_early_stoppings_restored_epoch():
    """With early stopping, on_train_end puts the best epoch's parameters back after a
    diverged epoch was undone: the message says so, not only 'back at the start of epoch 3'."""
    X, y = _data(n=200)
    model = fe.Sequential([L.Dense(8, activation="relu"), L.Dense(2)], input_shape=(6,),
                          seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=0.1))
    snaps = {}

    class Steer(fe.Callback):  # epoch 2 worse than epoch 1 (lr 30), epoch 3 diverges
        def on_epoch_end(self, epoch, logs):
            snaps[epoch] = model.get_weights()
            model.optimizer.learning_rate = {0: 30.0, 1: 1e12}.get(epoch, 0.1)
    with pytest.raises(fe.errors.TrainingDiverged) as err:
        model.fit(X, y, epochs=5, batch_size=16, progress=False, verbose=False,
                  early_stopping=5, callbacks=[Steer()])
    assert err.value.epoch == 2
    for a, b in zip(model.get_weights(), snaps[0]):  # epoch 1's, not epoch 3's start
        np.testing.assert_array_equal(a, b)
    assert str(err.value).endswith("the parameters then restored are epoch 1's, early "
                                   "stopping's best")
