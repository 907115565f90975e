"""Tables for bench/train_step.py: per-workload timings, ratios, targets, GFLOP/s and BLAS.

Every ratio divides two medians measured in the same run. "Fastest peer" is the fastest
non-symgraph row of a workload (hand-written numpy and every framework run by peers.py).
"""

from __future__ import annotations

import statistics
from typing import Any

Row = dict[str, Any]

SG_LLVM = "symgraph-llvm"
SG_NUMPY = "symgraph-numpy"
HAND_NUMPY = "numpy (hand)"

WORKLOADS: dict[str, str] = {
    "W1s": "W1  MLP 784-512-256-10 ReLU, softmax-CE, batch 128, SGD lr 0.1",
    "W1a": "W1  MLP 784-512-256-10 ReLU, softmax-CE, batch 128, Adam lr 1e-3",
    "W2": "W2  MLP 64-32-10 ReLU, softmax-CE, batch 32, SGD lr 0.1",
    "W3": "W3  XOR 2-8-1 tanh, sigmoid/BCE from logits, batch 4, SGD lr 0.5",
    "W4": "W4  one epoch of W2: 1,792 examples = 56 steps",
    "W5": "W5  Hessian-vector product of W3's loss w.r.t. all parameters",
    "C": "C   compile time of W1-SGD, first call (cold: fresh cache dir; new graph: a dir holding "
         "only the modules every program shares; warm: disk cache)",
    "ovh": "ovh call overhead: a compiled step with no work (x + 1 on a 4x2 float32 array)",
}

# workload -> (symgraph-llvm variant prefix, [(baseline kind, factor)]); see performance.md
# (W1 <= 1.1x the gemm floor), tightened for Adam to 1.05x by issue 11 (performance round 2)
TARGETS: dict[str, list[tuple[str, str, float]]] = {
    "W1s": [("step", "fastest peer", 0.9), ("step", "gemm floor", 1.1)],
    "W1a": [("step", "fastest peer", 0.9), ("step", "gemm floor", 1.05)],
    "W2": [("step", "fastest peer", 0.5)],
    "W3": [("step", "fastest peer", 0.5)],
    # jax.jit flushes subnormals to zero: the like-for-like row is the flushed one
    "W4": [("f.epoch", "jax lax.scan epoch", 0.5), ("flushed f.epoch", "jax lax.scan epoch", 0.5)],
    "W5": [("hvp", "fastest peer", 0.5)],
    "C": [("cold", "jax.jit first call", 0.5), ("warm:", "absolute ms", 30.0)],
    "ovh": [("x+1", "absolute us", 2.0)],
}


def merge_rounds(rounds: list[list[Row]]) -> list[Row]:
    """One row per (framework, workload, variant) from the rows of several rounds
    (``train_step.py --rounds``): the first round's row, with ``med_ms`` the median of the
    rounds' medians, ``p10_ms``/``p90_ms`` their min and max, ``n`` the sum and ``rounds_ms``
    every round's median; a same-process floor ratio is the median of the rounds' ratios.

    Rows whose every round lists its per-process samples (``samples_ms``: the compile rows,
    one process per sample) pool them instead: ``med_ms`` is the median of all the rounds'
    samples, ``p10_ms``/``p90_ms`` their min and max.  Why: for two rounds the median of
    medians is their mean, so one slow round moved a cold-compile row by half its slowdown
    (0.59x jax's first call in one run, against 0.44-0.45x in the runs around it); six
    pooled processes need four slow ones to move the median that far.
    A row that failed in some round keeps the rounds where it worked."""
    if len(rounds) == 1:
        return rounds[0]
    merged: dict[tuple, list[Row]] = {}
    for rows in rounds:
        for r in rows:
            merged.setdefault((r.get("fw"), r["wl"], r["variant"]), []).append(r)
    out = []
    for group in merged.values():
        good = [r for r in group if ok(r)]
        if not good:
            out.append(group[0])
            continue
        row = dict(good[0])
        meds = [r["med_ms"] for r in good]
        row.update(med_ms=statistics.median(meds), p10_ms=min(meds), p90_ms=max(meds),
                   rounds_ms=meds, n=sum(r.get("n") or 0 for r in good))
        if all(r.get("samples_ms") for r in good):
            pooled = [x for r in good for x in r["samples_ms"]]
            row.update(med_ms=statistics.median(pooled), p10_ms=min(pooled),
                       p90_ms=max(pooled), samples_ms=pooled, n=len(pooled))
        for key in ("floor_inproc", "hand_inproc"):  # same-process ratios: the rounds' median
            ratios = [r[key] for r in good if r.get(key)]
            if ratios:
                values = [f["ratio"] for f in ratios]
                row[key] = dict(ratios[0], ratio=statistics.median(values), lo=min(values),
                                hi=max(values), rounds=len(values),
                                by_round=[(f["ratio"], f.get("two_core")) for f in ratios])
        out.append(row)
    return out


def merge_floors(floors: list[dict[str, Any]]) -> dict[str, Any]:
    """The gemm section's info over rounds: the median floor (``floor_ms``)."""
    if not floors:
        return {}
    gemm = dict(floors[0])
    gemm["floor_ms"] = statistics.median([f["floor_ms"] for f in floors])
    return gemm


def is_peer(row: Row) -> bool:
    return not row["fw"].startswith("symgraph") and row["fw"] != "gemm floor"


def ok(row: Row) -> bool:
    return row.get("status", "ok") == "ok" and row.get("med_ms") is not None


def fastest_peer(rows: list[Row], wl: str) -> Row | None:
    cands = [r for r in rows if r["wl"] == wl and ok(r) and is_peer(r)]
    if wl == "C":  # compile: only first calls of real compilers count
        cands = [r for r in cands if r["fw"] != HAND_NUMPY]
    return min(cands, key=lambda r: r["med_ms"]) if cands else None


def find(rows: list[Row], fw: str, wl: str, variant_prefix: str = "") -> Row | None:
    for r in rows:
        if r["fw"] == fw and r["wl"] == wl and r.get("variant", "").startswith(variant_prefix):
            return r
    return None


def row_loss(row: Row, ref: dict[str, tuple[float, float]]) -> tuple[float | None, float | None]:
    """(measured, hand-numpy reference) loss of a row: the loss the second call returns (after
    one update); for W4 the last step's loss of the first epoch; for C the first call's loss."""
    if row["wl"] == "W4":
        return row.get("loss1"), ref.get("W4", (None, None))[0]
    if row["wl"] == "C":
        return row.get("loss1"), ref.get("W1s", (None, None))[0]
    return row.get("loss2"), ref.get(row["wl"], (None, None))[1]


def loss_check(row: Row, ref: dict[str, tuple[float, float]]) -> str:
    """'ok' / 'DIFF +x' against hand numpy's loss ('' when not comparable)."""
    if row.get("hvp_ok") is not None:
        return "ok" if row["hvp_ok"] else "DIFF"
    got, want = row_loss(row, ref)
    if want is None or got is None:
        return ""
    if abs(got - want) <= 2e-4 * max(1.0, abs(want)):
        return "ok"
    return f"DIFF {got - want:+.1e}"


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if v < 10 else f"{v:.1f}" if v < 1e4 else f"{v:.0f}"


def _ratio(a: Row | None, b: Row | None) -> str:
    if a is None or b is None or not ok(a) or not ok(b) or b["med_ms"] <= 0:
        return ""
    return f"{a['med_ms'] / b['med_ms']:.2f}x"


def baseline(rows: list[Row], wl: str, kind: str, gemm: dict[str, Any]) -> tuple[str, float | None]:
    """(description, ms) of a target's baseline measured in this run."""
    if kind == "fastest peer":
        r = fastest_peer(rows, wl)
        return ("fastest peer: " + (f"{r['fw']} {r['variant']}" if r else "none measured"),
                r["med_ms"] if r else None)
    if kind == "gemm floor":
        floor = gemm.get("floor_ms")
        return "gemm floor (8 gemms, numpy)", floor
    if kind == "jax lax.scan epoch":
        r = next((r for r in rows if r["fw"] == "jax.jit" and r["wl"] == "W4" and ok(r)
                  and "scan" in r.get("variant", "")), None)
        return "jax lax.scan epoch", r["med_ms"] if r else None
    if kind == "jax.jit first call":
        r = find(rows, "jax.jit", "C")
        return "jax.jit first call", r["med_ms"] if r and ok(r) else None
    if kind == "absolute ms":
        return "absolute", None
    return "absolute", None


def workload_tables(rows: list[Row], ref: dict[str, tuple[float, float]], wls: list[str],
                    gemm: dict[str, Any]) -> str:
    out = []
    hdr = (f"  {'framework':<16} {'variant':<34} {'median ms':>10} {'p10..p90 ms':>21} {'n':>6} "
           f"{'clean':>5} {'loss':>11} {'chk':>9} {'x hand np':>9} {'x fastest':>9}")
    for wl in wls:
        wrows = [r for r in rows if r["wl"] == wl]
        if not wrows:
            continue
        best = fastest_peer(rows, wl)
        hand = find(rows, HAND_NUMPY, wl)
        title = WORKLOADS.get(wl, wl)
        if best:
            title += f"   [fastest peer: {best['fw']} {best['variant']} {_ms(best['med_ms'])} ms]"
        out += ["", title, hdr, "  " + "-" * (len(hdr) - 2)]
        if wl in ("W1s", "W1a") and gemm.get("floor_ms"):
            out.append(f"  {'gemm floor':<16} {'8 gemms of W1 through numpy':<34} "
                       f"{_ms(gemm['floor_ms']):>10} {'':>21} {gemm.get('floor_n', ''):>6} "
                       f"{gemm.get('floor_clean', 0):5.0%}")
        order = {SG_LLVM: 0, SG_NUMPY: 1, HAND_NUMPY: 2}
        # symgraph rows in the order measured, then hand numpy, then peers by speed
        wrows.sort(key=lambda r: (order.get(r["fw"], 3), 0.0 if r["fw"] in order
                                  else r["med_ms"] if ok(r) else 1e18))
        for r in wrows:
            head = f"  {r['fw']:<16} {r.get('variant', ''):<34}"
            if not ok(r):
                out.append(f"{head} {r.get('status', 'error')}: {r.get('reason', '')}"[:160])
                continue
            spread = f"{_ms(r.get('p10_ms'))}..{_ms(r.get('p90_ms'))}" if r.get("n", 0) > 1 else ""
            got = row_loss(r, ref)[0]
            loss = f"{got:.6f}" if got is not None else ""
            clean = f"{r['clean']:5.0%}" if r.get("clean") is not None else ""
            out.append(f"{head} {_ms(r['med_ms']):>10} {spread:>21} {r.get('n', ''):>6} "
                       f"{clean:>5} {loss:>11} {loss_check(r, ref):>9} "
                       f"{_ratio(r, hand):>9} {_ratio(r, best):>9}"
                       + (f"  [{r['note']}]" if r.get("note") else ""))
    return "\n".join(out)


def target_rows(rows: list[Row], ref: dict[str, tuple[float, float]], wls: list[str],
                gemm: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (workload, target): symgraph-llvm ms, baseline, ratio, target, verdict."""
    res = []
    for wl in wls:
        for variant, kind, factor in TARGETS.get(wl, []):
            sgr = find(rows, SG_LLVM, wl, variant)
            npr = find(rows, SG_NUMPY, wl, variant)
            desc, base = baseline(rows, wl, kind, gemm)
            inproc = (sgr or {}).get("floor_inproc") if kind == "gemm floor" else None
            if kind == "fastest peer" and desc.startswith(f"fastest peer: {HAND_NUMPY}"):
                # hand numpy timed alongside the step too: the same machine state (this one
                # is 2x apart between processes), as the floor
                inproc = (sgr or {}).get("hand_inproc")
            if kind.startswith("absolute"):
                unit = kind.split()[1]
                base, target = None, f"<= {factor:g} {unit}"
            else:
                target = f"<= {factor:g}x"
            entry: dict[str, Any] = dict(wl=wl, variant=variant, baseline=desc, baseline_ms=base,
                                         target=target, factor=factor, kind=kind)
            for key, r in (("sg", sgr), ("sgnp", npr)):
                if r is None:
                    entry[key + "_ms"], entry[key + "_ratio"] = None, None
                    entry[key + "_status"] = "not run"
                    continue
                if not ok(r):
                    entry[key + "_ms"], entry[key + "_ratio"] = None, None
                    entry[key + "_status"] = f"{r.get('status')}: {r.get('reason', '')}"
                    continue
                entry[key + "_ms"], entry[key + "_status"] = r["med_ms"], "ok"
                if kind == "absolute ms":
                    entry[key + "_ratio"] = r["med_ms"]
                elif kind == "absolute us":
                    entry[key + "_ratio"] = r["med_ms"] * 1e3
                elif key == "sg" and inproc:  # the baseline timed alongside the step
                    entry[key + "_ratio"] = inproc["ratio"]
                    what = "gemm floor" if kind == "gemm floor" else f"{HAND_NUMPY} step"
                    entry["baseline"] = (f"{what}, same process [{inproc['lo']:.2f}.."
                                         f"{inproc['hi']:.2f}]")
                    entry["baseline_ms"] = inproc["b_ms"]
                    entry["by_round"] = inproc.get("by_round")
                else:
                    entry[key + "_ratio"] = r["med_ms"] / base if base else None
            if entry["sg_status"] != "ok":
                entry["verdict"] = "n/a (" + entry["sg_status"].split(":")[0] + ")"
            elif entry["sg_ratio"] is None:
                entry["verdict"] = "n/a (no baseline)"
            elif sgr is not None and loss_check(sgr, ref).startswith("DIFF"):
                entry["verdict"] = "WRONG (result differs)"
            else:
                entry["verdict"] = "PASS" if entry["sg_ratio"] <= factor else "MISS"
            res.append(entry)
    return res


def targets_table(entries: list[dict[str, Any]]) -> str:
    hdr = (f"  {'wl':<4} {'sg-llvm':<8} {'llvm ms':>9}  {'baseline (same run)':<46} {'base ms':>9} "
           f"{'ratio':>9} {'target':>9}  {'verdict':<22} {'numpy-backend ratio':>19}")
    out = ["", "Targets (docs/performance.md) for symgraph llvm; ratio = symgraph / baseline",
           hdr, "  " + "-" * (len(hdr) - 2)]

    def fmt_ratio(e: dict[str, Any], key: str) -> str:
        v = e[key + "_ratio"]
        if v is None:
            return "-"
        if e["kind"] == "absolute ms":
            return f"{v:.1f} ms"
        if e["kind"] == "absolute us":
            return f"{v:.2f} us"
        return f"{v:.2f}x"

    for e in entries:
        llvm_ms = _ms(e["sg_ms"]) if e["sg_ms"] is not None else "-"
        out.append(f"  {e['wl']:<4} {e['variant']:<8} {llvm_ms:>9}  {e['baseline'][:46]:<46} "
                   f"{_ms(e['baseline_ms']):>9} {fmt_ratio(e, 'sg'):>9} {e['target']:>9}  "
                   f"{e['verdict'][:22]:<22} {fmt_ratio(e, 'sgnp'):>19}")
    for e in entries:  # the machine's mode beside each round's same-process ratio
        modes = [(r, m) for r, m in e.get("by_round") or [] if m]
        if modes:
            out.append(f"  {e['wl']} {e['variant']} / {e['baseline'].split(',')[0]} by round: "
                       + ", ".join(f"{r:.2f}x (two-core speedup {m[0]:.2f} / {m[1]:.2f})"
                                   for r, m in modes)
                       + "  [~1.9: two cores; 1.0-1.5: the VM's slow mode]")
    reasons = sorted({e["sg_status"] for e in entries if e["sg_status"] not in ("ok", "not run")})
    for r in reasons:
        out.append(f"  symgraph-llvm {r}"[:200])
    return "\n".join(out)


def flops_table(rows: list[Row], gemm: dict[str, Any]) -> str:
    flops = gemm.get("flops")
    if not flops:
        return ""
    out = ["", f"W1 GEMM work per step: {flops / 1e6:.1f} MFLOP (3 forward + 3 weight-gradient "
               "+ 2 input-gradient gemms)"]
    raw = gemm.get("raw", {})
    if raw:
        out.append("  numpy raw gemm rate: " + ", ".join(
            f"{k} {v['gflops']:.1f} GFLOP/s" for k, v in raw.items()))
    floor = gemm.get("floor_ms")
    if floor:
        out.append(f"  gemm floor: the 8 gemms alone through numpy {floor:.3f} ms = "
                   f"{flops / floor / 1e6:.1f} GFLOP/s")
    ref_rate = max((v["gflops"] for v in raw.values()), default=None)
    out.append(f"  {'framework':<16} {'variant':<34} {'ms/step':>9} {'GFLOP/s':>8} "
               f"{'x gemm floor':>12} {'% of best raw gemm rate':>24}")
    for r in rows:
        if r["wl"] in ("W1s", "W1a") and ok(r):
            g = flops / r["med_ms"] / 1e6
            xf = f"{r['med_ms'] / floor:.2f}x" if floor else ""
            pr = f"{100 * g / ref_rate:.0f}%" if ref_rate else ""
            out.append(f"  {r['fw']:<16} {r['wl'] + ' ' + r['variant']:<34} {r['med_ms']:9.3f} "
                       f"{g:8.1f} {xf:>12} {pr:>24}")
    return "\n".join(out)


def blas_lines(infos: dict[str, Any]) -> str:
    """One line per process: the BLAS libraries it loaded, kernel and thread count."""
    out = ["", "BLAS per process (kernel, threads):"]
    for proc, info in infos.items():
        if not info:
            continue
        if isinstance(info, dict) and "threadpoolctl" in info:
            libs = info["threadpoolctl"]
            desc = "; ".join(
                f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
                f"threads={d.get('num_threads')} ({d.get('prefix')})"
                for d in libs if "error" not in d) or str(libs)
            out.append(f"  {proc:<16} threadpoolctl: {desc}")
        elif isinstance(info, dict) and "blas_info" in info:
            b = info["blas_info"]
            if "error" in b:
                out.append(f"  {proc:<16} codegen.native.blas.blas_info(): {b['error']}")
                continue
            version = b.get("config", "").split(" ")[1] if b.get("config") else "?"
            out.append(f"  {proc:<16} codegen.native.blas.blas_info(): OpenBLAS {version} "
                       f"{b.get('corename')} threads={b.get('num_threads')} ({b.get('path')})")
        else:
            out.append(f"  {proc:<16} {info}")
    return "\n".join(out)
