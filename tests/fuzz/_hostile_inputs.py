"""Hostile Python inputs to compiled functions: run as a script, in its own process.

``python _hostile_inputs.py EXAMPLES`` draws (with hypothesis) sequences of
calls to a few compiled functions, mixing valid calls (so the cached fast
path is warm) with hostile arguments: numpy scalars of every dtype, 0-d
arrays, the function's own outputs fed back, Python scalars, lists, object
arrays, strings, None, wrong dtypes, non-contiguous / negative-stride /
read-only / byte-swapped / unaligned arrays, ``np.matrix``, masked arrays,
empty arrays, and broadcast views whose contiguous copy (or whose output)
would need more than 100 GB.

Calls are single steps or ``f.epoch`` runs.  Every call must either return
what the numpy reference backend returns, or raise TypeError, ValueError,
MemoryError or IndexError (then no shared variable may change, and neither
backend may accept what the other rejects); no input may be written to.  A
crash of the process is the failure this script exists to catch, which is
why the test runs it in a subprocess: the line it printed last (``CALL ...``,
flushed before every call) names the input that killed it.

Known-defect exclusions (issue 7) are marked ``# defect N:``.
"""

from __future__ import annotations

import faulthandler
import os
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgraph as sg

ALLOWED = (TypeError, ValueError, MemoryError, IndexError)
HUGE = 2**35  # rows: 2**35 * 3 float32 = 384 GB if made contiguous

# known defects whose inputs are not drawn until the fix lands (the test lifts them)
EXCLUDED = set(filter(None, os.environ.get("HOSTILE_EXCLUDE", "").split(",")))


class Target:
    """A compiled function on both backends, the shared variables, and valid arguments."""

    def __init__(self, name, inputs, outputs, updates, valid):
        self.name = name
        self.inputs = inputs
        self.f_llvm = sg.function(inputs, outputs, updates=updates)
        self.f_numpy = sg.function(inputs, outputs, updates=updates, backend="numpy")
        self.shared = list(dict.fromkeys(self.f_llvm.shared + self.f_numpy.shared))
        self.valid = valid  # rng, batch -> list of arrays
        self.last_outputs: list = []

    def state(self):
        return [v.get_value() for v in self.shared]

    def restore(self, state):
        for v, value in zip(self.shared, state):
            v.set_value(value)


def build_targets() -> list[Target]:
    targets = []
    s = sg.scalar("s")
    acc = sg.shared(np.float64(0.0), name="acc")
    targets.append(Target("scalar", [s], s * 2.0, {acc: acc + s},
                          lambda rng, n: [np.array(rng.uniform(-2, 2))]))

    x = sg.tensor("x", shape=("batch", 3), dtype="float32")
    W = sg.shared(np.linspace(-1, 1, 6, dtype="float32").reshape(3, 2), name="W")
    loss = sg.nn.relu(x @ W).sum()
    targets.append(Target("matrix", [x], [sg.nn.relu(x @ W).sum(axis=1), loss],
                          {W: W - 0.01 * sg.grad(loss, W)},
                          lambda rng, n: [rng.uniform(-2, 2, (n, 3)).astype("float32")]))

    logits = sg.tensor("logits", shape=("batch", 4))
    y = sg.tensor("y", shape=("batch",), dtype="int64")
    b = sg.shared(np.zeros(4), name="b")
    ce = sg.nn.cross_entropy(logits + b, y)
    targets.append(Target("labels", [logits, y], ce, {b: b - 0.1 * sg.grad(ce, b)},
                          lambda rng, n: [rng.normal(size=(n, 4)),
                                          rng.integers(0, 4, n).astype("int64")]))

    v = sg.tensor("v", shape=(5,))
    i = sg.tensor("i", shape=("k",), dtype="int64")
    targets.append(Target("take", [v, i], v[i] * 2.0, None,
                          lambda rng, n: [rng.normal(size=5), rng.integers(-5, 5, n)]))

    a = sg.tensor("a", shape=("n",))
    c = sg.tensor("c", shape=("m",))
    targets.append(Target("outer", [a, c], sg.expand_dims(a, 1) * sg.expand_dims(c, 0), None,
                          lambda rng, n: [rng.normal(size=n), rng.normal(size=n + 1)]))

    m = sg.tensor("m", shape=("batch",), dtype="bool")
    k8 = sg.tensor("k8", shape=("batch",), dtype="int8")
    hits = sg.shared(np.int64(0), name="hits")
    targets.append(Target("mask", [m, k8], sg.where(m, 1.0, -1.0) * k8,
                          {hits: hits + sg.cast(m, "int64").sum()},
                          lambda rng, n: [rng.random(n) < 0.5,
                                          rng.integers(-100, 100, n).astype("int8")]))
    return targets


def _unaligned(array: np.ndarray) -> np.ndarray:
    raw = np.zeros(array.nbytes + 1, np.uint8)
    out = np.frombuffer(raw.data, dtype=array.dtype, count=array.size, offset=1)
    out = out.reshape(array.shape)
    out[...] = array
    return out


def hostile(kind: str, good: np.ndarray, target: Target, position: int, rng):
    """A hostile stand-in for the argument ``good`` (a valid value for that input)."""
    dtype = good.dtype
    if kind == "numpy_scalar":
        return rng.choice([np.float64, np.float32, np.float16, np.int64, np.int32, np.int8,
                           np.uint8, np.uint64, np.bool_, np.complex128, np.longdouble])(1)
    if kind == "zero_d":
        return np.array(1, dtype=rng.choice(["float64", "float32", "int64", "int8", "bool",
                                             "complex64", "uint64"]))
    if kind == "fed_back":
        outs = target.last_outputs
        return outs[int(rng.integers(len(outs)))] if outs else np.float64(2.0)
    if kind == "python_scalar":
        return [1, 1.5, True, 2**70, float("nan"), float("inf"), 1 + 2j, -3][
            int(rng.integers(8))]
    if kind == "list":
        return good.tolist()
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    if kind == "object_array":
        obj = np.empty(good.shape, dtype=object)
        obj[...] = good.tolist() if good.ndim else good.item()
        if obj.size and rng.random() < 0.5:
            obj.flat[0] = None
        return obj
    if kind == "junk":
        return ["abc", b"bytes", None, {"a": 1}, object(), slice(3), memoryview(b"xy")][
            int(rng.integers(7))]
    if kind == "wrong_dtype":
        other = rng.choice(["float16", "float32", "float64", "complex64", "int64", "uint64",
                            "int8", "bool", "datetime64[s]", "timedelta64[s]", "U3"])
        try:
            return good.astype(other)
        except (TypeError, ValueError):
            return good.astype("float16")
    if kind == "strided":
        if good.ndim == 0:
            return good
        wide = np.repeat(good, 2, axis=-1)
        return wide[..., ::2]
    if kind == "reversed":
        return good[::-1].copy()[::-1] if good.ndim else good
    if kind == "fortran":
        return np.asfortranarray(good)
    if kind == "read_only":
        ro = good.copy()
        ro.flags.writeable = False
        return ro
    if kind == "byte_swapped":
        return good.astype(dtype.newbyteorder())
    if kind == "unaligned":
        return _unaligned(good) if dtype.itemsize > 1 else good
    if kind == "matrix":
        return np.matrix(good) if good.ndim <= 2 and good.dtype != bool else good
    if kind == "masked":
        return np.ma.array(good, mask=np.zeros(good.shape, bool) | (rng.random(good.shape) < .3))
    if kind == "subclass":
        class Sub(np.ndarray):
            pass
        return good.view(Sub)
    if kind == "empty":
        return np.empty((0,) + good.shape[1:], dtype) if good.ndim else np.empty(0, dtype)
    if kind == "wrong_rank":
        return good[None] if rng.random() < 0.5 else good.ravel()[:1].reshape(())
    if kind == "wrong_dim":
        if good.ndim == 0:
            return np.zeros(3, dtype)
        shape = list(good.shape)
        shape[-1] += 1
        return np.zeros(shape, dtype)
    if kind == "bad_values":
        if dtype.kind == "f":
            return np.full(good.shape, [np.nan, np.inf, -np.inf, 1e300][int(rng.integers(4))],
                           dtype)
        if dtype.kind in "iu":  # indices/labels out of range, extremes of the dtype
            info = np.iinfo(dtype)
            return np.full(good.shape, [info.min, info.max, -1, 4, 5, -6][
                int(rng.integers(6))], dtype)
        return good
    if kind == "huge":
        # a zero-stride view: nothing allocated until someone makes it contiguous
        if good.ndim == 0:
            return good
        shape = (HUGE,) + good.shape[1:]
        return np.broadcast_to(good.reshape(-1)[:1].reshape((1,) * good.ndim), shape)
    if kind == "huge_output":
        # small inputs whose product is > 100 GB (the outer target): 2**19 x 2**19 float64
        return np.zeros(2**19, dtype) if good.ndim == 1 else good
    raise AssertionError(kind)


KINDS = ["numpy_scalar", "zero_d", "fed_back", "python_scalar", "list", "ragged",
         "object_array", "junk", "wrong_dtype", "strided", "reversed", "fortran", "read_only",
         "byte_swapped", "unaligned", "matrix", "masked", "subclass", "empty", "wrong_rank",
         "wrong_dim", "bad_values", "huge", "huge_output"]


def describe(value) -> str:
    if isinstance(value, np.ndarray):
        flags = "".join(c for c, on in (("C", value.flags.c_contiguous),
                                        ("F", value.flags.f_contiguous),
                                        ("W", value.flags.writeable),
                                        ("A", value.flags.aligned)) if on)
        return (f"{type(value).__name__}(dtype={value.dtype.str}, shape={value.shape}, "
                f"strides={value.strides}, flags={flags})")
    text = repr(value)
    return f"{type(value).__name__}({text[:40]})"


def _snapshot(args):
    out = []
    for a in args:
        try:
            out.append(np.array(a, copy=True) if isinstance(a, np.ndarray) else None)
        except Exception:  # noqa: BLE001 - exotic subclasses: nothing to compare
            out.append(None)
    return out


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        tol = 1e-5 if a.dtype == np.float32 else 1e-12
        return bool(np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True))
    return bool(np.array_equal(a, b))


def run_call(target: Target, args: list, label: str, stats: dict, epoch: int = 0) -> None:
    """Call both backends with ``args`` (``f.epoch`` with that batch size when ``epoch``);
    assert the contract; leave the llvm state."""
    print(f"CALL {target.name} {label}{f' epoch({epoch})' if epoch else ''}: "
          + ", ".join(describe(a) for a in args), flush=True)

    def call(f):
        return f.epoch(*args, batch_size=epoch) if epoch else f(*args)

    before = target.state()
    inputs_before = _snapshot(args)
    try:
        out_llvm, err_llvm = call(target.f_llvm), None
    except Exception as err:  # noqa: BLE001 - the type is what is checked
        out_llvm, err_llvm = None, err
    after_llvm = target.state()
    for a, saved in zip(args, inputs_before):
        if saved is not None:
            assert _same(a, saved), f"{target.name}: the call wrote into its input {describe(a)}"
    target.restore(before)
    try:
        out_numpy, err_numpy = call(target.f_numpy), None
    except Exception as err:  # noqa: BLE001
        out_numpy, err_numpy = None, err
    after_numpy = target.state()
    target.restore(after_llvm)
    where = f"{target.name} {label}"
    if err_llvm is not None:
        assert isinstance(err_llvm, ALLOWED), (
            f"{where}: llvm raised {type(err_llvm).__name__}: {err_llvm}")
        for v, x, y in zip(target.shared, before, after_llvm):
            assert _same(x, y), f"{where}: failed call changed {v.name}"
        assert err_numpy is not None, (
            f"{where}: llvm raised {type(err_llvm).__name__}: {err_llvm} but numpy returned")
        stats["raised"] += 1
        stats.setdefault("errors", set()).add(type(err_llvm).__name__)
        return
    assert err_numpy is None, (
        f"{where}: numpy raised {type(err_numpy).__name__}: {err_numpy} but llvm returned "
        f"{out_llvm!r}")
    outs_l = out_llvm if isinstance(out_llvm, list) else [out_llvm]
    outs_n = out_numpy if isinstance(out_numpy, list) else [out_numpy]
    for k, (a, b) in enumerate(zip(outs_l, outs_n)):
        assert _same(a, b), f"{where}: output {k}: llvm {a!r} != numpy {b!r}"
    for v, x, y in zip(target.shared, after_llvm, after_numpy):
        assert _same(x, y), f"{where}: {v.name} llvm {x!r} != numpy {y!r}"
    if not epoch:
        target.last_outputs = outs_l
    stats["returned"] += 1


def main(examples: int) -> None:
    faulthandler.enable()
    targets = build_targets()
    stats = {"returned": 0, "raised": 0, "calls": 0}
    kinds = [k for k in KINDS if k not in EXCLUDED]

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.data())
    def session(data):
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        for _ in range(data.draw(st.integers(1, 12), label="calls")):
            target = data.draw(st.sampled_from(targets), label="target")
            # f.epoch on the functions whose inputs all have a batch dim
            epoch = (data.draw(st.sampled_from([0, 0, 1, 2]), label="epoch")
                     if target.name in ("matrix", "labels", "mask") else 0)
            batch = int(rng.integers(1, 5)) + 3 * epoch
            args = target.valid(rng, batch)
            label = "valid"
            if data.draw(st.booleans(), label="hostile?"):
                position = data.draw(st.integers(0, len(args) - 1), label="position")
                kind = data.draw(st.sampled_from(kinds), label="kind")
                if epoch and kind.startswith("huge"):
                    # 2**35 examples are 2**35 steps: the numpy reference loop never ends
                    kind = "empty"
                if kind == "huge_output" and target.name != "outer":
                    kind = "huge"
                if kind in ("huge", "huge_output"):  # every input at once: all must fit
                    args = [hostile(kind, a, target, j, rng) for j, a in enumerate(args)]
                else:
                    args[position] = hostile(kind, args[position], target, position, rng)
                label = f"{kind}@{position}"
            stats["calls"] += 1
            run_call(target, args, label, stats, epoch)

    session()
    print("STATS", {k: sorted(v) if isinstance(v, set) else v for k, v in stats.items()},
          flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
