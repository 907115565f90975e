"""Shared test set-up: every graph test runs on each available backend.

The ``backend`` fixture is the seam: the numpy reference evaluator is the
oracle for the LLVM backend, and both run the same suite.
``SYMGRAPH_TEST_BACKENDS=numpy`` (comma-separated) narrows the list.

The compile cache of a test run lives in a temporary directory, removed at the
end (subprocesses inherit it): tests never write into the user's
``~/.cache/symgraph``.
"""

import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=100, deadline=None)
# the issue-7 differential fuzz run: tests/fuzz reads its graph count from the profile
settings.register_profile(
    "long", max_examples=10_000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("SYMGRAPH_HYPOTHESIS_PROFILE", "ci"))

# SYMGRAPH_TEST_BACKENDS=numpy,llvm runs every graph test on both backends ("llvm" joins the
# default list once the two check_grad tests with test-local ops pin backend="numpy").
BACKENDS = os.environ.get("SYMGRAPH_TEST_BACKENDS", "numpy,llvm").split(",")


# a rewrite rule that raises (or builds a result of another type) fails the test instead of
# the default warning (symgraph.rewrites.RULE_ERRORS): a bug there looks like a slow graph
os.environ.setdefault("SYMGRAPH_RULE_ERRORS", "raise")

_CACHE = tempfile.mkdtemp(prefix="symgraph-test-cache-")
os.environ["SYMGRAPH_CACHE_DIR"] = _CACHE  # before any test compiles anything


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param
