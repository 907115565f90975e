"""ModelCheckpoint: the file written after the best epoch holds exactly that epoch's weights
and optimizer step count, every-epoch paths filled from the logs, a watched key that is not
logged refused before training, bad paths explained."""

import os

import numpy as np
import pytest

import frontends as fe
from frontends.errors import UserInputError

L = fe.layers


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype("int64")
    return X, y


def _model(lr=0.5):
    model = fe.Sequential([L.Dense(12, activation="tanh"), L.Dense(2)], input_shape=(6,),
                          seed=1)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr), metrics=["accuracy"])
    return model


class Snapshots(fe.Callback):
    """Every epoch's logs and weights, in order (listed before the checkpoint)."""

    def on_train_begin(self, logs):
        self.logs, self.weights = [], []

    def on_epoch_end(self, epoch, logs):
        self.logs.append(dict(logs))
        self.weights.append(self.model.get_weights())


def test_best_only_keeps_the_best_epochs_weights_and_resumes(tmp_path):
    X, y = _data()
    model = _model()
    snaps = Snapshots()
    ckpt = fe.callbacks.ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    model.fit(X, y, validation_split=0.25, epochs=12, batch_size=8, shuffle=False,
              progress=False, verbose=False, callbacks=[snaps, ckpt])
    val = [logs["val_loss"] for logs in snaps.logs]
    best = int(np.argmin(val))
    assert best < len(val) - 1, "the oracle needs a run whose last epoch is not the best"
    # written exactly after each new best: the running minimum's improvements
    improved = [e for e in range(len(val)) if val[e] < min(val[:e], default=np.inf)]
    assert ckpt.saved == [str(tmp_path / "best.npz")] * len(improved)
    loaded = fe.load_model(tmp_path / "best.npz")
    for a, b in zip(loaded.get_weights(), snaps.weights[best]):
        np.testing.assert_array_equal(a, b)
    assert loaded.evaluate(X[90:], y[90:])["loss"] == pytest.approx(val[best], rel=1e-6)
    # the optimizer state of that epoch too (12 minibatches of 8 in the 90 training rows)
    assert loaded.optimizer.iterations.get_value() == (best + 1) * 12


def test_every_epoch_paths_are_filled_from_the_logs(tmp_path):
    X, y = _data()
    ckpt = fe.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.3f}.npz"))
    snaps = Snapshots()
    _model().fit(X, y, epochs=3, progress=False, verbose=False, callbacks=[snaps, ckpt])
    want = [str(tmp_path / f"m-{e + 1:02d}-{logs['loss']:.3f}.npz")
            for e, logs in enumerate(snaps.logs)]
    assert ckpt.saved == want and all(os.path.exists(p) for p in want)
    for path, weights in zip(want, snaps.weights):
        for a, b in zip(fe.load_model(path).get_weights(), weights):
            np.testing.assert_array_equal(a, b)


def test_a_watched_key_that_is_not_logged_or_a_bad_path_is_explained(tmp_path):
    X, y = _data()
    model = _model()
    before = model.get_weights()
    with pytest.raises(UserInputError, match="ModelCheckpoint watches 'val_loss', which needs "
                                             "validation_data"):
        model.fit(X, y, epochs=2, progress=False, verbose=False,
                  callbacks=[fe.callbacks.ModelCheckpoint(tmp_path / "m.npz",
                                                          save_best_only=True)])
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))
    with pytest.raises(ValueError, match=r"cannot fill in the path .*\{val_acc\}.* loss, "):
        model.fit(X, y, epochs=1, progress=False, verbose=False,
                  callbacks=[fe.callbacks.ModelCheckpoint(str(tmp_path / "{val_acc}.npz"))])
    with pytest.raises(ValueError, match="mode is 'min', 'max' or 'auto'"):
        fe.callbacks.ModelCheckpoint("m.npz", mode="best")


def test_a_later_worse_fit_keeps_the_best_file_and_folders_are_made(tmp_path):
    """The best value was reset at every fit's start, so a second fit's first epoch
    replaced the best file even when worse (as Keras's, it is kept). A path in a folder
    that does not exist yet failed after the first epoch's training."""
    X, y = _data()
    model = _model(lr=0.05)
    ckpt = fe.callbacks.ModelCheckpoint(tmp_path / "new" / "best.npz", save_best_only=True)
    model.fit(X, y, validation_split=0.25, epochs=5, batch_size=8, progress=False,
              verbose=False, callbacks=[ckpt])
    best = fe.load_model(tmp_path / "new" / "best.npz").evaluate(X[90:], y[90:])["loss"]
    assert best == pytest.approx(ckpt.best, rel=1e-6)
    model.optimizer.learning_rate = 20.0  # a bad second run
    model.fit(X, y, validation_split=0.25, epochs=1, batch_size=8, progress=False,
              verbose=False, callbacks=[ckpt])
    assert model.evaluate(X[90:], y[90:])["loss"] > best  # (the oracle: it was worse)
    kept = fe.load_model(tmp_path / "new" / "best.npz").evaluate(X[90:], y[90:])["loss"]
    assert kept == best


@pytest.mark.parametrize("name", ["{val_acc}.npz", "{loss:.3q}.npz", "{0}.npz"])
def test_a_path_that_cannot_be_filled_in_fails_before_the_first_step(tmp_path, name):
    """The path was filled in only after the first epoch: fit trained a whole epoch, then
    raised, leaving the weights changed (fit's promise: a mistake changes nothing)."""
    X, y = _data()
    model = _model()
    before = model.get_weights()
    with pytest.raises(UserInputError, match="cannot fill in the path"):
        model.fit(X, y, epochs=2, progress=False, verbose=False,
                  callbacks=[fe.callbacks.ModelCheckpoint(str(tmp_path / name))])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations.get_value() == 0 and os.listdir(tmp_path) == []


@pytest.mark.parametrize("under_file", ["ckpt.npz", "sub/ckpt-{epoch}.npz"])
def test_a_folder_that_cannot_be_made_fails_before_the_first_step(tmp_path, under_file):
    """A checkpoint path under a file: FileExistsError came from the first save, after an
    epoch had changed the weights; now refused before training, naming the file."""
    X, y = _data()
    model = _model()
    before = model.get_weights()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UserInputError, match=f"{blocker} is a file, not a directory"):
        model.fit(X, y, epochs=2, progress=False, verbose=False,
                  callbacks=[fe.callbacks.ModelCheckpoint(str(blocker / under_file))])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations.get_value() == 0


def test_a_dangling_link_folder_fails_before_the_first_step(tmp_path):
    """A folder that is a link to nothing: os.path.exists is False, so the check walked
    past it to a writable parent, and the first save failed after an epoch had trained."""
    X, y = _data()
    model = _model()
    before = model.get_weights()
    (tmp_path / "ckpts").symlink_to(tmp_path / "gone")
    with pytest.raises(UserInputError, match="ckpts is a link to nothing"):
        model.fit(X, y, epochs=2, progress=False, verbose=False,
                  callbacks=[fe.callbacks.ModelCheckpoint(str(tmp_path / "ckpts/s/m.npz"))])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
