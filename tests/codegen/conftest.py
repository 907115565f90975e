"""Fixtures shared by the codegen tests."""

from __future__ import annotations

import pytest

from codegen.native import cache


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    """A compile cache of the test's own (empty directory, in-memory caches cleared)."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SYMGRAPH_CACHE_MAX_BYTES", raising=False)  # the default limit
    cache.clear_cache(memory=True, disk=False)
    yield tmp_path / "cache"
    cache.clear_cache(memory=True, disk=False)
