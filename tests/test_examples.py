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
