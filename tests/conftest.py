"""Shared test set-up: every graph test runs on each available backend.

The ``backend`` fixture is the seam: the numpy reference evaluator is the
oracle, and the LLVM backend joins the list once it can compile graphs.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("SYMGRAPH_HYPOTHESIS_PROFILE", "ci"))

BACKENDS = ["numpy"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param
