"""A test run never writes into the user's compile cache (issue 7, defect 13)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_test_run_leaves_the_users_cache_untouched(tmp_path):
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SYMGRAPH_CACHE_DIR", "XDG_CACHE_HOME")}
    # its own temporary directory: other test runs on the machine cannot be mistaken for it
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), TMPDIR=str(tmp))
    # a real compile through the suite's own conftest, as a nested pytest run
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "symgraph" / "test_scope_clone.py"), "-k", "clone_replace_values"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout
    assert not (home / ".cache" / "symgraph").exists()
    assert list(tmp.glob("symgraph-test-cache-*")) == []  # the nested run removed its cache
