"""The README's main job: the XOR example prints its gradient graph and trains to zero error."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_xor_example_trains_to_zero_error():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "xor_grad.py")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "training errors: 0 of 4" in out.stdout
    assert "d(loss)/d(W1)" in out.stdout      # the gradient graph was printed
    assert "gradient check: worst relative error" in out.stdout


# ---------------------------------------------------------------- the model-API examples
# Each runs as a user would (a subprocess) at a small setting, and the test checks what the
# example claims from its printed numbers, not just the exit status.

def run_example(name: str, *args: str, cwd: Path | None = None) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args],
                         capture_output=True, text=True, timeout=120, cwd=cwd,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def number_after(text: str, label: str) -> float:
    """The first number printed after ``label`` (fails the test if there is none)."""
    import re
    match = re.search(re.escape(label) + r"\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", text)
    assert match, f"{label!r} not in the output:\n{text}"
    return float(match.group(1))


def test_xor_model_api_learns_xor_and_the_textbook_solution_is_exact():
    out = run_example("xor.py")
    assert "training errors: 0 of 4" in out
    assert "predictions [0, 1, 1, 0]" in out
    assert number_after(out, "smallest margin") > 0          # the output is linear in h
    assert "relu(x W + c) from get_weights (numpy): True" in out
    assert "textbook outputs [0.0, 1.0, 1.0, 0.0], mse 0\n" in out
    # the textbook hidden layer maps (0,1) and (1,0) to the same point h = (1, 0)
    assert out.count("h = [ 1.00  0.00]") == 2 and "h = [ 2.00  1.00]" in out


def test_digits_mlp_trains_saves_and_reloads_identically(tmp_path):
    path = tmp_path / "m.npz"
    out = run_example("digits_mlp.py", "--epochs", "3", "--hidden", "64", "--save", str(path))
    assert path.stat().st_size > 0
    assert "predictions identical True" in out
    assert number_after(out, "test accuracy") > 0.85           # 3 epochs already go far
    assert number_after(out, "trained") == 3


def test_autoencoder_beats_the_mean_image():
    out = run_example("autoencoder.py", "--epochs", "5")
    ae_bce, mean_bce = (number_after(out, name) for name in ("autoencoder",
                                                              "mean training image"))
    assert ae_bce < mean_bce
    assert number_after(out, "relative to the mean-image baseline:") < 0.8
    # the model's own test loss is the same binary cross-entropy numpy computes
    assert abs(number_after(out, "on the test set: loss") - ae_bce) < 1e-3


def test_newton_hessian_is_exact_and_needs_far_fewer_steps():
    out = run_example("newton.py", "--tol", "1e-5")
    assert number_after(out, "max abs diff") < 1e-10          # sg.hessian vs closed form
    newton = number_after(out, "Newton:")
    gd = number_after(out, "gradient descent:")
    assert newton <= 10 and gd > 10 * newton


def test_regularization_compares_four_variants(tmp_path):
    png = tmp_path / "reg.png"
    out = run_example("regularization.py", "--epochs", "4", "--hidden", "64", "--train", "200",
                      "--l2", "0.01", "--png", str(png))
    assert "plain          L2     dropout   batchnorm" in out
    assert number_after(out, "(variants without a penalty): max diff") < 1e-5
    norms = {v: float(line.split()[-1]) for line in out.splitlines()
             for v in ("plain", "L2") if line.startswith(v + " ")}
    assert norms["L2"] < norms["plain"]                         # the penalty shrinks kernels
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saturation_cross_entropy_learns_mse_does_not():
    out = run_example("saturation.py", "--steps", "60")
    binary, softmax = out.split("digits, 10 classes")
    for part in (binary, softmax):
        assert number_after(part, "(ratio") > 100                # gradient norm xent / mse
    assert number_after(binary, "cross-entropy") > 0.8           # accuracy after 60 steps
    assert number_after(binary, ", mse") < 0.05


def test_visualize_writes_every_view_and_plot(tmp_path):
    import shutil
    import xml.etree.ElementTree as ET

    import pytest

    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    out = run_example("visualize.py", "--out", str(tmp_path), "--epochs", "2")
    assert "wrote 11 pictures" in out
    texts = {}
    for path in tmp_path.glob("*.svg"):
        root = ET.parse(path).getroot()  # valid SVG
        texts[path.stem] = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "d(cost)/d(dense_1/W)" in texts["digits_ops"]
    assert "dense_1" in texts["digits_layers"] and "∂ dense_1" in texts["digits_layers"]
    assert "BLAS" in texts["digits_kernels"] and "BLAS" in texts["digits_small_kernels"]
    assert "%" in texts["digits_profile"] and "%" in texts["digits_small_profile"]
    assert "d²" in texts["xor_hessian_ops"]  # the second-order graph
    for name in ("curves", "diagnostics", "weights"):
        assert (tmp_path / f"digits_{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_visualize_without_matplotlib_skips_the_plots_with_a_note(tmp_path, monkeypatch,
                                                                   capsys):
    """matplotlib is the optional extra [plot]: without it the example says so and goes on
    to its other pictures (it ended in a traceback after the first four)."""
    import importlib.util

    import numpy as np

    import frontends as fe
    from frontends import plotting

    def missing():
        raise ImportError("plots need matplotlib: pip install 'symgraph[plot]'")

    spec = importlib.util.spec_from_file_location("visualize", ROOT / "examples" / "visualize.py")
    visualize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(visualize)
    model = fe.Sequential([fe.layers.Dense(3)], input_shape=(4,), seed=0)
    model.compile(loss="cross_entropy", optimizer="sgd", backend="numpy")
    history = model.fit(np.zeros((8, 4), np.float32), np.zeros(8, np.int64), progress=False,
                        verbose=False)
    monkeypatch.setattr(plotting, "_pyplot", missing)
    assert visualize.plots(str(tmp_path), history, model.layers[0]) == []
    assert "skipped the plots: plots need matplotlib" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_digits_cnn_learns_the_digits_and_reloads_identically():
    # 10 of the example's 60 epochs: already > 96% on the 359 test images (60 give 98.9%)
    out = run_example("digits_cnn.py", "--epochs", "10")
    assert number_after(out, "trained") == 10
    assert number_after(out, "test accuracy") > 0.96
    assert "predictions identical True" in out


def test_digits_rnn_reads_rows_as_a_sequence_and_learns():
    """An LSTM over the 8 rows of each digit (AdamW, cosine schedule, LayerNorm): well
    above chance (10%) after a few epochs; 30 epochs give 97-98%."""
    out = run_example("digits_rnn.py", "--epochs", "6", "--units", "32")
    assert number_after(out, "test accuracy:") >= 90.0
    assert number_after(out, "final training loss") < 0.5


def test_digits_transformer_attends_over_rows_and_learns():
    """Two encoder blocks (attention, feed-forward, residuals, LayerNorm) over the 8 rows
    of each digit: 97.5% after 6 epochs at dim 16 (30 epochs at dim 32 give 98.3%)."""
    out = run_example("digits_transformer.py", "--epochs", "6", "--dim", "16")
    assert "multi_head_attention_2 (MultiHeadAttention)" in out     # the summary lists both
    assert number_after(out, "test accuracy:") >= 90.0
    assert number_after(out, "final training loss") < 0.5


def test_adding_problem_masked_lstm_learns_and_ignores_where_the_padding_is():
    """Variable-length sequences: the masked LSTM goes far below the mean's mse, and moving a
    sequence's padding from its end to its start changes its prediction not at all (the
    unmasked LSTM's changes: it reads the zeros as data)."""
    out = run_example("adding_problem.py", "--epochs", "10", "--train", "3000",
                      "--length", "12", "--min-length", "4")
    assert number_after(out, "LSTM(mask_value=0): test mse") < 0.2 * number_after(
        out, "predicting 1.0 gives test mse")
    assert number_after(out, "masked: predictions change by at most") < 1e-6
    assert number_after(out, "unmasked: predictions change by at most") > 1e-3
