"""Hostile Python inputs never crash the process (issue 7): ``_hostile_inputs.py``, in a child.

A segfault in the native entry would kill pytest itself, so the hypothesis
session runs in a child process; a non-zero exit (an assertion, or a signal)
fails the test with the calls the child printed last.  The session count
follows the hypothesis profile (at least ``MIN_SESSIONS``; the ``long``
profile's count with ``SYMGRAPH_HYPOTHESIS_PROFILE=long``).
"""

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import settings

SCRIPT = Path(__file__).with_name("_hostile_inputs.py")
MIN_SESSIONS = 150

# Input kinds not drawn until their defect is fixed (issue 7): name them here to exclude them.
# Lifted: "numpy_scalar" and "fed_back" (defect 1, a numpy scalar after a 0-d array call
# segfaulted at HEAD 66f462d; fixed in da00038).
KNOWN_DEFECTS: list[str] = []


def run_script(args: list[str], cache: Path, exclude=(), timeout: float = 900):
    """Run a python script in a child process: (return code, its output)."""
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache), HOSTILE_EXCLUDE=",".join(exclude),
               PYTHONFAULTHANDLER="1")
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def _tail(output: str, lines: int = 40) -> str:
    return "\n".join(line[:300] for line in output.splitlines()[-lines:])


def test_hostile_inputs_never_crash_or_corrupt(tmp_path):
    sessions = max(MIN_SESSIONS, settings.default.max_examples)
    code, output = run_script([str(SCRIPT), str(sessions)], tmp_path, KNOWN_DEFECTS)
    crash = f" (killed by signal {-code})" if code < 0 else ""
    assert code == 0, (f"hostile-input session exited with {code}{crash}; "
                       f"last calls and error:\n{_tail(output)}")
    stats = [line for line in output.splitlines() if line.startswith("STATS")]
    assert stats, _tail(output)
    # the run exercised both outcomes: accepted inputs and every kind of refusal
    assert "'returned': 0" not in stats[0] and "'raised': 0" not in stats[0], stats[0]
    for error in ("TypeError", "ValueError", "MemoryError", "IndexError"):
        assert error in stats[0], stats[0]


def test_a_crash_of_the_child_fails_the_check(tmp_path):
    """The harness itself: a segfaulting child is reported as a signal, not a pass."""
    crash = tmp_path / "crash.py"
    crash.write_text("import faulthandler\nprint('CALL about to crash', flush=True)\n"
                     "faulthandler._sigsegv()\n")
    code, output = run_script([str(crash)], tmp_path, timeout=60)
    assert code < 0 and "CALL about to crash" in output
