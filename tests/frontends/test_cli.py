"""The `symgraph` console script: train (the main job), info, graph; exit codes for mistakes."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from frontends.cli import main

ROOT = Path(__file__).resolve().parents[2]
SPEC = """
model:
  input_shape: [64]
  seed: 0
  layers:
    - {type: Dense, units: 32, activation: relu}
    - {type: Dense, units: 10}
compile: {loss: cross_entropy, optimizer: {type: Adam, lr: 0.01}, metrics: [accuracy]}
fit: {batch_size: 64, epochs: 3}
data: {name: digits, standardize: true}
"""


def test_info_prints_versions(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"numpy    {numpy.__version__}" in out
    assert out.startswith("symgraph ")


def test_help_shows_the_description_as_text_not_restructuredtext(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "The symgraph command line" in out and "``" not in out


def test_info_of_a_spec_prints_the_summary(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["info", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "dense_1 (Dense)" in out and f"Total params: {64 * 32 + 32 + 32 * 10 + 10:,}" in out
    assert "gradient nodes" in out


def test_train_writes_model_history_and_curves(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    out_dir = tmp_path / "run"
    assert main(["train", str(spec), "--epochs", "2", "--out", str(out_dir), "--seed", "1",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    history = json.loads((out_dir / "history.json").read_text())
    assert len(history["loss"]) == 2 and history["epoch"] == [0, 1]
    assert (out_dir / "history.csv").read_text().startswith("epoch,loss,accuracy")
    import frontends as fe
    model = fe.load_model(out_dir / "model.npz")
    (_, _), (Xt, yt) = fe.datasets.load_digits()
    Xs = fe.datasets.standardize(fe.datasets.load_digits()[0][0], Xt)[1]
    acc = model.evaluate(Xs, yt)["accuracy"]
    assert f"accuracy {acc:.4f}" in printed  # the printed test metric is the saved model's
    assert history["test"]["accuracy"] == pytest.approx(acc)
    pytest.importorskip("matplotlib")
    assert (out_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_graph_writes_dot_and_pictures(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["graph", str(spec), "-o", str(tmp_path / "g.dot")]) == 0
    text = (tmp_path / "g.dot").read_text()
    assert text.startswith("digraph") and "dense_1" in text and "d(" in text
    assert main(["graph", str(spec), "-o", str(tmp_path / "g.xyz")]) == 2
    assert "g.xyz" in capsys.readouterr().err
    if shutil.which("dot"):
        assert main(["graph", str(spec), "-o", str(tmp_path / "l.svg"), "--view", "layers"]) == 0
        assert "dense_2" in (tmp_path / "l.svg").read_text()


def test_graph_kernels_and_profile_views(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["graph", str(spec), "-o", str(tmp_path / "k.dot"), "--view", "kernels"]) == 0
    text = (tmp_path / "k.dot").read_text()
    assert "subgraph cluster_k0" in text and "BLAS" in text and "dense_1" in text
    capsys.readouterr()
    assert main(["graph", str(spec), "-o", str(tmp_path / "p.dot"), "--view", "profile"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["share", "time", "unit"]  # the table
    shares = [float(p) for p in re.findall(r"\\n(\d+\.\d)% · ", (tmp_path / "p.dot").read_text())]
    assert shares and abs(sum(shares) - 100) < 0.1 * len(shares) + 0.5
    assert main(["graph", str(spec), "-o", str(tmp_path / "n.dot"), "--view", "kernels",
                 "--backend", "numpy"]) == 2
    assert "llvm" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["train", "no/such/spec.yaml"], "no spec file 'no/such/spec.yaml'"),
    (["info", "{bad}"], "no spec file"),
])
def test_missing_files_exit_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_spec_exits_2_naming_key_and_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.replace("units: 32", "units: many"))
    result = subprocess.run([sys.executable, "-m", "frontends.cli", "train", str(spec)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "model.layers[0].units" in result.stderr and "bad.yaml:6" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_tensorboard_logs_the_history(tmp_path, capsys, monkeypatch):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    pytest.importorskip("tensorboardX")
    import frontends as fe

    def no_curves(self, path):  # --out for history.json only; the curves are tested above
        raise ImportError("not drawn in this test")
    monkeypatch.setattr(fe.callbacks.History, "plot", no_curves)
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    logs, out_dir = tmp_path / "tb", tmp_path / "run"
    assert main(["train", str(spec), "--epochs", "2", "--tensorboard", str(logs), "--out",
                 str(out_dir), "--quiet", "--backend", "numpy"]) == 0
    (run,) = os.listdir(logs)
    assert f"TensorBoard logs in {logs / run}" in capsys.readouterr().out
    history = json.loads((out_dir / "history.json").read_text())
    reader = event_accumulator.EventAccumulator(str(logs / run / "train"))
    reader.Reload()
    for key in ("loss", "accuracy"):
        events = reader.Scalars(f"epoch_{key}")
        assert [e.step for e in events] == history["epoch"] == [0, 1]
        assert [e.value for e in events] == [float(numpy.float32(v)) for v in history[key]]
    rates = [e.value for e in reader.Scalars("epoch_learning_rate")]
    assert rates == [float(numpy.float32(0.01))] * 2  # the spec's Adam(lr=0.01), no schedule
    assert "weights/dense_1/W" in reader.Tags()["histograms"]


def test_train_tensorboard_without_the_writer_exits_2_with_the_install_hint(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if not installed
    assert main(["train", "--tensorboard", str(tmp_path / "tb"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'symgraph[tensorboard]'" in err and "--tensorboard" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "tb").exists()


def test_train_tensorboard_dir_that_is_a_file_exits_2(tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    (tmp_path / "tb").write_text("")
    assert main(["train", "--tensorboard", str(tmp_path / "tb"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("edits, message", [
    ([("input_shape: [64]", "input_shape: [63]")],
     r"s\.yaml: training data: input 'x' expects shape \(batch, 63\), got \(\d+, 64\)$"),
    ([("units: 10}", "units: 5}")],
     r"s\.yaml: training data: label \d at row \d+ of y is out of range.*5 classes.*span \[0, 9\]"),
    ([("loss: cross_entropy", "loss: mse"), ("metrics: [accuracy]", "metrics: []")],
     r"the loss mse takes targets of shape \(batch, 10\) \(float32\), got y of shape "
     r"\(\d+,\) \(integer class labels\? use a loss that takes labels: 'cross_entropy'"),
    ([("lr: 0.01}", "lr: 0.01, schedule: {type: ReduceOnPlateau}}")],
     r"fit: the learning-rate schedule \(ReduceOnPlateau\) watches 'val_loss', which needs "
     r"validation_data or validation_split$"),
    ([], None),  # control: the unchanged spec trains and writes --out
])
def test_data_that_does_not_fit_the_model_exits_2_before_training(tmp_path, capsys, edits,
                                                                  message):
    text = SPEC.replace("epochs: 3", "epochs: 1")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    code = main(["train", str(spec), "--quiet", "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    if message is None:
        assert code == 0 and (tmp_path / "run" / "model.npz").exists()
        return
    assert code == 2, captured.err
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("symgraph train: error: ") and re.search(message, line), line
    assert "test:" not in captured.out  # nothing was trained
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--seed", "-5", "--quiet"], "symgraph train: error: --seed must be a "
                                           "non-negative integer, got -5"),
    (["train", "--out", "{file}", "--quiet"], "symgraph train: error: --out {file}: is a "
                                              "file, not a directory"),
    (["train", "--out", "{file}/run", "--quiet"], "symgraph train: error: --out {file}/run: "
                                                  "{file} is a file, not a directory"),
    (["graph", "{spec}", "-o", "/nonexistent/dir/g.svg"],
     "symgraph graph: error: -o /nonexistent/dir/g.svg: no directory /nonexistent/dir"),
])
def test_bad_arguments_exit_2_in_one_line_before_training(tmp_path, capsys, args, message):
    file = tmp_path / "afile"
    file.write_text("keep me")
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    fill = {"file": str(file), "spec": str(spec)}
    assert main([a.format(**fill) for a in args]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == message.format(**fill)
    assert "test:" not in captured.out and file.read_text() == "keep me"


def test_diverging_training_exits_1_in_one_line_and_keeps_the_epochs_before(tmp_path, capsys):
    """A learning rate that blows up in epoch 2: one line (no traceback), exit 1, and --out
    still gets the model (finite: epoch 2 undone) and the history of epoch 1."""
    import frontends as fe
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("optimizer: {type: Adam, lr: 0.01}",
                                 "optimizer: {type: SGD, lr: 0.5, schedule: "
                                 "{type: Step, drop: 1e12, every: 23}}"))
    code = main(["train", str(spec), "--quiet", "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    (line,) = captured.err.strip().splitlines()
    assert re.search(r"^symgraph train: fit: the training loss became (nan|inf) in epoch 2; "
                     r".*; the model holds the parameters at the start of epoch 2$", line), line
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["epoch"] == [0] and history["stopped"] == "diverged"
    model = fe.load_model(tmp_path / "run" / "model.npz")
    assert all(numpy.isfinite(w).all() for w in model.get_weights())


def test_interrupted_training_writes_the_history_and_says_which_parameters(
        tmp_path, capsys, monkeypatch):
    """Ctrl-C (a KeyboardInterrupt at the end of epoch 3) with early stopping on: exit 130,
    --out gets the model and the history of the epochs completed, and the line names the
    epoch whose parameters early stopping restored."""
    from frontends.callbacks import EarlyStopping
    original = EarlyStopping.on_epoch_end
    best = []

    def interrupted(self, epoch, logs):
        original(self, epoch, logs)
        if epoch == 2:
            best.append(self.best_epoch)
            raise KeyboardInterrupt
    monkeypatch.setattr(EarlyStopping, "on_epoch_end", interrupted)
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("epochs: 3}", "epochs: 6, early_stopping: 5}"))
    code = main(["train", str(spec), "--quiet", "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 130, captured.err
    assert captured.err.strip() == (f"symgraph train: interrupted; the model holds epoch "
                                    f"{best[0] + 1}'s parameters (early stopping's best)")
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["epoch"] == [0, 1] and history["stopped"] == "interrupted"
    assert (tmp_path / "run" / "model.npz").exists()


def test_early_stopping_0_is_a_patience_in_the_cli(tmp_path, capsys):
    """fit.early_stopping: 0 stops at the first epoch without improvement, as
    fit(early_stopping=0) does (``0 in (None, False)`` is true: the CLI turned it off)."""
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("{type: Adam, lr: 0.01}", "{type: SGD, lr: 0.0}")
                    .replace("epochs: 3}", "epochs: 5, early_stopping: 0, shuffle: false}"))
    assert main(["train", str(spec), "--quiet", "--out", str(tmp_path / "run")]) == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["epoch"] == [0, 1]  # epoch 2's loss is epoch 1's: no improvement


def test_interrupted_before_the_first_epoch_still_writes_the_model(tmp_path, capsys,
                                                                   monkeypatch):
    """Ctrl-C while fit checks the data (before it makes model.history): exit 130 and the
    model written, not an AttributeError from the handler."""
    from frontends import training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(training, "_training_and_validation", interrupted)
    for patience in ("", ", early_stopping: 2"):  # (its callback has not begun either)
        spec = tmp_path / "s.yaml"
        spec.write_text(SPEC.replace("epochs: 3}", f"epochs: 3{patience}}}"))
        out = tmp_path / f"run{len(patience)}"
        assert main(["train", str(spec), "--quiet", "--out", str(out)]) == 130
        assert capsys.readouterr().err.strip() == ("symgraph train: interrupted; the model "
                                                   "holds the parameters of the last "
                                                   "completed steps")
        assert (out / "model.npz").exists()
        assert not (out / "history.json").exists()


def test_train_passes_the_specs_class_weight_to_fit(tmp_path, capsys, monkeypatch):
    """fit.class_weight reaches fit: a class of weight 0 everywhere is nothing to train on."""
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("epochs: 3}", "epochs: 1, class_weight: {0: 0, 1: 0, 2: 0, "
                                 "3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0}}"))
    assert main(["train", str(spec), "--quiet"]) == 2
    assert "every class_weight of the examples the loss scores is 0" in \
        capsys.readouterr().err
