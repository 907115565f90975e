"""Differential fuzzing: random graphs of the public ops, LLVM backend vs numpy reference.

Each example is one random graph (``_fuzz_graphs.graph_cases``): its outputs,
the gradients of a scalar of them w.r.t. every float input and shared
variable, and the shared variables after two calls with updates (and after
``f.epoch`` when every input has a batch dim) must agree between
``backend="llvm"`` and the numpy reference evaluator.

The example count follows the hypothesis profile (tests/conftest.py): at
least ``MIN_GRAPHS`` in the quick ``ci`` profile, 10,000 with
``SYMGRAPH_HYPOTHESIS_PROFILE=long``.
"""

import pytest
from _fuzz_check import check_case
from _fuzz_graphs import graph_cases
from hypothesis import given, settings

MIN_GRAPHS = 150


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """Random graphs compile into a throwaway cache, never the user's ~/.cache/symgraph."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("symgraph-cache")))
    yield
    mp.undo()


@settings(max_examples=max(MIN_GRAPHS, settings.default.max_examples))
@given(graph_cases(max_steps=10))
def test_llvm_matches_numpy(case):
    check_case(case)
