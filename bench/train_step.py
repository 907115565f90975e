#!/usr/bin/env python
"""Training-step benchmark: symgraph (llvm and numpy backends) against hand numpy and the peers.

Recommended command (from the repository root; the peers venv is described in bench/README.md):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/train_step.py \\
        --peers-python /path/to/peers-venv/bin/python

Smoke run: add ``--quick`` (few reps). One run times, each in its own subprocess:

* ``llvm``     symgraph ``sg.function(..., backend="llvm")`` steps, ``f.epoch`` for W4, ``sg.hvp``
               for W5, the no-work call overhead, and C (compile time of W1-SGD, cold in a fresh
               ``SYMGRAPH_CACHE_DIR`` and warm from that disk cache, each in a new process with
               a primed bytecode cache as an installed package has; ``--no-pyc``: without);
* ``sgnumpy``  the same graphs with ``backend="numpy"`` (the reference evaluator);
* ``numpy``    forward/backward/update written by hand with numpy;
* ``gemm``     numpy's raw gemm rate and the W1 "gemm floor" (its 8 gemms alone);
* peers        shared/bench/peers.py, one process per section (``torch`` eager, ``compile``
               torch.compile, ``jax`` jit incl. the lax.scan epoch, ``pytensor`` C, ``numba``
               PyTensor Numba), run with ``--peers-python`` (skipped without it). The script is
               run from a copy in ``--peers-dir`` so its caches never land in shared/.

A backend that is missing or incomplete (``NotImplementedError`` while the llvm backend is
being written, a crash) gives "unavailable: <reason>" rows; nothing else changes, so the llvm
rows fill in by themselves once the backend works. Workloads and targets are those of
docs/performance.md; every ratio compares medians measured in this same run (never compare
absolute times across runs: the machine is noisy). The loss after one step of every framework
is checked against hand numpy (same ``default_rng(0)`` data and initialisation as peers.py).

Options: ``--only`` (llvm,sgnumpy,numpy,gemm and peer sections), ``--workloads``
(W1s,W1a,W2,W3,W4,W5,C,ovh), ``--target-s`` (clean seconds per measurement), ``--json FILE``,
``--quick``, ``--peers-python``, ``--peers-fresh-cache``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402
import workloads as wk  # noqa: E402
from timing import TimingConfig, measure  # noqa: E402

#: W4's row of ``sg.function(..., flush_denormals=True)``: jax.jit always computes so, and
#: thousands of epochs of the timing make W2's softmax probabilities subnormal, which cost
#: ~100 cycles per operation on Intel (the kept row grew from 0.28 to 0.86 ms on a Xeon)
FLUSHED_EPOCH = "flushed f.epoch (flush_denormals)"
ALL_WORKLOADS = ["W1s", "W1a", "W2", "W3", "W4", "W5", "C", "ovh"]
LOCAL_SECTIONS = ["gemm", "numpy", "sgnumpy", "llvm"]
PEER_SECTIONS = ["torch", "compile", "jax", "pytensor", "numba"]  # tinygrad on request
DEFAULT_PEERS_SCRIPT = ROOT.parent / "shared" / "bench" / "peers.py"
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS", "MKL_NUM_THREADS")
FW_NAMES = {"numpy": report.HAND_NUMPY, "sgnumpy": report.SG_NUMPY, "llvm": report.SG_LLVM,
            "compile": report.SG_LLVM}


def default_peers_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symgraph-bench" / "peers"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(LOCAL_SECTIONS + PEER_SECTIONS),
                    help="sections: llvm,sgnumpy,numpy,gemm and peers.py's torch,compile,jax,"
                         "pytensor,numba,tinygrad")
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    ap.add_argument("--target-s", type=float, default=None,
                    help="clean timed seconds per measurement (default 0.5, --quick 0.05)")
    ap.add_argument("--max-wait-s", type=float, default=None,
                    help="wall budget per measurement to find quiet chunks (default 15)")
    ap.add_argument("--bg-thresh", type=float, default=0.3,
                    help="max cores used by other processes in a clean timing chunk")
    ap.add_argument("--compile-reps", type=int, default=None,
                    help="cold and warm compile processes each (default 3, --quick 1)")
    ap.add_argument("--no-pyc", action="store_true",
                    help="C without a bytecode cache (every project module compiled from "
                         "source in every process, as under PYTHONDONTWRITEBYTECODE=1)")
    ap.add_argument("--quick", action="store_true", help="few reps: a smoke run")
    ap.add_argument("--json", default=None, help="write all rows and targets to this file")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every section this many times, the peers first in odd rounds, "
                         "and report each row's median over the rounds (its spread becomes "
                         "the rounds' min..max): the machine's speed changes between "
                         "sections then touch every framework alike")
    ap.add_argument("--peers-python", default=None,
                    help="interpreter with torch/jax/pytensor installed (default: skip peers)")
    ap.add_argument("--peers-script", default=str(DEFAULT_PEERS_SCRIPT))
    ap.add_argument("--peers-dir", default=str(default_peers_dir()),
                    help="where the copy of peers.py runs (keeps its caches between runs)")
    ap.add_argument("--peers-fresh-cache", action="store_true",
                    help="empty peers.py's caches first (torch.compile/pytensor cold compiles)")
    ap.add_argument("--timeout-s", type=float, default=None,
                    help="per-subprocess time limit (default 1800, --quick 600)")
    # internal: one section in this process
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache-state", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.target_s is None:
        args.target_s = 0.05 if args.quick else 0.5
    if args.max_wait_s is None:
        args.max_wait_s = 2.0 if args.quick else 15.0
    if args.compile_reps is None:
        args.compile_reps = 1 if args.quick else 3
    if args.timeout_s is None:
        args.timeout_s = 600.0 if args.quick else 1800.0
    return args


def timing_config(args: argparse.Namespace) -> TimingConfig:
    if args.quick:
        return TimingConfig(target_s=args.target_s, max_wait_s=args.max_wait_s,
                            bg_thresh=args.bg_thresh, min_reps=5, warmup=1, quiet_wait_s=1.0)
    return TimingConfig(target_s=args.target_s, max_wait_s=args.max_wait_s,
                        bg_thresh=args.bg_thresh)


def log(*a: object) -> None:
    print(*a, flush=True)


def short_reason(e: BaseException) -> str:
    return (type(e).__name__ + ": " + str(e)).replace("\n", " ")[:200]


# ============================================================================ workers
class Worker:
    """One section in this process: measures rows and rewrites ``out`` after each one, so a
    crash (e.g. a segfault in half-written native code) loses only the row in progress."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.name, self.args, self.out = name, args, args.out
        self.fw = FW_NAMES.get(name, name)
        self.cfg = timing_config(args)
        self.wls = set(args.workloads.split(","))
        self.rows: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}
        self.epoch_reps = 3 if args.quick else 7

    def save(self) -> None:
        if self.out:
            tmp = self.out + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(dict(rows=self.rows, info=self.info), fh, default=float)
            os.replace(tmp, self.out)

    def add(self, row: dict[str, Any]) -> None:
        row.setdefault("fw", self.fw)
        row.setdefault("status", "ok")
        row.pop("r1", None)
        row.pop("r2", None)
        self.rows.append(row)
        self.save()
        if row["status"] == "ok":
            extra = (f"  loss call 1 {row['loss1']:.6f}, call 2 {row['loss2']:.6f}"
                     if row.get("loss2") is not None else "")
            log(f"    {row['wl']:<4} {row['fw']:<15} {row['variant']:<34} "
                f"med {row['med_ms']:10.4f} ms  (n={row.get('n')}, clean "
                f"{row.get('clean', 1):.0%}){extra}")
        else:
            log(f"    {row['wl']:<4} {row['fw']:<15} {row['variant']:<34} "
                f"{row['status']}: {row['reason']}")

    def running(self, wl: str, variant: str) -> None:
        """Record the row in progress: if the process crashes, the parent names it."""
        self.info["running"] = [wl, variant]
        self.save()

    def fail(self, wl: str, variant: str, e: BaseException, status: str = "unavailable") -> None:
        self.add(dict(wl=wl, variant=variant, status=status, reason=short_reason(e)))

    def timed(self, wl: str, variant: str, call, *, loss=None, setup_s: float | None = None,
              epoch: bool = False, note: str = "") -> dict[str, Any] | None:
        """Measure ``call`` and add the row; ``loss(result)`` extracts the loss."""
        self.running(wl, variant)
        try:
            kw = dict(min_reps=self.epoch_reps, target_s=2 * self.cfg.target_s) if epoch else {}
            m = measure(call, self.cfg, **kw)
        except Exception as e:
            self.fail(wl, variant, e, "unavailable" if self.name == "llvm" else "error")
            return None
        row = dict(wl=wl, variant=variant, setup_s=setup_s, note=note, **m)
        if loss is not None:
            try:
                row["loss1"], row["loss2"] = float(loss(m["r1"])), float(loss(m["r2"]))
            except Exception:
                pass
        self.add(row)
        return row

    # -- sections
    def run(self) -> None:
        try:
            getattr(self, "run_" + self.name)()
        except Exception as e:  # a bug in a section must not hide the other sections
            traceback.print_exc()
            self.fail("all", "section", e, "error")
        self.info.update(blas_info())
        self.save()

    def run_gemm(self) -> None:
        raw = {}
        for m, k, n in wk.RAW_GEMM_SHAPES:
            call, flops = wk.raw_gemm(m, k, n)
            r = measure(call, self.cfg)
            raw[f"{m}x{k}@{k}x{n}"] = dict(ms=r["med_ms"], gflops=flops / r["med_ms"] / 1e6)
            log(f"    numpy gemm {m}x{k}@{k}x{n}: {r['med_ms']:.4f} ms "
                f"{flops / r['med_ms'] / 1e6:.1f} GFLOP/s")
        call, flops = wk.gemm_floor()
        r = measure(call, self.cfg, target_s=1.6 * self.cfg.target_s)
        self.info["gemm"] = dict(raw=raw, flops=flops, floor_ms=r["med_ms"], floor_n=r["n"],
                                 floor_clean=r["clean"])
        log(f"    gemm floor (8 gemms of W1): {r['med_ms']:.4f} ms "
            f"{flops / r['med_ms'] / 1e6:.1f} GFLOP/s")

    def run_numpy(self) -> None:
        for key, (prob, opt) in wk.STEP_WORKLOADS.items():
            if key in self.wls:
                p = wk.make_problem(prob)
                mdl = wk.NumpyMLP(p, opt)
                X, y = p["X"], p["y"]
                self.timed(key, "step", lambda mdl=mdl, X=X, y=y: mdl.step(X, y), loss=float)
        if "W4" in self.wls:
            p = wk.make_problem("W2")
            mdl = wk.NumpyMLP(p, "sgd")
            self.timed("W4", "epoch: Python loop of steps",
                       wk.epoch_loop(mdl.step, p["Xe"], p["ye"], p["spec"]["B"]),
                       loss=float, epoch=True)
        if "W5" in self.wls:
            row = self.timed("W5", "hvp (hand-written R-op)", wk.numpy_hvp(wk.make_problem("W3")))
            if row is not None:
                row["hvp_ok"] = True  # the reference itself
                self.save()
        if "ovh" in self.wls:
            x = np.ones((4, 2), np.float32)
            self.timed("ovh", "x+1 (numpy ufunc)", lambda: x + 1)

    def run_sgnumpy(self) -> None:
        self.run_symgraph("numpy")

    def run_llvm(self) -> None:
        self.run_symgraph("llvm")

    def build(self, wl: str, variant: str, fn, *a: Any) -> tuple[Any, float | None]:
        self.running(wl, variant)
        t0 = time.perf_counter()
        try:
            return fn(*a), time.perf_counter() - t0
        except Exception as e:
            self.fail(wl, variant, e)
            return None, None

    def run_symgraph(self, backend: str) -> None:
        first_loss = lambda r: r  # noqa: E731  (a step returns its loss)
        for key, (prob, opt) in wk.STEP_WORKLOADS.items():
            if key not in self.wls:
                continue
            p = wk.make_problem(prob)
            f, setup = self.build(key, "step", wk.build_sg_step, p, opt, backend)
            if f is not None:
                X, y = p["X"], p["y"]
                row = self.timed(key, "step", lambda f=f, X=X, y=y: f(X, y), loss=first_loss,
                                 setup_s=setup)
                if row is not None and backend == "llvm" and prob == "W1":
                    # the gemm floor target: the 8 gemms timed in this process, in chunks
                    # alternating with the step (the gemm section's floor is another process)
                    floor, _ = wk.gemm_floor()
                    before = wk.two_core_speedup()  # the machine's mode (see its docstring)
                    got = timing.interleaved_ratio(lambda f=f, X=X, y=y: f(X, y), floor,
                                                   self.cfg)
                    if got:
                        got["two_core"] = (before, wk.two_core_speedup())
                        row["floor_inproc"] = got
                        log(f"    {key} step / gemm floor, same process, interleaved: "
                            f"{got['ratio']:.2f}x [{got['lo']:.2f}..{got['hi']:.2f}] "
                            f"({got['a_ms']:.3f} / {got['b_ms']:.3f} ms, {got['rounds']} rounds; "
                            f"two-core speedup before / after {before:.2f} / "
                            f"{got['two_core'][1]:.2f})")
                        self.save()
                    # and hand numpy's step, the fastest peer of W1 when the peers' processes
                    # see the same machine: its own section is another process
                    hand = wk.NumpyMLP(p, opt)
                    got = timing.interleaved_ratio(lambda f=f, X=X, y=y: f(X, y),
                                                   lambda h=hand, X=X, y=y: h.step(X, y),
                                                   self.cfg)
                    if got:
                        row["hand_inproc"] = got
                        log(f"    {key} step / hand numpy step, same process, interleaved: "
                            f"{got['ratio']:.2f}x [{got['lo']:.2f}..{got['hi']:.2f}] "
                            f"({got['a_ms']:.3f} / {got['b_ms']:.3f} ms, {got['rounds']} rounds)")
                        self.save()
        if "W4" in self.wls:
            p = wk.make_problem("W2")
            Xe, ye, B = p["Xe"], p["ye"], p["spec"]["B"]
            f, setup = self.build("W4", "f.epoch (one call)", wk.build_sg_step, p, "sgd", backend)
            if f is not None:
                self.timed("W4", "f.epoch (one call)",
                           lambda: f.epoch(Xe, ye, batch_size=B), loss=lambda r: r[-1],
                           setup_s=setup, epoch=True)
            if backend == "llvm":  # subnormals read and written as zero, as jax computes
                flushed = functools.partial(wk.build_sg_step, flush_denormals=True)
                f, setup = self.build("W4", FLUSHED_EPOCH, flushed, p, "sgd", backend)
                if f is not None:
                    self.timed("W4", FLUSHED_EPOCH, lambda: f.epoch(Xe, ye, batch_size=B),
                               loss=lambda r: r[-1], setup_s=setup, epoch=True)
            if backend == "llvm":  # f.epoch of the numpy backend is this loop already
                f, setup = self.build("W4", "Python loop of f", wk.build_sg_step, p, "sgd",
                                      backend)
                if f is not None:
                    self.timed("W4", "Python loop of f", wk.epoch_loop(f, Xe, ye, B),
                               loss=float, setup_s=setup, epoch=True)
        if "W5" in self.wls:
            p = wk.make_problem("W3")
            f, setup = self.build("W5", "hvp (sg.hvp)", wk.build_sg_hvp, p, backend)
            if f is not None:
                v = p["v"]
                row = self.timed("W5", "hvp (sg.hvp)", lambda: f(*v), setup_s=setup)
                if row is not None:
                    got = np.concatenate([np.ravel(a) for a in f(*v)])
                    row["hvp_ok"] = bool(np.allclose(got, wk.reference_hvp(), rtol=1e-3,
                                                     atol=1e-5))
                    self.save()
        if "ovh" in self.wls:
            f, setup = self.build("ovh", "x+1 (4x2 float32)", wk.build_sg_overhead, backend)
            if f is not None:
                x = np.ones((4, 2), np.float32)
                self.timed("ovh", "x+1 (4x2 float32)", lambda: f(x), setup_s=setup)

    def run_compile(self) -> None:
        """C: one first call of W1-SGD (graph + grad + sg.function + first step) in this fresh
        process; SYMGRAPH_CACHE_DIR was set by the parent (empty = cold, filled = warm)."""
        state = self.args.cache_state
        t0 = time.perf_counter()
        import symgraph  # noqa: F401  (timed: part of what a user's first call pays)
        t_import = time.perf_counter() - t0
        p = wk.make_problem("W1")
        X, y = p["X"], p["y"]
        self.running("C", state)
        try:
            t0 = time.perf_counter()
            timings: dict[str, float] = {}
            f = wk.build_sg_step(p, "sgd", "llvm", timings)
            t_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            loss = f(X, y)
            t_call = time.perf_counter() - t0
        except Exception as e:
            self.fail("C", state, e)
            return
        fn_s = getattr(f, "compile_seconds", None)
        total = (t_build + t_call) * 1e3
        note = (f"graph+grad+sg.function {t_build * 1e3:.1f} ms"
                + (f" (of which backend {fn_s * 1e3:.1f} ms)" if fn_s is not None else "")
                + f", first call {t_call * 1e3:.2f} ms; import symgraph {t_import * 1e3:.0f} ms")
        self.add(dict(wl="C", variant=state, med_ms=total, first_ms=t_call * 1e3, n=1,
                      setup_s=t_build, loss1=float(loss), note=note,
                      function_call_ms=(timings["function_s"] + t_call) * 1e3))


def blas_info() -> dict[str, Any]:
    """BLAS libraries of this process: threadpoolctl if installed, else codegen.native.blas."""
    try:
        import threadpoolctl
        keys = ("internal_api", "prefix", "version", "architecture", "num_threads", "filepath")
        return {"threadpoolctl": [{k: d.get(k) for k in keys}
                                  for d in threadpoolctl.threadpool_info()]}
    except ImportError:
        pass
    try:
        from codegen.native.blas import blas_info as cg_blas_info
        return {"blas_info": cg_blas_info()}
    except Exception as e:
        return {"blas_info": {"error": short_reason(e)}}


def worker_main(args: argparse.Namespace) -> int:
    Worker(args.worker, args).run()
    return 0


# ============================================================================ orchestration
def _peer_line(line: str) -> bool:
    """The lines of peers.py's output worth echoing: measurements, errors, section headers."""
    s = line.strip()
    return (" med " in line or "ERROR" in line or s.startswith("[") or "Traceback" in line
            or s.startswith("torch ") or s.startswith("jax ") or s.startswith("pytensor "))


def run_subprocess(cmd: list[str], label: str, timeout: float, env: dict[str, str] | None = None,
                   cwd: str | None = None, log_file: str | None = None
                   ) -> tuple[int | None, str]:
    """Run ``cmd``, echoing its output indented (only measurement lines when ``log_file`` gets
    the full output); returns (return code or None on timeout, last lines)."""
    script = next((c for c in cmd if c.endswith(".py")), "")
    log(f"\n[{label}] {cmd[0]} {script}" + (f"  (full log: {log_file})" if log_file else ""))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=cwd, bufsize=1)
    tail: list[str] = []
    full = open(log_file, "w") if log_file else None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = (tail + [line])[-5:]
            if full is not None:
                full.write(line + "\n")
            if full is None or _peer_line(line):
                log("  | " + line)
            if time.perf_counter() - t0 > timeout:
                raise subprocess.TimeoutExpired(cmd, timeout)
        rc: int | None = proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    finally:
        if full is not None:
            full.close()
    log(f"  ({label} took {time.perf_counter() - t0:.1f} s, exit {rc})")
    return rc, " / ".join(t for t in tail if t.strip())[-200:]


def crash_reason(rc: int | None, tail: str) -> str:
    if rc is None:
        return "timed out"
    if rc < 0:
        return f"process killed by signal {-rc} (crash)"
    return f"process exited with {rc}" + (f": {tail}" if tail else "")


def expected_rows(section: str, wls: list[str]) -> list[tuple[str, str]]:
    """(wl, variant) a local section produces, to mark what a crashed process never reached."""
    out = []
    for wl in wls:
        if wl == "C":
            continue
        if section == "gemm":
            break
        variant = {"W4": "f.epoch (one call)", "W5": "hvp (sg.hvp)",
                   "ovh": "x+1 (4x2 float32)"}.get(wl, "step")
        if section == "numpy":
            variant = {"W4": "epoch: Python loop of steps", "W5": "hvp (hand-written R-op)",
                       "ovh": "x+1 (numpy ufunc)"}.get(wl, "step")
        out.append((wl, variant))
    return out


def run_local(section: str, args: argparse.Namespace, wls: list[str], tmp: str,
              extra: list[str] | None = None, env: dict[str, str] | None = None,
              label: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out = os.path.join(tmp, f"{label or section}.json")
    cmd = [sys.executable, "-X", "faulthandler", str(Path(__file__).resolve()),
           "--worker", section, "--out", out,
           "--workloads", ",".join(wls), "--target-s", str(args.target_s),
           "--max-wait-s", str(args.max_wait_s), "--bg-thresh", str(args.bg_thresh)]
    cmd += ["--quick"] if args.quick else []
    cmd += extra or []
    rc, tail = run_subprocess(cmd, label or section, args.timeout_s, env=env)
    data: dict[str, Any] = {"rows": [], "info": {}}
    if os.path.exists(out):
        with open(out) as fh:
            data = json.load(fh)
    rows = data["rows"]
    if rc != 0:
        done = {(r["wl"], r["variant"]) for r in rows}
        reason = crash_reason(rc, tail if rc is None or rc > 0 else "")
        fw = FW_NAMES.get(section, section)
        if section == "compile":
            missing = [("C", (extra or ["", "?"])[-1])]
        else:
            missing = expected_rows(section, wls)
        running = tuple(data.get("info", {}).get("running") or ())
        if running and running not in done and running not in missing:
            missing.insert(0, running)
        for wl, variant in missing:
            if (wl, variant) in done:
                continue
            why = reason if (wl, variant) == running or not running else \
                f"not reached: {reason} in {running[0]} {running[1]}"
            rows.append(dict(fw=fw, wl=wl, variant=variant, status="unavailable", reason=why))
    for r in rows:
        r["source"] = label or section
    return rows, data.get("info", {})


#: what a cache dir holds once anything has been compiled with it: the modules every program
#: shares (pycall's trampoline, parallel's runtime), from another, tiny graph
_PRIME_SHARED = """
import numpy as np, symgraph as sg
from codegen.native import parallel
x = sg.tensor("x", (3,), "float32")
sg.function([x], x + 1)(np.ones(3, np.float32))
if parallel.available():
    parallel.bind_symbols()
"""


def run_compile_rows(args: argparse.Namespace, tmp: str) -> list[dict[str, Any]]:
    """C cold (fresh SYMGRAPH_CACHE_DIR), new graph (a dir that has only the modules every
    program shares: what a user pays after changing the model) and warm (same dir as cold,
    new process), median of reps."""
    rows: list[dict[str, Any]] = []
    samples: dict[str, list[dict[str, Any]]] = {"cold": [], "new": [], "warm": []}
    base = dict(os.environ)
    if not args.no_pyc:
        # bytecode as an installed package has it (the peers' site-packages do): a private
        # cache, primed by one untimed process; PYTHONDONTWRITEBYTECODE=1 (this machine's
        # shells) would otherwise recompile every module of the checkout in every process
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        base["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pyc")
        prime = tempfile.mkdtemp(prefix="symgraph-cache-", dir=tmp)
        run_local("compile", args, ["C"], tmp, ["--cache-state", "cold"],
                  env=dict(base, SYMGRAPH_CACHE_DIR=prime), label="compile-prime")
        shutil.rmtree(prime, ignore_errors=True)
    for rep in range(args.compile_reps):
        cache = tempfile.mkdtemp(prefix="symgraph-cache-", dir=tmp)
        env = dict(base, SYMGRAPH_CACHE_DIR=cache)
        for state in ("cold", "warm"):
            got, _ = run_local("compile", args, ["C"], tmp, ["--cache-state", state], env=env,
                               label=f"compile-{state}-{rep}")
            samples[state] += got
        shutil.rmtree(cache, ignore_errors=True)
        shared = tempfile.mkdtemp(prefix="symgraph-cache-", dir=tmp)
        env = dict(base, SYMGRAPH_CACHE_DIR=shared)
        primed = subprocess.run([sys.executable, "-c", _PRIME_SHARED], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=args.timeout_s)
        if primed.returncode == 0:
            got, _ = run_local("compile", args, ["C"], tmp, ["--cache-state", "new"], env=env,
                               label=f"compile-new-{rep}")
            samples["new"] += got
        shutil.rmtree(shared, ignore_errors=True)
    for state, got in samples.items():
        good = sorted((r for r in got if report.ok(r)), key=lambda r: r["med_ms"])
        if good:
            mid = dict(good[len(good) // 2])
            mid["n"] = len(good)
            mid["samples_ms"] = [r["med_ms"] for r in good]  # pooled over --rounds
            if len(good) > 1:
                mid["p10_ms"], mid["p90_ms"] = good[0]["med_ms"], good[-1]["med_ms"]
            mid["variant"] = {"cold": "cold (fresh cache dir)",
                              "new": "new graph (shared modules cached)",
                              "warm": "warm (disk cache, new process)"}[state]
            rows.append(mid)
            if state == "warm":  # the measure: sg.function + first call, no graph
                calls = sorted(r["function_call_ms"] for r in good)
                rows.append(dict(mid, variant="warm: sg.function + first call",
                                 med_ms=calls[len(calls) // 2], p10_ms=calls[0],
                                 p90_ms=calls[-1], samples_ms=calls,
                                 note="the warm row without building the graph and its "
                                      "gradient"))
        elif got:
            bad = dict(got[0])
            bad["variant"] = state
            rows.append(bad)
    return rows


def peer_workloads(wls: list[str]) -> list[str]:
    """peers.py runs W4 inside its W2 loop and C is its W1-SGD first call."""
    known = {"W1s", "W1a", "W2", "W3", "W4", "W5", "ovh"}
    out = [w for w in wls if w in known]
    if "W4" in out and "W2" not in out:
        out.append("W2")
    if "C" in wls and "W1s" not in out:
        out.append("W1s")
    return out


def convert_peer_rows(rows: list[dict[str, Any]], section: str, fresh: bool
                      ) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        r = dict(r)
        r["source"] = "peers:" + section
        if r.get("variant") == "ERROR":
            r.update(status="error", reason=r.get("error", ""), variant=r["wl"])
        else:
            r["status"] = "ok"
        if r["wl"] == "W1":
            kind = r.get("variant", "")
            r["wl"] = "W1s" if kind == "sgd" else "W1a" if kind.startswith("adam") else "W1"
            r["variant"] = "step" if kind in ("sgd", "adam") else kind
        elif r["wl"] in ("W2", "W3") and r.get("variant") == "sgd":
            r["variant"] = "step"
        elif r["wl"].startswith("W1/"):  # peers' error rows name "W1/sgd"
            r["wl"] = "W1s" if r["wl"].endswith("sgd") else "W1a"
        elif "/" in r["wl"]:
            r["wl"] = r["wl"].split("/")[0]
        out.append(r)
        compiler = r["fw"] not in ("torch", "numpy")  # eager first calls compile nothing
        if compiler and r["wl"] == "W1s" and r["status"] == "ok" and r.get("variant") == "step":
            setup = r.get("setup_s") or 0.0
            c = dict(fw=r["fw"], wl="C", status="ok", source=r["source"], n=1,
                     variant="first call of W1-SGD step",
                     med_ms=r["first_ms"] + setup * 1e3, loss1=r.get("loss1"),
                     samples_ms=[r["first_ms"] + setup * 1e3],
                     note=(f"incl. setup {setup:.2f} s; " if setup else "")
                     + ("caches emptied" if fresh else "peers.py caches kept (warm if re-run)"))
            out.append(c)
    return out


def run_peers(args: argparse.Namespace, sections: list[str], wls: list[str], tmp: str
              ) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    notes: list[str] = []
    if not args.peers_python:
        notes.append("peers skipped: pass --peers-python PATH (a venv with torch==2.13.0, jax, "
                     "pytensor, threadpoolctl; see bench/README.md)")
        return [], {}, notes
    script = Path(args.peers_script)
    if not script.exists():
        notes.append(f"peers skipped: {script} not found")
        return [], {}, notes
    pdir = Path(args.peers_dir)
    pdir.mkdir(parents=True, exist_ok=True)
    copy = pdir / "peers.py"
    if not copy.exists() or copy.read_bytes() != script.read_bytes():
        shutil.copyfile(script, copy)
    pw = peer_workloads(wls)
    rows: list[dict[str, Any]] = []
    infos: dict[str, Any] = {}
    fresh = args.peers_fresh_cache
    for i, sec in enumerate(sections):
        out = os.path.join(tmp, f"peers-{sec}.json")
        cmd = [args.peers_python, str(copy), "--tag", sec, "--only", sec, "--no-probe",
               "--workloads", ",".join(pw), "--target-s", str(args.target_s),
               "--max-wait-s", str(args.max_wait_s), "--bg-thresh", str(args.bg_thresh),
               "--json", out]
        if fresh and i == 0:
            cmd.append("--fresh-cache")
        rc, tail = run_subprocess(cmd, f"peers:{sec}", args.timeout_s, cwd=str(pdir),
                                  log_file=str(pdir / f"last-{sec}.log"))
        if os.path.exists(out):
            with open(out) as fh:
                data = json.load(fh)
            rows += convert_peer_rows(data.get("results", []), sec, fresh)
            infos[f"peers:{sec}"] = {"threadpoolctl": data.get("threadpool", [])}
        else:
            notes.append(f"peers section {sec}: no results ({crash_reason(rc, tail)})")
    return rows, infos, notes


def header(args: argparse.Namespace) -> dict[str, Any]:
    env = {k: os.environ.get(k) for k in OPENBLAS_ENV}
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    meta = dict(time=time.strftime("%Y-%m-%d %H:%M:%S"), python=platform.python_version(),
                numpy=np.__version__, cpu=cpu, cores=os.cpu_count(), env=env, quick=args.quick,
                target_s=args.target_s, workloads=args.workloads, only=args.only)
    log(f"=== bench/train_step.py  {meta['time']}  python {meta['python']}  numpy "
        f"{meta['numpy']}  cores={meta['cores']}  {cpu}")
    log(f"    target-s {args.target_s}  quick={args.quick}  env {env}")
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(k):
            log(f"    WARNING: {k}={os.environ[k]} is set: OpenBLAS may not run its best kernel; "
                "run under `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
    return meta


def run_round(args: argparse.Namespace, only: list[str], wls: list[str], tmp: str,
              infos: dict[str, Any], notes: list[str], *, peers_first: bool
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every chosen section once: (rows, the gemm section's floor info); ``infos`` and
    ``notes`` collect the BLAS lines and the peers' notes."""
    rows: list[dict[str, Any]] = []
    gemm: dict[str, Any] = {}

    def local() -> None:
        nonlocal gemm
        for sec in LOCAL_SECTIONS:
            if sec not in only:
                continue
            sec_wls = [w for w in wls if w != "C"]
            if sec == "gemm" and not {"W1s", "W1a"} & set(wls):
                continue
            if sec != "gemm" and not sec_wls:
                continue
            got, info = run_local(sec, args, sec_wls, tmp)
            rows.extend(got)
            gemm = info.pop("gemm", gemm)
            infos[sec] = info
        if "C" in wls and "llvm" in only:
            rows.extend(run_compile_rows(args, tmp))

    def peers() -> None:
        peer_secs = [s for s in only if s in PEER_SECTIONS + ["tinygrad"]]
        if peer_secs:
            got, pinfo, pnotes = run_peers(args, peer_secs, wls, tmp)
            rows.extend(got)
            infos.update(pinfo)
            notes.extend(n for n in pnotes if n not in notes)

    for part in ((peers, local) if peers_first else (local, peers)):
        part()
    return rows, gemm


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    t_start = time.perf_counter()
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(LOCAL_SECTIONS + PEER_SECTIONS + ["tinygrad"])
    wls = [w for w in args.workloads.split(",") if w]
    bad_wl = set(wls) - set(ALL_WORKLOADS)
    if unknown or bad_wl:
        log(f"unknown sections {sorted(unknown)} / workloads {sorted(bad_wl)}")
        return 2
    wls = [w for w in ALL_WORKLOADS if w in wls]
    meta = header(args)
    ref = wk.reference_losses()
    infos: dict[str, Any] = {"orchestrator": blas_info()}
    notes: list[str] = []
    rounds: list[list[dict[str, Any]]] = []
    floors: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        for n in range(max(1, args.rounds)):
            if args.rounds > 1:
                log(f"\n---- round {n + 1} of {args.rounds}")
            got, gemm_n = run_round(args, only, wls, tmp, infos, notes, peers_first=n % 2 == 1)
            rounds.append(got)
            if gemm_n:
                floors.append(gemm_n)
    rows = report.merge_rounds(rounds)
    gemm = report.merge_floors(floors)
    rows = [r for r in rows if r["wl"] in wls]
    entries = report.target_rows(rows, ref, wls, gemm)

    log("\n" + "=" * 36 + " SUMMARY " + "=" * 36)
    log("median ms per step (an epoch for W4, a first call for C); 'x hand np' and 'x fastest' "
        "are ratios to medians of this run;\n'loss' = the loss the second call returns (after "
        "one update; W4: last step of the first epoch; C: first call), 'chk' compares it with "
        "hand numpy")
    if args.rounds > 1:
        log(f"--rounds {args.rounds}: each 'median' is the median of the rounds' medians and "
            "'p10..p90' is their min..max (a same-process floor ratio: the rounds' median, "
            "[min..max]); C's rows, one process per sample, pool the rounds' processes: "
            "median and min..max of them all")
    busy = [r for r in rows if report.ok(r) and r.get("clean") is not None
            and r["clean"] < 0.5]
    if busy:
        notes.append(f"{len(busy)} of {sum(report.ok(r) for r in rows)} rows were timed while "
                     "other processes kept the machine busy (clean < 50%): their medians and "
                     "ratios are unreliable; re-run on a quiet machine")
    for n in notes:
        log("NOTE: " + n)
    log(report.workload_tables(rows, ref, wls, gemm))
    log(report.targets_table(entries))
    log(report.flops_table(rows, gemm))
    log(report.blas_lines(infos))
    log(f"\ntotal wall time {time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(meta=meta, rows=rows, targets=entries, gemm=gemm, blas=infos,
                           reference_losses=ref, notes=notes), fh, indent=1, default=float)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
