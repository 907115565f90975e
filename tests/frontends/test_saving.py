"""save / load_model / load_weights: round trips and files that are not ours."""

import json
import re

import numpy as np
import pytest

import frontends as fe

L = fe.layers


def _data(n=64):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5)).astype("float32")
    return X, (X[:, 0] > 0).astype("int64")


def _trained(tmp_path):
    X, y = _data()
    model = fe.Sequential([L.Dense(8, activation="relu", bias_init=0.1), L.Dropout(0.25),
                           L.BatchNorm(), L.Dense(2)], input_shape=(5,), seed=3)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=0.01),
                  regularizer=fe.regularizers.L2(1e-3), metrics=["accuracy"])
    model.fit(X, y, batch_size=16, epochs=2, progress=False, verbose=False)
    path = tmp_path / "m.npz"
    model.save(path)
    return model, path, X, y


def test_round_trip_keeps_weights_predictions_and_optimizer_state(tmp_path):
    model, path, X, y = _trained(tmp_path)
    loaded = fe.load_model(path)
    assert [layer.get_config() for layer in loaded.layers] == \
        [layer.get_config() for layer in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    # training on from the file continues exactly where the original is (Adam moments,
    # step count, dropout counter included)
    for m in (model, loaded):
        m.fit(X, y, batch_size=16, epochs=1, shuffle=False, progress=False, verbose=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda: fe.optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda: fe.optimizers.RMSProp(0.01, momentum=0.5, centered=True),
    lambda: fe.optimizers.Adam(0.05, beta2=0.5, amsgrad=True),
], ids=["sgd-decay", "rmsprop-centered-momentum", "amsgrad"])
def test_optimizer_options_and_their_state_survive_a_round_trip(tmp_path, make):
    """The options' slots (AMSGrad's running maximum, centered RMSProp's mean gradient, its
    momentum) are saved and loaded: training on from the file is training on, bit for bit."""
    X, y = _data()
    model = fe.Sequential([L.Dense(6, activation="tanh"), L.Dense(2)], input_shape=(5,), seed=5)
    model.compile(loss="cross_entropy", optimizer=make())
    model.fit(X, y, batch_size=16, epochs=2, progress=False, verbose=False)
    model.save(tmp_path / "o.npz")
    loaded = fe.load_model(tmp_path / "o.npz")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for m in (model, loaded):
        m.fit(X, y, batch_size=16, epochs=1, shuffle=False, progress=False, verbose=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_functional_model_round_trip(tmp_path):
    a = fe.Input((3,), name="a")
    h = L.Dense(4, activation="tanh")(a)
    out = L.Dense(2)(L.Add()([h, L.Dense(4)(a)]))
    model = fe.Model(a, out, seed=9)
    model.save(tmp_path / "f.npz")
    loaded = fe.load_model(tmp_path / "f.npz")
    X = np.random.default_rng(1).normal(size=(6, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    assert not loaded.compiled


def test_functional_model_with_raw_ops_cannot_be_saved_but_weights_load(tmp_path):
    def build():
        x = fe.Input((3,))
        return fe.Model(x, L.Dense(2)(L.Dense(3)(x) * 2.0), seed=0)
    model = build()
    with pytest.raises(NotImplementedError, match="symgraph ops between layers"):
        model.save(tmp_path / "raw.npz")
    plain = fe.Sequential([L.Dense(3), L.Dense(2)], input_shape=(3,), seed=4)
    plain.save(tmp_path / "plain.npz")
    model.load_weights(tmp_path / "plain.npz")  # same weight shapes: accepted
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_files_raise_clear_errors_and_change_nothing(tmp_path):
    model, path, X, y = _trained(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        fe.load_model(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(fe.ModelFileError, match="junk.npz"):
        fe.load_model(junk)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(fe.ModelFileError, match="cut.npz"):
        fe.load_model(cut)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(fe.ModelFileError, match="foreign.npz.*not a symgraph model"):
        fe.load_model(foreign)
    other = fe.Sequential([L.Dense(7), L.Dense(2)], input_shape=(5,), seed=0)
    before = other.get_weights()
    with pytest.raises(fe.ModelFileError, match="m.npz.*another architecture"):
        other.load_weights(path)
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bit_rot_anywhere_and_a_npy_file_are_model_file_errors(tmp_path):
    """Damaged compressed data raised zlib.error or NotImplementedError, and a .npy file a
    TypeError, where the promise is a ModelFileError naming the file."""
    _, path, _, _ = _trained(tmp_path)
    raw = path.read_bytes()
    rotten = tmp_path / "rot.npz"
    for at in range(0, len(raw) - 16, max(1, len(raw) // 80)):
        rotten.write_bytes(raw[:at] + bytes(b ^ 0xFF for b in raw[at:at + 16]) + raw[at + 16:])
        try:
            fe.load_model(rotten)
        except fe.ModelFileError as err:
            assert "rot.npz" in str(err)
    npy = tmp_path / "weights.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(fe.ModelFileError, match="weights.npy.*not a symgraph model file"):
        fe.load_model(npy)


def test_a_custom_activation_is_refused_when_saving_not_when_loading(tmp_path):
    def mish(x):
        return x * fe.layers.activations.ACTIVATIONS["tanh"](
            fe.layers.activations.ACTIVATIONS["softplus"](x))
    model = fe.Sequential([L.Dense(2, activation=mish)], input_shape=(3,))
    with pytest.raises(ValueError, match="activation='mish' is a Python function"):
        model.save(tmp_path / "custom.npz")
    assert not (tmp_path / "custom.npz").exists()


def test_a_resumed_fit_with_reduce_on_plateau_equals_the_uninterrupted_one(tmp_path):
    """ReduceOnPlateau's best value and counters were not in the file: a fit resumed after
    load_model reduced the rate one epoch late (lr 0.0125 against 0.00625) and the weights
    differed. min_delta=100 makes every epoch after the first a plateau."""
    X, y = _data(96)

    def model():
        m = fe.Sequential([L.Dense(8, activation="relu"), L.Dense(2)], input_shape=(5,), seed=0)
        m.compile(optimizer=fe.optimizers.SGD(0.05, schedule=fe.schedules.ReduceOnPlateau(
            factor=0.5, patience=1, monitor="loss", min_delta=100.0)))
        return m

    whole, resumed = _whole_and_resumed(tmp_path, model, X, y)
    assert resumed.optimizer.learning_rate == whole.optimizer.learning_rate == 0.05 / 8


def _whole_and_resumed(tmp_path, model, X, y):
    """Four epochs of ``model()`` in one fit, and two, saved, loaded and resumed for two
    more: their weights must agree bit for bit."""
    whole = model()
    whole.fit(X, y, epochs=4, progress=False, verbose=False)
    first = model()
    first.fit(X, y, epochs=2, progress=False, verbose=False)
    first.save(tmp_path / "half.npz")
    resumed = fe.load_model(tmp_path / "half.npz")
    resumed.fit(X, y, epochs=4, initial_epoch=2, progress=False, verbose=False)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    return whole, resumed


def _with_header(path, out, edit):
    """A copy of model file ``path`` at ``out`` with its JSON header changed by ``edit``."""
    import json
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["symgraph_model"]))
    edit(header)
    arrays["symgraph_model"] = np.array(json.dumps(header))
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("what, edit, match", [
    ("no config", lambda h: h.pop("config"), "damaged header: config"),
    ("no class", lambda h: h.pop("class"), "damaged header: class"),
    ("no weights", lambda h: h.pop("weights"), "damaged header: weights"),
    ("weights not triples", lambda h: h.update(weights=[["W", 5]]), "damaged header: weights"),
    ("compile without loss", lambda h: h["compile"].pop("loss"), "damaged header: compile"),
    ("unknown loss", lambda h: h["compile"].update(loss={"type": "bogus"}),
     "damaged compile entry: unknown loss 'bogus'"),
    ("bad learning rate", lambda h: h["compile"]["optimizer"].update(lr="fast"),
     "damaged compile entry: Adam: lr must be a number"),
    ("bad layer setting", lambda h: h["config"]["layers"][0].update(units=-3),
     "damaged architecture entry.*units must be an integer"),
    ("bad input shape", lambda h: h["config"].update(input_shape="abc"),
     "damaged architecture entry"),
])
def test_a_hand_edited_header_is_a_model_file_error_naming_the_file(tmp_path, what, edit, match):
    """Missing entries raised a bare KeyError, and settings a layer or optimizer refuses a
    ValueError that did not say it came from the file."""
    _, path, _, _ = _trained(tmp_path)
    edited = _with_header(path, tmp_path / "edited.npz", edit)
    with pytest.raises(fe.ModelFileError, match=f"edited.npz.*{match}"):
        fe.load_model(edited)


def test_a_file_from_a_newer_symgraph_says_so_rather_than_damaged(tmp_path):
    """A layer argument or loss this version does not know, in a file a newer release wrote,
    was reported as a damaged file; the header now records its writer's version."""
    import symgraph

    _, path, _, _ = _trained(tmp_path)
    with np.load(path) as data:
        assert json.loads(str(data["symgraph_model"]))["written_by"] == symgraph.__version__
    major = int(symgraph.__version__.split(".")[0])

    def newer(header, entry):
        header["written_by"] = f"{major + 1}.0.0rc1"
        if entry == "architecture":
            header["config"]["layers"][0]["future_option"] = True
        else:
            header["compile"]["loss"] = {"type": "future_loss"}

    for entry in ("architecture", "compile"):
        edited = _with_header(path, tmp_path / f"{entry}.npz", lambda h, e=entry: newer(h, e))
        with pytest.raises(fe.ModelFileError, match=(
                rf"{entry}.npz' was written by symgraph {major + 1}\.0\.0rc1, newer than this "
                rf"one \({re.escape(symgraph.__version__)}\), and its {entry} entry uses "
                r"something this version does not know .*future_.*: upgrade symgraph")):
            fe.load_model(edited)
    from frontends.saving import _release

    assert _release("1.0.0") == _release("1.0") < _release("1.0.1") < _release("1.1rc2")
    # the same entry in a file of this version (or one without the record) is damaged
    edited = _with_header(path, tmp_path / "same.npz", lambda h: (
        h.pop("written_by"), h["config"]["layers"][0].update(future_option=True)))
    with pytest.raises(fe.ModelFileError, match="damaged architecture entry.*future_option"):
        fe.load_model(edited)


def test_a_numpy_backend_model_resumes_on_numpy_bit_for_bit(tmp_path):
    """The backend was not saved: a model trained on the numpy reference resumed on llvm,
    whose fast-math sums differ in the last bits."""
    X, y = _data(96)

    def model():
        m = fe.Sequential([L.Dense(8, activation="relu"), L.Dense(2)], input_shape=(5,), seed=0)
        m.compile(optimizer=fe.optimizers.Adam(0.01), backend="numpy")
        return m

    _, resumed = _whole_and_resumed(tmp_path, model, X, y)
    assert resumed.backend == "numpy"


def test_saving_into_a_missing_folder_or_onto_a_folder_names_the_users_path(tmp_path):
    """Both were OSErrors naming 'PATH.tmp.npz', a file the user never named; saving onto
    a folder also left that temporary file behind."""
    model = fe.Sequential([fe.layers.Dense(2)], input_shape=(3,))
    with pytest.raises(FileNotFoundError, match=r"cannot save the model to '.*nodir/m.npz': "
                       r"no directory .*nodir$"):
        model.save(str(tmp_path / "nodir" / "m.npz"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a directory; name a file in it"):
        model.save(str(tmp_path / "folder"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_a_layer_called_with_training_false_stays_so_after_a_round_trip(tmp_path):
    """A frozen BatchNorm (``bn(h, training=False)``: running statistics in training too, no
    update) was rebuilt by load_model as a training-mode call: the loaded model trained on
    batch statistics and moved the running averages the saved one keeps fixed."""
    x = fe.Input((4,), "float64", name="x")
    h = L.BatchNorm(name="bn")(L.Dense(5, name="d")(x), training=False)
    model = fe.Model(x, L.Dense(2, name="o")(h), seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=0.1), backend="numpy")
    path = tmp_path / "frozen.npz"
    model.save(path)
    loaded = fe.load_model(path)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 2, 20)
    W, b, gamma, beta, mean, var, Wo, bo = model.get_weights()
    # oracle: the first step's loss of the frozen network, in numpy (running mean 0, var 1)
    z = (gamma * ((X[:5] @ W + b) - mean) / np.sqrt(var + 1e-3) + beta) @ Wo + bo
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    first = -logp[np.arange(5), y[:5]].mean()
    for m in (model, loaded):
        loss = m.train_function(X[:5], y[:5])[0]
        assert float(loss) == pytest.approx(first, rel=1e-12)
        np.testing.assert_array_equal(m.get_weights()[4], np.zeros(5))  # not updated


def _dropout_net(x):
    """Masks of a functional model's unnamed Dropout are keyed by its count on the input
    (Layer.mask_key): a model file keeps that key."""
    return L.Dense(3)(L.Dropout(0.4)(L.Dense(8, activation="tanh")(x)))


def _shared_dropout_net(x):
    """A layer called twice draws one mask stream per call, in the order of its calls
    (MaskStream's "#1"). The file listed the calls in the order a walk back from the output
    meets them (the second branch first), so after loading the two branches swapped masks
    and training on differed from the uninterrupted run (weights apart by 2.8e-3)."""
    drop = L.Dropout(0.5)
    a = drop(L.Dense(8, activation="tanh")(x))
    b = drop(L.Dense(8, activation="tanh")(x))
    return L.Dense(3)(L.Concatenate()([b, a]))


@pytest.mark.parametrize("net", [_dropout_net, _shared_dropout_net])
def test_a_functional_model_with_dropout_trains_on_from_its_file_as_without_a_break(
        tmp_path, net):
    def build():
        x = fe.Input((6,), "float64")
        model = fe.Model(x, net(x), seed=2)
        model.compile(loss="cross_entropy", optimizer="adam", backend="numpy")
        return model

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 6)), rng.integers(0, 3, 24)
    straight, halted = build(), build()
    straight.fit(X, y, batch_size=8, epochs=2, shuffle=False, progress=False, verbose=False)
    halted.fit(X, y, batch_size=8, epochs=1, shuffle=False, progress=False, verbose=False)
    halted.save(tmp_path / "m.npz")
    resumed = fe.load_model(tmp_path / "m.npz")
    resumed.fit(X, y, batch_size=8, epochs=1, shuffle=False, progress=False, verbose=False)
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
