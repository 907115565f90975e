"""A user's own arrays as a data set (``data: {name: npz, path: ...}``): the fixed splits,
standardisation and every refusal, the spec's path relative to the spec file, integer
inputs, and ``symgraph train`` on a padded token task end to end."""

import json
import re

import numpy as np
import pytest

import frontends as fe
from frontends import datasets
from frontends.cli import main
from frontends.datasets import DatasetError, load_npz_dataset
from frontends.spec import SpecError, load_spec


def _write(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_the_held_out_parts_are_fixed_stratified_and_disjoint(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    x[:, 0] = np.arange(300)  # each example's identity
    y = np.repeat([0, 1, 2], [150, 100, 50])
    path = _write(tmp_path / "d.npz", x=x, y=y)
    ds = load_npz_dataset(path, validation_split=0.2, test_split=0.1)
    again = datasets.load("npz", path=path, validation_split=0.2, test_split=0.1)
    parts = [ds.train, ds.validation, ds.test]
    for a, b in zip(parts, [again.train, again.validation, again.test]):
        np.testing.assert_array_equal(a[0], b[0])  # the same split every time
    ids = np.concatenate([p[0][:, 0] for p in parts])
    assert sorted(ids) == list(range(300))  # disjoint and complete
    for part, fraction in ((ds.test, 0.1), (ds.validation, 0.2 * 0.9)):
        for c, n in zip(range(3), (150, 100, 50)):  # every class in proportion
            assert abs((part[1] == c).sum() - fraction * n) <= 1
    for xs, ys in parts:  # the pairs stay aligned
        np.testing.assert_array_equal(ys, y[xs[:, 0].astype(int)])
    assert ds.num_classes == 3 and ds.input_shape == (4,) and ds.train[0].dtype == np.float32


def test_test_arrays_in_the_file_are_the_test_set_and_standardize_uses_training_stats(tmp_path):
    rng = np.random.default_rng(1)
    x, xt = rng.normal(3.0, 2.0, size=(50, 3)), rng.normal(size=(20, 3))
    y, yt = rng.normal(size=50), rng.normal(size=20)  # real-valued targets
    path = _write(tmp_path / "d.npz", x=x, y=y, x_test=xt, y_test=yt)
    ds = load_npz_dataset(path, standardize=True, validation_split=0.2)
    assert len(ds.test[0]) == 20 and len(ds.validation[0]) == 10 and ds.num_classes == 0
    np.testing.assert_array_equal(ds.test[1], yt)
    raw = load_npz_dataset(path, validation_split=0.2)
    want = datasets.standardize(raw.train[0], raw.validation[0], raw.test[0])
    for got, expected in zip((ds.train[0], ds.validation[0], ds.test[0]), want):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert abs(ds.train[0].mean()) < 1e-12


def test_classes_too_small_to_stratify_are_split_as_one_group(tmp_path):
    """Ten examples of five classes: 20% of each class rounds to none, so the split is
    taken over all of them (two test examples), not refused."""
    x, y = np.arange(10.0)[:, None], np.repeat(np.arange(5), 2)
    ds = load_npz_dataset(_write(tmp_path / "d.npz", x=x, y=y))
    assert len(ds.test[0]) == 2 and len(ds.train[0]) == 8
    assert sorted(np.concatenate([ds.train[0], ds.test[0]]).ravel()) == list(range(10))


def test_a_npy_file_is_refused_with_what_to_write(tmp_path):
    np.save(tmp_path / "one.npy", np.ones((3, 2)))
    with pytest.raises(DatasetError, match=r"is one array \(.npy\), not an .npz of x and y"):
        load_npz_dataset(str(tmp_path / "one.npy"))


def test_integer_inputs_stay_integer(tmp_path):
    x = np.arange(40, dtype=np.int32).reshape(10, 4)
    ds = load_npz_dataset(_write(tmp_path / "d.npz", x=x, y=np.arange(10) % 2))
    assert ds.train[0].dtype == np.int32 and len(ds.train[0]) + len(ds.test[0]) == 10


@pytest.mark.parametrize("arrays, options, message", [
    ({"x": np.ones((4, 2))}, {}, "has no array 'y' (it holds x;"),
    ({"x": np.ones((4, 2)), "y": np.ones(3)}, {}, "x (4, 2) and y (3,) must hold the same"),
    ({"x": np.ones((4, 2)), "y": np.ones(4), "x_test": np.ones((2, 2))}, {},
     "x_test and y_test go together"),
    ({"x": np.array(["a", "b"]), "y": np.ones(2)}, {}, "x must hold numbers, got dtype <U1"),
    ({"x": np.ones((4, 2)), "y": np.ones(4)}, {"test_split": 0.0}, "there would be no test"),
    ({"x": np.ones((4, 2)), "y": np.ones(4)}, {"test_split": 0.1},
     "test_split=0.1 of 4 examples leaves an empty part"),
    ({"x": np.ones((4, 2)), "y": np.ones(4), "x_test": np.ones((0, 2)), "y_test": np.ones(0)},
     {}, "x_test holds no examples"),
    ({"x": np.ones((4, 2)), "y": np.ones(4), "x_test": np.ones((2, 3)), "y_test": np.ones(2)},
     {"standardize": True}, "x_test (2, 3) holds examples of shape (3,), x (4, 2) of shape (2,)"),
    ({"x": np.ones((4, 2)), "y": np.ones(4), "x_test": np.ones((2, 2)), "y_test": np.ones((2, 1))},
     {}, "y_test (2, 1) holds examples of shape (1,), y (4,) of shape ()"),
    ({"x": np.where(np.arange(300)[:, None] % 100 == 99, np.nan, np.ones((300, 2))),
      "y": np.ones(300)}, {"standardize": True}, "x holds NaN or inf in row 99 (and 2 more"),
    ({"x": np.ones((4, 2)), "y": np.array([1.0, np.inf, 0, 0])}, {}, "y holds NaN or inf in row 1"),
])
def test_bad_files_are_refused_with_what_is_wrong(tmp_path, arrays, options, message):
    path = _write(tmp_path / "d.npz", **arrays)
    with pytest.raises(DatasetError) as err:
        load_npz_dataset(path, **options)
    assert message in str(err.value)


def test_a_missing_or_unreadable_file_and_bad_options(tmp_path):
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match="cannot read .*bad.npz as an .npz file"):
        load_npz_dataset(str(tmp_path / "bad.npz"))
    with pytest.raises(DatasetError, match="path: the .npz file to train on is required"):
        load_npz_dataset()
    with pytest.raises(DatasetError, match=r"test_split: expected a fraction in \[0, 1\)"):
        datasets.options("npz", path="x.npz", test_split=1.5)
    with pytest.raises(DatasetError, match="path: expected a string, got 3"):
        datasets.options("npz", path=3)


def test_a_csv_file_is_refused_as_not_an_npz_without_advice_to_unpickle(tmp_path):
    """np.load takes any file that is neither a zip nor a .npy for a pickle: a CSV was
    refused with "contains pickled (object) data ... load it unsafely using allow_pickle"."""
    (tmp_path / "data.csv").write_text("x1,x2,y\n0.5,1.0,1\n")
    with pytest.raises(DatasetError) as err:
        load_npz_dataset(str(tmp_path / "data.csv"))
    assert "data.csv as an .npz file: it is not a zip of arrays (a CSV or text file? read " \
           "it with np.loadtxt" in str(err.value)
    assert "pickle" not in str(err.value) and err.value.key == "path"


SPEC = """
model:
  input_shape: [10]
  dtype: int64
  seed: 0
  layers:
    - {type: Embedding, n: 6, dim: 8, padding_idx: 0}
    - {type: LSTM, units: 16, mask_value: 0.0}
    - {type: Dense, units: 2}
compile: {loss: cross_entropy, optimizer: {type: Adam, lr: 0.02}, metrics: [accuracy]}
data: {name: npz, path: data/tokens.npz, validation_split: 0.1}
fit: {batch_size: 32, epochs: 12}
"""


def _tokens(path, n=1500, T=10, seed=0):
    """Padded token sequences (ids 1-5, 0 pads); label: more 1s than 2s."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, T + 1, n)
    x = np.where(np.arange(T) < lengths[:, None], rng.integers(1, 6, (n, T)), 0)
    y = ((x == 1).sum(1) > (x == 2).sum(1)).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)


def test_symgraph_train_learns_a_padded_token_task_from_a_spec(tmp_path, monkeypatch, capsys):
    """The data path is relative to the spec, not the working directory; an int64 input
    feeds Embedding(padding_idx) -> LSTM(mask_value); the printed test accuracy is the
    saved model's on the file's held-out split, and far above the majority class."""
    _tokens(tmp_path / "specs" / "data" / "tokens.npz")
    spec = tmp_path / "specs" / "tokens.yaml"
    spec.write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    printed = float(capsys.readouterr().out.split("accuracy")[-1].split()[0])
    model = fe.load_model(tmp_path / "run" / "model.npz")
    ds = datasets.load("npz", path=str(tmp_path / "specs" / "data" / "tokens.npz"),
                       validation_split=0.1)
    accuracy = float(np.mean(model.predict(ds.test[0]).argmax(1) == ds.test[1]))
    assert abs(accuracy - printed) < 1e-4
    assert accuracy > max(np.mean(ds.test[1]), 1 - np.mean(ds.test[1])) + 0.2
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert abs(history["test"]["accuracy"] - accuracy) < 1e-6
    assert history["data"]["path"] == str(tmp_path / "specs" / "data" / "tokens.npz")


def test_a_spec_naming_a_missing_file_fails_at_its_line(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    message = str(err.value)
    assert "s.yaml:11: data.path: no file" in message
    assert str(tmp_path / "data" / "tokens.npz") in message


@pytest.mark.parametrize("ids, dtype, message", [
    (6, "int64", "holds id 6 at row 3, but layer embedding_1 (Embedding) has rows 0..5"),
    (-1, "int64", "holds id -1 at row 3, but layer embedding_1 (Embedding) has rows 0..5"),
    (2 ** 32 + 1, "int32", "is int32, but its int64 values reach 4294967297, which does not"),
])
def test_ids_the_embedding_cannot_read_are_refused_before_training(ids, dtype, message):
    """Before: id 6 stopped fit midway with an IndexError, -1 silently read the last row,
    and an int64 id beyond int32 failed inside the step."""
    model = fe.Sequential([fe.layers.Embedding(6, 4), fe.layers.Flatten(),
                           fe.layers.Dense(2)], input_shape=(3,), dtype=dtype)
    model.compile(loss="cross_entropy", optimizer="sgd")
    x = np.ones((8, 3), np.int64)
    x[3, 1] = ids
    before = model.get_weights()
    for call in (lambda: model.fit(x, np.zeros(8, np.int64), epochs=1, progress=False,
                                   verbose=False),
                 lambda: model.predict(x)):
        with pytest.raises(fe.UserInputError, match=re.escape(message)):
            call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_standardizing_integer_inputs_is_a_spec_error(tmp_path):
    _tokens(tmp_path / "data" / "tokens.npz")
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("validation_split: 0.1", "standardize: true"))
    with pytest.raises(SpecError, match=r"s.yaml:11: data.standardize: the model's input is "
                                        r"int64 \(ids for an Embedding\?\)"):
        load_spec(spec)


def test_info_and_graph_build_the_model_before_its_data_file_exists(tmp_path, capsys):
    """``symgraph info`` and ``graph --view ops`` read no data; ``train`` and ``graph --view
    profile`` do, and still name the missing file at its line."""
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["info", str(spec)]) == 0
    assert "embedding_1 (Embedding)" in capsys.readouterr().out
    with pytest.raises(SpecError, match="s.yaml:11: data.path: no file"):
        load_spec(spec)
    model, cfg = load_spec(spec, require_data=False)
    assert cfg["data"]["path"] == str(tmp_path / "data" / "tokens.npz")
    for argv in (["train", str(spec), "--quiet"],
                 ["graph", str(spec), "--view", "profile", "-o", str(tmp_path / "p.svg")]):
        assert main(argv) == 2
        assert "s.yaml:11: data.path: no file" in capsys.readouterr().err


def test_a_file_that_lacks_what_the_spec_promises_fails_at_the_specs_line(tmp_path, capsys):
    """Found only by reading the file (no ``y`` in it): the error still points into the spec,
    at the ``data`` option at fault, as the spec's own errors do."""
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "tokens.npz", x=np.ones((20, 10), np.int64))
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["train", str(spec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "s.yaml:11: data.path: " in err and "has no array 'y'" in err
    (tmp_path / "data" / "tokens.npz").write_text("not an npz")
    assert main(["train", str(spec), "--quiet"]) == 2
    assert "s.yaml:11: data.path: cannot read " in capsys.readouterr().err  # not "path: path:"
