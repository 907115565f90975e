#!/usr/bin/env python
"""Is the W1 step bimodal across processes?  One row per fresh process.

Issue 11 saw W1-SGD take 1.75-1.9 ms in 7 of 10 processes and 2.9-3.2 ms in the other 3. This
script starts ``--procs`` fresh processes; each builds the W1 step (``bench/workloads.py``,
SGD and/or Adam) on the llvm backend plus hand-written numpy, times them in interleaved chunks
(only chunks during which other processes used < ``--bg-thresh`` cores count), and reports:

* ``sg ms`` / ``np ms`` / ``ratio``: median step of the llvm backend and of hand numpy, the
  ratio measured in the same process (target: <= 0.9 x the fastest peer);
* the slowest kernels from ``f.profile`` (note: ``profile`` runs on copies of the shared
  values, so those weights sit at other addresses than in ``f(...)``);
* buffer addresses: ``addr % 4096`` (4K aliasing between loads and stores needs equal low 12
  bits) and ``addr % 64`` of each weight matrix (the shared variables' own arrays, written in
  place by the folded SGD gemm) and of the plan's arena, and the arena size;
* BLAS core name and thread count, transparent huge pages (``AnonHugePages`` of the mappings
  holding the arena and the weights).

    python bench/bimodal.py                       # 10 processes, SGD
    python bench/bimodal.py --opt sgd,adam --procs 10
    python bench/bimodal.py --unset-openblas-env  # let OpenBLAS pick its kernel (SkylakeX)
    python bench/bimodal.py --threads 1           # OPENBLAS_NUM_THREADS=1 in the processes

Benchmarks are not tests: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
import workloads as wk  # noqa: E402
from timing import LoadMeter, TimingConfig, wait_quiet  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", type=int, default=10, help="fresh processes (rows)")
    ap.add_argument("--opt", default="sgd", help="sgd, adam or sgd,adam")
    ap.add_argument("--seconds", type=float, default=1.5,
                    help="clean timed seconds per implementation and process")
    ap.add_argument("--chunk-s", type=float, default=0.05, help="seconds per timed chunk")
    ap.add_argument("--bg-thresh", type=float, default=0.3)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--unset-openblas-env", action="store_true",
                    help="start the processes without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    ap.add_argument("--threads", type=int, help="OPENBLAS_NUM_THREADS of the processes")
    ap.add_argument("--json", help="write every row to this file")
    ap.add_argument("--rounds", type=int, default=0,
                    help="instead: keep --procs processes alive and measure them in turn for "
                         "this many rounds (is a slow process slow in every round?)")
    ap.add_argument("--align-test", action="store_true",
                    help="instead: per process, the step with its shared arrays 64-byte "
                         "aligned against the same step with them at 16 mod 64")
    ap.add_argument("--swap", action="store_true", help="--align-test: build/time 16 first")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# ============================================================================ worker
def _mappings() -> list[tuple[int, int, int]]:
    """(start, end, AnonHugePages kB) of this process's mappings."""
    out, cur = [], None
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                a, b = head.split("-")
                cur = [int(a, 16), int(b, 16), 0]
                out.append(cur)
            elif head == "AnonHugePages:" and cur is not None:
                cur[2] = int(line.split()[1])
    return [tuple(m) for m in out]


def _thp_kb(addr: int, maps: list[tuple[int, int, int]]) -> int:
    return next((kb for a, b, kb in maps if a <= addr < b), -1)


def _addr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def interleaved(calls: dict[str, Any], args: argparse.Namespace) -> dict[str, dict]:
    """Median seconds per call of each callable, timed in alternating chunks."""
    cfg = TimingConfig(bg_thresh=args.bg_thresh)
    for call in calls.values():
        for _ in range(5):
            call()
    est = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        for _ in range(5):
            call()
        est[name] = max((time.perf_counter() - t0) / 5, 1e-7)
    wait_quiet(cfg)
    times: dict[str, list[float]] = {k: [] for k in calls}
    dirty: dict[str, list[float]] = {k: [] for k in calls}
    spent = {k: 0.0 for k in calls}
    t_end = time.perf_counter() + 6 * args.seconds + 10
    while min(spent.values()) < args.seconds and time.perf_counter() < t_end:
        for name, call in calls.items():
            k = max(1, int(args.chunk_s / est[name]))
            ts = []
            with LoadMeter() as lm:
                for _ in range(k):
                    t0 = time.perf_counter()
                    call()
                    ts.append(time.perf_counter() - t0)
            if lm.bg < args.bg_thresh:
                times[name] += ts
                spent[name] += sum(ts)
            else:
                dirty[name] += ts
    out = {}
    for name in calls:
        ts = times[name] or dirty[name]
        ts.sort()
        n = len(ts)
        out[name] = dict(med_ms=statistics.median(ts) * 1e3, p10_ms=ts[n // 10] * 1e3,
                         p90_ms=ts[(9 * n) // 10] * 1e3, n=n,
                         clean=len(times[name]) / max(1, len(times[name]) + len(dirty[name])))
    return out


def _calls(opt: str) -> tuple[Any, dict[str, Any]]:
    p = wk.make_problem("W1")
    X, y = p["X"], p["y"]
    f = wk.build_sg_step(p, opt, "llvm")
    mdl = wk.NumpyMLP(p, opt)
    f(X, y)
    mdl.step(X, y)
    floor, _ = wk.gemm_floor()
    return f, {"sg": lambda: f(X, y), "np": lambda: mdl.step(X, y), "floor": floor}


def placed(a: np.ndarray, mod64: int) -> np.ndarray:
    """A copy of ``a`` whose data address is ``mod64`` modulo 64."""
    raw = np.empty(a.nbytes + 128, np.uint8)
    start = (mod64 - raw.ctypes.data) % 64
    out = np.frombuffer(raw, a.dtype, count=a.size, offset=start).reshape(a.shape)
    out[...] = a
    return out


def align_test(opt: str, args: argparse.Namespace) -> dict[str, Any]:
    """Two copies of the same step in one process, their shared arrays (updated in place)
    placed at address % 64 == 0 and == 16, timed interleaved."""
    p = wk.make_problem("W1")
    X, y = p["X"], p["y"]
    calls = {}
    for mod in (16, 0) if args.swap else (0, 16):
        f = wk.build_sg_step(p, opt, "llvm")
        for v in f.shared:
            if isinstance(v._value, np.ndarray) and v._value.ndim:
                v._value = placed(v._value, mod)  # the variable's private array
        f(X, y)
        calls[f"mod{mod}"] = lambda f=f: f(X, y)
    res = interleaved(calls, args)
    return {k: v["med_ms"] for k, v in res.items()}


def serve(opt: str, args: argparse.Namespace) -> None:
    """A long-lived worker: one interleaved measurement per line read from stdin."""
    _, calls = _calls(opt)
    print("READY " + json.dumps(dict(pid=os.getpid())), flush=True)
    for _ in sys.stdin:
        res = interleaved(calls, args)
        print("ROW " + json.dumps({k: v["med_ms"] for k, v in res.items()}), flush=True)


def rounds(args: argparse.Namespace, env: dict[str, str], opt: str) -> None:
    """``--procs`` live processes measured in turn, ``--rounds`` times: a per-process property
    keeps a row slow in every round, a machine-wide one moves a whole column."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", opt, "--seconds",
           str(args.seconds), "--chunk-s", str(args.chunk_s), "--bg-thresh", str(args.bg_thresh)]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env, cwd=ROOT) for _ in range(args.procs)]
    table: list[list[dict[str, float]]] = [[] for _ in procs]
    try:
        for pr in procs:
            assert pr.stdout is not None
            while not pr.stdout.readline().startswith("READY"):
                pass
        for _ in range(args.rounds):
            for i, pr in enumerate(procs):
                assert pr.stdin is not None and pr.stdout is not None
                pr.stdin.write("go\n")
                pr.stdin.flush()
                line = pr.stdout.readline()
                while not line.startswith("ROW "):
                    line = pr.stdout.readline()
                table[i].append(json.loads(line[4:]))
    finally:
        for pr in procs:
            if pr.stdin is not None:
                pr.stdin.close()
            pr.wait(timeout=30)
    print(f"{opt}: sg ms (hand numpy ms) per process (row) and round (column)")
    for i, row in enumerate(table):
        print(f"{i:>2} " + "  ".join(f"{c['sg']:6.3f} ({c['np']:6.3f})" for c in row)
              + "   sg/np " + " ".join(f"{c['sg'] / c['np']:.2f}" for c in row))


def worker(opt: str, args: argparse.Namespace) -> dict[str, Any]:
    from codegen.native import blas

    f, calls = _calls(opt)
    p = wk.make_problem("W1")
    X, y = p["X"], p["y"]
    res = interleaved(calls, args)
    row: dict[str, Any] = dict(pid=os.getpid(), opt=opt, sg=res["sg"], np=res["np"],
                               floor=res["floor"],
                               ratio=res["sg"]["med_ms"] / res["np"]["med_ms"],
                               x_floor=res["sg"]["med_ms"] / res["floor"]["med_ms"])
    prog = f.program
    plan = prog._last.plan if getattr(prog, "_last", None) is not None else None
    maps = _mappings()
    bufs = {}
    for v in f.shared:
        a = v._value
        if isinstance(a, np.ndarray) and a.nbytes >= 4096:
            bufs[v.name] = a
    if plan is not None:
        bufs["arena"] = plan.arena
        row["arena_bytes"] = int(plan.arena.nbytes)
    row["addr"] = {k: dict(a4k=_addr(a) % 4096, a64=_addr(a) % 64,
                           thp_kb=_thp_kb(_addr(a), maps), nbytes=int(a.nbytes))
                   for k, a in bufs.items()}
    info = blas.blas_info()
    row["blas"] = dict(core=info["corename"], threads=info["num_threads"])
    if not args.no_profile:
        prof = f.profile(X, y, n=200)
        row["profile"] = [dict(kernel=r["kernel"], blas=bool(r["blas"]),
                               us=r["seconds"] * 1e6, what=",".join(r["ops"])[:40])
                          for r in prof[:4]]
    return row


# ============================================================================ parent
def parent_ref(call, seconds: float = 0.3) -> float:
    """Median ms of the parent's gemm floor right after a child: same for every row unless
    the machine itself changed speed."""
    ts = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(ts) < 20:
        t0 = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def fmt_row(i: int, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{i:>2}  error: {r['error']}"
    a = r["addr"]
    names = [k for k in ("W0", "W1", "arena") if k in a]
    addrs = " ".join(f"{k}:{a[k]['a4k']:>4}/{a[k]['a64']:<2}" for k in names)
    thp = "/".join(str(a[k]["thp_kb"]) for k in names)
    prof = " ".join(f"{p['kernel']}{'*' if p['blas'] else ''}={p['us']:.0f}"
                    for p in r.get("profile", [])[:3])
    return (f"{i:>2} {r['opt']:<4} {r['sg']['med_ms']:7.3f} {r['np']['med_ms']:7.3f} "
            f"{r['ratio']:6.3f} {r['x_floor']:6.3f} {r['ref_ms']:6.3f} {r['sg']['clean']:5.2f}"
            f"  {addrs}  thp {thp}  "
            f"{r['blas']['core']}/{r['blas']['threads']}  {prof}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker and args.align_test:
        print("ROW " + json.dumps(align_test(args.worker, args)), flush=True)
        return 0
    if args.worker:
        print("ROW " + json.dumps(worker(args.worker, args)), flush=True)
        return 0
    if args.serve:
        serve(args.serve, args)
        return 0
    env = dict(os.environ)
    if args.unset_openblas_env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    if args.threads:
        env["OPENBLAS_NUM_THREADS"] = str(args.threads)
    print(f"OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE')} "
          f"OPENBLAS_L2_SIZE={env.get('OPENBLAS_L2_SIZE')} "
          f"OPENBLAS_NUM_THREADS={env.get('OPENBLAS_NUM_THREADS')}")
    if args.rounds:
        for opt in args.opt.split(","):
            rounds(args, env, opt)
        return 0
    if args.align_test:
        for opt in args.opt.split(","):
            got = []
            for i in range(args.procs):
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", opt,
                       "--align-test", "--seconds", str(args.seconds), "--chunk-s",
                       str(args.chunk_s), "--bg-thresh", str(args.bg_thresh)]
                cmd += ["--swap"] if args.swap else []
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
                line = next(s for s in out.stdout.splitlines() if s.startswith("ROW "))
                r = json.loads(line[4:])
                got.append(r["mod0"] / r["mod16"])
                print(f"{i:>2} {opt}: aligned {r['mod0']:.3f} ms, 16 mod 64 {r['mod16']:.3f} ms, "
                      f"aligned/misaligned {got[-1]:.3f}", flush=True)
            print(f"    {opt}: aligned/misaligned median {statistics.median(got):.3f}")
        return 0
    print(" #  opt    sg ms   np ms  ratio xfloor ref ms clean  addr%4096/%64 (W0 W1 arena)"
          "              thp kB          blas   profile (us, *=BLAS; on copies)")
    rows = []
    ref, _ = wk.gemm_floor()  # the parent's own gemm floor: is a slow row the machine?
    for opt in args.opt.split(","):
        for i in range(args.procs):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", opt,
                   "--seconds", str(args.seconds), "--chunk-s", str(args.chunk_s),
                   "--bg-thresh", str(args.bg_thresh)] + (["--no-profile"] if args.no_profile
                                                          else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((s for s in proc.stdout.splitlines() if s.startswith("ROW ")), None)
            r = json.loads(line[4:]) if line else {
                "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:150]}
            if "error" not in r:
                r["ref_ms"] = parent_ref(ref)
            rows.append(r)
            print(fmt_row(i, r), flush=True)
        ok = [r for r in rows if r.get("opt") == opt]
        if ok:
            sg = sorted(r["sg"]["med_ms"] for r in ok)
            rat = sorted(r["ratio"] for r in ok)
            print(f"    {opt}: sg ms min {sg[0]:.3f} median {statistics.median(sg):.3f} "
                  f"max {sg[-1]:.3f} (max/min {sg[-1] / sg[0]:.2f}); ratio to hand numpy "
                  f"min {rat[0]:.3f} max {rat[-1]:.3f}; <= 0.9 in "
                  f"{sum(x <= 0.9 for x in rat)} of {len(rat)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
