"""The arena plan (``codegen.memory.plan_arena``) against a brute-force first fit."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.memory import ALIGN, plan_arena


def _brute_first_fit(sizes, birth, death):
    """Each buffer, in birth order, at the lowest offset (0 or the end of a live buffer)
    where it overlaps no buffer still alive at its birth."""
    offsets, total = {}, 0
    for var in sorted(sizes, key=lambda v: birth[v]):
        size = max(ALIGN, -(-sizes[var] // ALIGN) * ALIGN)
        live = [(offsets[v], offsets[v] + max(ALIGN, -(-sizes[v] // ALIGN) * ALIGN))
                for v in offsets if death[v] >= birth[var]]
        for c in sorted({0, *(end for _, end in live)}):
            if all(c + size <= s or c >= e for s, e in live):
                offsets[var] = c
                total = max(total, c + size)
                break
    return offsets, total


def _random_problem(rng, n, steps, long_lived):
    sizes, birth, death = {}, {}, {}
    for i in range(n):
        name = f"v{i}"
        sizes[name] = int(rng.choice([1, 64, 100, 512, 4096, 10_000]))
        birth[name] = int(rng.integers(0, steps))
        span = steps if rng.random() < long_lived else int(rng.integers(0, 4))
        death[name] = min(steps + 1, birth[name] + span)
    return sizes, birth, death


@pytest.mark.parametrize("seed", range(40))
def test_plan_is_the_first_fit(seed):
    rng = np.random.default_rng(seed)
    problem = _random_problem(rng, n=int(rng.integers(1, 120)), steps=int(rng.integers(1, 60)),
                              long_lived=float(rng.choice([0.0, 0.3, 0.9])))
    assert plan_arena(*problem) == _brute_first_fit(*problem)


def test_buffers_alive_together_never_share_bytes():
    rng = np.random.default_rng(7)
    sizes, birth, death = _random_problem(rng, n=400, steps=200, long_lived=0.5)
    offsets, total = plan_arena(sizes, birth, death)
    names = list(sizes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if birth[a] <= death[b] and birth[b] <= death[a]:  # alive at a common step
                assert (offsets[a] + sizes[a] <= offsets[b] or
                        offsets[b] + sizes[b] <= offsets[a]), (a, b)
    assert total == max(offsets[v] + -(-sizes[v] // ALIGN) * ALIGN for v in sizes)
    assert all(o % ALIGN == 0 for o in offsets.values())


def test_an_unrolled_loop_reuses_its_temporaries():
    """Forward steps leave one long-lived buffer each and free a temporary: the temporaries
    share one slot between the long-lived ones, the long-lived ones are packed."""
    sizes, birth, death = {}, {}, {}
    steps = 300
    for t in range(steps):
        sizes[f"h{t}"], birth[f"h{t}"], death[f"h{t}"] = 256, 2 * t, 2 * steps
        sizes[f"tmp{t}"], birth[f"tmp{t}"], death[f"tmp{t}"] = 256, 2 * t + 1, 2 * t + 1
    offsets, total = plan_arena(sizes, birth, death)
    assert (offsets, total) == _brute_first_fit(sizes, birth, death)
    assert total == (steps + 1) * 256
