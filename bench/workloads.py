"""The benchmark workloads of docs/performance.md, with the data and maths of shared/bench/peers.py.

Problems (``make_problem``) draw parameters and data from ``numpy.random.default_rng(0)`` in
exactly peers.py's order, so the loss after one step is comparable across frameworks. This
module holds three implementations of the same work:

* hand-written numpy (``NumpyMLP``, ``numpy_hvp``): forward, backward and update by hand;
* symgraph (``build_sg_step``, ``build_sg_hvp``, ``build_sg_overhead``): the graph, ``sg.grad``
  / ``sg.hvp`` and hand-written SGD/Adam updates with sg ops, compiled by ``sg.function``;
* the W1 "gemm floor" (``gemm_floor``): the 8 matrix products of one W1 step through numpy.

symgraph is imported lazily so that the hand-numpy worker never loads it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

F32 = np.float32

SPECS: dict[str, dict[str, Any]] = {
    "W1": dict(sizes=[784, 512, 256, 10], act="relu", loss="ce", B=128, lr=0.1),
    "W2": dict(sizes=[64, 32, 10], act="relu", loss="ce", B=32, lr=0.1),
    "W3": dict(sizes=[2, 8, 1], act="tanh", loss="bce", B=4, lr=0.5),
}
EPOCH_N = 1792  # W4: 56 steps of W2
ADAM = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8)

# workload key -> (problem, optimiser); W4 is W2's epoch, W5 is W3's HVP
STEP_WORKLOADS = {"W1s": ("W1", "sgd"), "W1a": ("W1", "adam"), "W2": ("W2", "sgd"),
                  "W3": ("W3", "sgd")}


def make_problem(name: str) -> dict[str, Any]:
    """Params (W then b per layer) then data, from default_rng(0) -- identical to peers.py."""
    s = SPECS[name]
    rng = np.random.default_rng(0)
    Ws, bs = [], []
    for fi, fo in zip(s["sizes"][:-1], s["sizes"][1:]):
        scale = math.sqrt(2.0 / fi) if s["act"] == "relu" else math.sqrt(1.0 / fi)
        Ws.append((rng.standard_normal((fi, fo)) * scale).astype(F32))
        bs.append((rng.standard_normal(fo) * 0.01).astype(F32))
    p: dict[str, Any] = dict(spec=s, Ws=Ws, bs=bs)
    if name == "W3":
        p["X"] = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], F32)
        p["y"] = np.array([0, 1, 1, 0], F32)
        p["v"] = [rng.standard_normal(a.shape).astype(F32) for pair in zip(Ws, bs) for a in pair]
    elif name == "W2":
        p["Xe"] = rng.standard_normal((EPOCH_N, s["sizes"][0])).astype(F32)
        p["ye"] = rng.integers(0, s["sizes"][-1], EPOCH_N).astype(np.int64)
        p["X"], p["y"] = p["Xe"][:s["B"]].copy(), p["ye"][:s["B"]].copy()
    else:
        p["X"] = rng.standard_normal((s["B"], s["sizes"][0])).astype(F32)
        p["y"] = rng.integers(0, s["sizes"][-1], s["B"]).astype(np.int64)
    return p


def w1_gemm_flops() -> int:
    """Exact GEMM FLOPs of one W1 step: 3 forward, 3 weight-gradient, 2 input-gradient gemms."""
    s = SPECS["W1"]
    layers = list(zip(s["sizes"][:-1], s["sizes"][1:]))
    fwd = 2 * s["B"] * sum(a * b for a, b in layers)
    return fwd + fwd + 2 * s["B"] * sum(a * b for a, b in layers[1:])


# ============================================================================ hand-written numpy
class NumpyMLP:
    """Forward, backward and SGD/Adam update written by hand with numpy (in-place params)."""

    def __init__(self, p: dict[str, Any], opt: str = "sgd"):
        s = p["spec"]
        self.act, self.loss, self.lr = s["act"], s["loss"], s["lr"]
        self.Ws = [w.copy() for w in p["Ws"]]
        self.bs = [b.copy() for b in p["bs"]]
        self.opt = opt
        if opt == "adam":
            self.lr, self.t = ADAM["lr"], 0
            self.m = [np.zeros_like(a) for a in self.Ws + self.bs]
            self.v = [np.zeros_like(a) for a in self.Ws + self.bs]

    def fwd_bwd(self, x: np.ndarray, y: np.ndarray):
        Ws, bs, L = self.Ws, self.bs, len(self.Ws)
        acts, a = [x], x
        for i in range(L):
            z = a @ Ws[i]
            z += bs[i]
            if i < L - 1:
                if self.act == "relu":
                    np.maximum(z, 0, out=z)
                else:
                    np.tanh(z, out=z)
                acts.append(z)
                a = z
        B = x.shape[0]
        if self.loss == "ce":
            m = z.max(axis=1, keepdims=True)
            e = np.exp(z - m)
            s = e.sum(axis=1, keepdims=True)
            r = np.arange(B)
            loss = np.mean(np.log(s[:, 0]) + m[:, 0] - z[r, y])
            g = e / s
            g[r, y] -= 1
            g /= B
        else:
            zz = z[:, 0]
            loss = np.mean(np.logaddexp(0, zz) - y * zz)
            g = ((1.0 / (1.0 + np.exp(-zz)) - y) / B)[:, None].astype(F32)
        grads: list[tuple[np.ndarray, np.ndarray]] = []
        for i in range(L - 1, -1, -1):
            grads.insert(0, (acts[i].T @ g, g.sum(axis=0)))
            if i > 0:
                g = g @ Ws[i].T
                if self.act == "relu":
                    g *= acts[i] > 0
                else:
                    g *= 1 - acts[i] * acts[i]
        return loss, grads

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads = self.fwd_bwd(x, y)
        if self.opt == "sgd":
            for W, b, (gW, gb) in zip(self.Ws, self.bs, grads):
                gW *= self.lr
                W -= gW
                gb *= self.lr
                b -= gb
            return loss
        b1, b2, eps = ADAM["b1"], ADAM["b2"], ADAM["eps"]
        self.t += 1
        step_size = self.lr / (1 - b1 ** self.t)
        sq_bc2 = math.sqrt(1 - b2 ** self.t)
        gl = [g[0] for g in grads] + [g[1] for g in grads]
        for P, g, m, v in zip(self.Ws + self.bs, gl, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            denom = np.sqrt(v)
            denom /= sq_bc2
            denom += eps
            P -= (step_size * m) / denom
        return loss


def numpy_hvp(p: dict[str, Any]) -> Callable[[], tuple[np.ndarray, ...]]:
    """Hand-written Pearlmutter R-op for W3's loss: returns a closure computing H v."""
    W1, W2 = p["Ws"]
    b1, b2 = p["bs"]
    X, y = p["X"], p["y"]
    vW1, vb1, vW2, vb2 = p["v"]
    B = X.shape[0]

    def hvp() -> tuple[np.ndarray, ...]:
        h = np.tanh(X @ W1 + b1)
        z = (h @ W2 + b2)[:, 0]
        s = 1.0 / (1.0 + np.exp(-z))
        gz = ((s - y) / B)[:, None]
        dh = 1 - h * h
        gh = gz @ W2.T
        Rh = dh * (X @ vW1 + vb1)
        Rz = (Rh @ W2)[:, 0] + (h @ vW2)[:, 0] + vb2[0]
        Rgz = ((s * (1 - s)) * Rz / B)[:, None]
        RgW2 = Rh.T @ gz + h.T @ Rgz
        Rgb2 = Rgz.sum(0)
        Rgh = Rgz @ W2.T + gz @ vW2.T
        Rghp = Rgh * dh + gh * (-2 * h * Rh)
        return X.T @ Rghp, Rghp.sum(0), RgW2, Rgb2

    return hvp


def epoch_loop(step: Callable[..., Any], Xe: np.ndarray, ye: np.ndarray, B: int
               ) -> Callable[[], Any]:
    """``for i in range(0, N, B): step(X[i:i+B], y[i:i+B])``; returns the last step's result."""
    def run() -> Any:
        r = None
        for i in range(0, Xe.shape[0], B):
            r = step(Xe[i:i + B], ye[i:i + B])
        return r
    return run


def reference_losses() -> dict[str, tuple[float, float]]:
    """Hand-numpy (loss at call 1, loss at call 2 = after one update) per step workload, and
    the last-step loss of the first W4 epoch (as both entries)."""
    ref = {}
    for key, (prob, opt) in STEP_WORKLOADS.items():
        p = make_problem(prob)
        mdl = NumpyMLP(p, opt)
        ref[key] = (float(mdl.step(p["X"], p["y"])), float(mdl.step(p["X"], p["y"])))
    p = make_problem("W2")
    mdl = NumpyMLP(p, "sgd")
    last = float(epoch_loop(mdl.step, p["Xe"], p["ye"], p["spec"]["B"])())
    ref["W4"] = (last, last)
    return ref


def reference_hvp() -> np.ndarray:
    return np.concatenate([a.ravel() for a in numpy_hvp(make_problem("W3"))()])


# ============================================================================ gemm floor
def gemm_floor() -> tuple[Callable[[], None], int]:
    """The 8 gemms of one W1 step through numpy (no elementwise work): (closure, exact FLOPs)."""
    rng = np.random.default_rng(0)
    B = SPECS["W1"]["B"]
    x = rng.standard_normal((B, 784)).astype(F32)
    W = [rng.standard_normal(s).astype(F32) for s in ((784, 512), (512, 256), (256, 10))]
    h1, h2, o = (np.empty((B, n), F32) for n in (512, 256, 10))
    gW3, gW2, gW1 = np.empty((256, 10), F32), np.empty((512, 256), F32), np.empty((784, 512), F32)
    g2, g1 = np.empty((B, 256), F32), np.empty((B, 512), F32)

    def gemms() -> None:
        np.matmul(x, W[0], out=h1)
        np.matmul(h1, W[1], out=h2)
        np.matmul(h2, W[2], out=o)
        np.matmul(h2.T, o, out=gW3)
        np.matmul(o, W[2].T, out=g2)
        np.matmul(h1.T, g2, out=gW2)
        np.matmul(g2, W[1].T, out=g1)
        np.matmul(x.T, g1, out=gW1)

    return gemms, w1_gemm_flops()


def two_core_speedup(reps: int = 5) -> float:
    """A 512x512 float32 matmul's time on one OpenBLAS thread over its time on all (two here; the
    median of ``reps`` alternations): which mode this machine is in now.

    Why: the 2-vCPU VM switches within minutes between ~1.9 (two cores of its own) and
    1.0-1.5 (the second vCPU shares a core, or is descheduled for stretches; /proc/stat shows
    no steal time).  In the second mode the gemm floor is ~1.4x slower, our Adam epilogue
    kernels ~1.5x, and elementwise kernels of 32-65k elements 4-9x (f.profile, W1: an add +
    relu 13 -> 60-120 us), so W1-Adam's step / floor rises from ~1.02-1.05 to ~1.2-1.33: a
    ratio with this number beside it says which mode it was measured in."""
    from codegen.native.contention import single_thread  # lazy: symgraph's OpenBLAS binding

    rng = np.random.default_rng(0)
    A = rng.standard_normal((512, 512)).astype(F32)
    C = np.empty_like(A)

    def per_call(n: int = 20) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            np.matmul(A, A, out=C)
        return (time.perf_counter() - t0) / n

    ratios = []
    for _ in range(reps):
        with single_thread():
            one = per_call()
        ratios.append(one / per_call())
    return sorted(ratios)[len(ratios) // 2]


RAW_GEMM_SHAPES = ((128, 784, 512), (512, 512, 512), (784, 128, 512))


def raw_gemm(m: int, k: int, n: int) -> tuple[Callable[[], Any], int]:
    """One float32 ``(m,k) @ (k,n)`` product into a preallocated output: (closure, FLOPs)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, k)).astype(F32)
    Bm = rng.standard_normal((k, n)).astype(F32)
    C = np.empty((m, n), F32)
    return (lambda: np.matmul(A, Bm, out=C)), 2 * m * k * n


# ============================================================================ symgraph
def build_sg_step(p: dict[str, Any], opt: str, backend: str,
                  timings: dict[str, float] | None = None, flush_denormals: bool = False):
    """``sg.function([x, y], loss, updates=...)`` for one training step of an MLP problem.

    SGD: ``p - lr * g``. Adam (written by hand with sg ops, peers.py's formula): m and v are
    shared, a shared float32 step counter ``t`` gives the bias corrections.  For
    bench/adam_bound.py, two updates that are not optimizers: ``"adam-mul"`` (Adam with its
    square root and division replaced by multiplications) and ``"mv-bound"``
    (:func:`mv_bound_updates`).  ``timings``, if given, gets ``function_s``: the seconds of the
    ``sg.function`` call alone.  ``flush_denormals``: ``sg.function``'s option (subnormals
    read and written as zero, as jax.jit always computes).
    """
    import symgraph as sg

    s = p["spec"]
    L = len(p["Ws"])
    Ws = [sg.shared(W.copy(), name=f"W{i}") for i, W in enumerate(p["Ws"])]
    bs = [sg.shared(b.copy(), name=f"b{i}") for i, b in enumerate(p["bs"])]
    x = sg.tensor("x", shape=("batch", s["sizes"][0]), dtype="float32")
    y = sg.tensor("y", shape=("batch",), dtype="int64" if s["loss"] == "ce" else "float32")
    a = x
    for i in range(L):
        a = a @ Ws[i] + bs[i]
        if i < L - 1:
            a = sg.nn.relu(a) if s["act"] == "relu" else sg.tanh(a)
    if s["loss"] == "ce":
        loss = sg.nn.cross_entropy(a, y)
    else:
        loss = sg.nn.binary_cross_entropy(a[:, 0], y)
    loss.name = "loss"
    params = Ws + bs
    grads = sg.grad(loss, params)
    if opt == "sgd":
        lr = F32(s["lr"])
        updates = {q: q - lr * g for q, g in zip(params, grads)}
    elif opt == "mv-bound":
        updates = mv_bound_updates(params, grads)
    else:
        b1, b2, eps, lr = (F32(ADAM[k]) for k in ("b1", "b2", "eps", "lr"))
        t = sg.shared(F32(0.0), name="t")
        t1 = t + F32(1.0)
        bc1 = F32(1.0) - b1 ** t1
        bc2 = F32(1.0) - b2 ** t1
        updates = {t: t1}
        for q, g in zip(params, grads):
            m = sg.shared(np.zeros_like(q.get_value()), name="m_" + q.name)
            v = sg.shared(np.zeros_like(q.get_value()), name="v_" + q.name)
            m1 = b1 * m + (F32(1.0) - b1) * g
            v1 = b2 * v + (F32(1.0) - b2) * g * g
            updates[m] = m1
            updates[v] = v1
            if opt == "adam":
                updates[q] = q - (lr / bc1) * m1 / (sg.sqrt(v1) / sg.sqrt(bc2) + eps)
            else:  # "adam-mul": Adam's memory traffic, its square root and division dropped
                updates[q] = q - (lr / bc1) * m1 * (v1 / sg.sqrt(bc2) + eps)
    t0 = time.perf_counter()
    f = sg.function([x, y], loss, updates=updates, backend=backend,
                    flush_denormals=flush_denormals)
    if timings is not None:
        timings["function_s"] = time.perf_counter() - t0
    return f


def mv_bound_updates(params: list, grads: list) -> dict:
    """Not Adam: the memory traffic any fused Adam step must have, for bench/adam_bound.py.

    Each parameter takes SGD's ``p - lr * g`` (the llvm backend folds it into the weight
    gradient's gemm, so the gradient is never stored: what an Adam fused into the gemm's
    epilogue would do), and two float32 arrays of its shape (Adam's ``m`` and ``v``) are read
    and written once, with no gradient in them.
    """
    import symgraph as sg

    lr, b1, b2 = F32(ADAM["lr"]), F32(ADAM["b1"]), F32(ADAM["b2"])
    updates = {}
    for q, g in zip(params, grads):
        m = sg.shared(np.zeros_like(q.get_value()), name="m_" + q.name)
        v = sg.shared(np.zeros_like(q.get_value()), name="v_" + q.name)
        updates[q] = q - lr * g
        updates[m] = b1 * m + (F32(1.0) - b1)
        updates[v] = b2 * v + (F32(1.0) - b2)
    return updates


def build_sg_hvp(p: dict[str, Any], backend: str):
    """``sg.function(vs, sg.hvp(loss, params, vs))`` for W3's loss (data as constants)."""
    import symgraph as sg

    W1, W2 = (sg.shared(W.copy(), name=f"W{i}") for i, W in enumerate(p["Ws"], 1))
    b1, b2 = (sg.shared(b.copy(), name=f"b{i}") for i, b in enumerate(p["bs"], 1))
    X, y = sg.constant(p["X"]), sg.constant(p["y"])
    z = (sg.tanh(X @ W1 + b1) @ W2 + b2)[:, 0]
    loss = sg.nn.binary_cross_entropy(z, y)
    params = [W1, b1, W2, b2]
    vs = [sg.tensor("v" + q.name, shape=q.get_value().shape, dtype="float32") for q in params]
    return sg.function(vs, sg.hvp(loss, params, vs), backend=backend)


def build_sg_overhead(backend: str):
    """A compiled step with no work: ``x + 1`` on a 4x2 float32 array."""
    import symgraph as sg

    x = sg.tensor("x", shape=(4, 2), dtype="float32")
    return sg.function([x], x + 1, backend=backend)
