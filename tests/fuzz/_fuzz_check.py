"""Checking a drawn ``GraphCase``: the LLVM backend against the numpy reference evaluator.

``check_case`` compiles the case's graph on both backends and asserts they
agree on outputs, gradients and shared state after two calls with updates,
and after ``f.epoch`` when the case has one.  Tolerances follow the lowest
float precision the graph went through; dtypes and shapes must match exactly.
"""

from __future__ import annotations

import numpy as np
from _fuzz_graphs import GraphCase

import symgraph as sg

TOLERANCE = {"float32": 2e-4, "float64": 1e-9}


def assert_same(actual, expected, what: str, precision: str = "float64") -> None:
    """llvm ``actual`` equals numpy ``expected``: dtype and shape exactly, values to round-off.

    ``precision`` is the lowest float precision the value went through (a
    float64 gradient of a float32 intermediate carries float32 round-off).
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind == "f":
        tol = max(TOLERANCE[expected.dtype.name], TOLERANCE[precision])
        finite = expected[np.isfinite(expected)]
        scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale,
                                   equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def _state(shared) -> list[np.ndarray]:
    return [v.get_value() for v in shared]


def _restore(shared, state) -> None:
    for v, value in zip(shared, state):
        v.set_value(value)


def _as_list(result, n: int) -> list:
    return [result] if n == 1 and not isinstance(result, list) else list(result)


def check_case(case: GraphCase) -> dict:
    """Compile ``case`` on both backends and assert they agree; returns what was compared."""
    f_np = sg.function([s.var for s in case.inputs], case.outputs, updates=case.updates,
                       backend="numpy")
    f_ll = sg.function([s.var for s in case.inputs], case.outputs, updates=case.updates,
                       backend="llvm")
    shared = list(dict.fromkeys(list(f_np.shared) + list(f_ll.shared) + case.shared))
    initial = _state(shared)
    rng = np.random.default_rng(case.seed)
    calls = [[s.values(rng, batch) for s in case.inputs] for batch in case.batch_sizes]
    n = len(case.outputs)
    results = {}
    for name, f in (("numpy", f_np), ("llvm", f_ll)):
        _restore(shared, initial)
        trace = []
        for args in calls:
            try:
                out = _as_list(f(*[a.copy() for a in args]), n)
            except (ValueError, IndexError, TypeError) as err:  # a run-time check
                out = err
            trace.append((out, _state(shared)))
        results[name] = trace
    _same_errors(results, case)
    for k, ((out_ll, st_ll), (out_np, st_np)) in enumerate(zip(results["llvm"],
                                                               results["numpy"])):
        for i, (a, e) in enumerate(zip(out_ll, out_np)):
            what = "output" if i < case.n_forward else "gradient"
            assert_same(a, e, f"call {k + 1}: {what} {i}\n{_inputs_text(case, calls[k])}",
                        case.float_dtype)
        for v, a, e in zip(shared, st_ll, st_np):
            assert_same(a, e, f"call {k + 1}: shared {v.name} after the update",
                        case.float_dtype)
    compared = {"calls": len(calls)}
    if case.epoch is not None:
        examples, size, shuffle = case.epoch
        arrays = [s.values(rng, examples) for s in case.inputs]
        epochs = {}
        for name, f in (("numpy", f_np), ("llvm", f_ll)):
            _restore(shared, initial)
            out = _as_list(f.epoch(*[a.copy() for a in arrays], batch_size=size,
                                   shuffle=shuffle), n)
            epochs[name] = (out, _state(shared))
        for i, (a, e) in enumerate(zip(epochs["llvm"][0], epochs["numpy"][0])):
            assert_same(a, e, f"epoch(batch_size={size}, shuffle={shuffle}): output {i}\n"
                        f"{_inputs_text(case, arrays)}", case.float_dtype)
        for v, a, e in zip(shared, epochs["llvm"][1], epochs["numpy"][1]):
            assert_same(a, e, f"epoch: shared {v.name} after the epoch", case.float_dtype)
        compared["epoch"] = True
    _restore(shared, initial)
    return compared


def _same_errors(results: dict, case: GraphCase) -> None:
    """A call that fails on one backend fails on the other, with the same exception type."""
    for k, ((out_ll, _), (out_np, _)) in enumerate(zip(results["llvm"], results["numpy"])):
        kinds = [type(o).__name__ if isinstance(o, Exception) else "values"
                 for o in (out_ll, out_np)]
        assert kinds[0] == kinds[1], (f"call {k + 1}: llvm gave {kinds[0]} ({out_ll}), "
                                      f"numpy {kinds[1]} ({out_np})")
        if isinstance(out_np, Exception):
            raise AssertionError(f"the generator built a graph that fails at run time "
                                 f"(both backends agree): {out_np}")


def _inputs_text(case: GraphCase, arrays) -> str:
    return "\n".join(f"{s.var.name} = np.array({a.tolist()!r}, dtype={a.dtype.name!r})"
                     for s, a in zip(case.inputs, arrays))
