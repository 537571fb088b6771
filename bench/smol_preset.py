"""One seed of a collapse preset, timed stage by stage against its compute floor (issue 21).

    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/smol_preset.py                 # smol, seed 0, native ISA
    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/smol_preset.py --isa avx2      # the same, AVX2 only
    .venv/bin/python bench/smol_preset.py --report-only --run-dir data/runs/smol-control-s0   # a finished run
    .venv/bin/python bench/smol_preset.py --preset tiny --run-dir /tmp/tiny --out /tmp/tiny.json   # smoke test

Runs, or resumes, ``rag-bench collapse --preset PRESET --seed SEED`` with the strategies of the target (``replace``,
``mix:0.1`` and the control ``fresh``) in RUN_DIR, then sets each stage's wall time (train, write, evaluate from the
generations' manifests; report = the rest of the run's wall time in this process) against its floor: the forward
FLOPs of the tokens it processed (``rag_bench.collapse.costs``) over the matmul ceiling measured in this process, at
the run's threads, in the dtype the run computes in (bf16 where the CPU runs it natively, else fp32), at the start
and the end (best of both). The floor is a lower bound (no attention, padding or recomputation). ``--isa avx2`` runs
the whole bench in a child whose oneDNN, MKL and ATen are limited to AVX2 (as bench/embed_bench.py), where the run
computes in fp32. Writes bench/results/smol_preset.json with the ISA, the load before and after, the stages and the
verdict against the targets: one seed in at most 25 minutes with native bf16, 60 with AVX2 only, on an idle machine
(a loaded machine's time is reported, never judged against the target).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from embed_bench import AVX2_ENV, cpu_flags
from train_bench import REPO, machine_info, matmul_ceiling

from rag_bench.collapse.costs import stage_costs, stage_totals
from rag_bench.records import read_json, write_json

TARGET_MIN = {"native_bf16": 25, "avx2": 60}  # minutes per seed on an idle 2-core machine (issue 21)
IDLE_LOAD = 0.5  # a load average above this at the start, beside the run's own threads, is not an idle machine
STRATEGIES = ("replace", "mix:0.1", "fresh")


def ceiling(dtype: torch.dtype) -> float:
    return matmul_ceiling(dtype, n=1024, reps=5)


def run_seed(args: argparse.Namespace) -> float:
    """Run or resume the seed in this process; its wall time in seconds."""
    from rag_bench.collapse.run import resolve_config, run_collapse

    cfg = resolve_config(preset=args.preset, run_dir=args.run_dir, overrides={
        "seed": args.seed, "threads": args.threads, "strategies": tuple(args.strategies.split(","))})
    started = time.perf_counter()
    run_collapse(cfg, run_dir=args.run_dir, data_dir=args.data_dir, echo=True)
    return time.perf_counter() - started


def analyse(args: argparse.Namespace, wall_s: float | None, load_start: float, ceilings: dict) -> dict:
    native = "bf16" in ceilings  # main times bf16 only where the CPU runs it natively
    dtype = "bf16" if native else "fp32"
    peak = ceilings[dtype] * 1e9
    rows = stage_costs(args.run_dir)
    strategies = ",".join(read_json(Path(args.run_dir) / "config.json").get("strategies", []))
    totals = stage_totals(rows)
    if wall_s is not None:
        totals["report"] = {"seconds": max(0.0, wall_s - sum(t["seconds"] for t in totals.values())),
                            "tokens": 0, "flops": 0.0}
    for t in totals.values():
        t["floor_s"] = round(t["flops"] / peak, 3)
        t["over_floor"] = round(t["seconds"] / t["floor_s"], 1) if t["floor_s"] else None
        t["seconds"] = round(t["seconds"], 1)
    total_s = sum(t["seconds"] for t in totals.values())
    flags = cpu_flags()
    # AVX2 only: limited so by the environment (--isa avx2), or a CPU without AVX-512 (the target's machine class)
    avx2_only = os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2" or ("avx2" in flags and "avx512f" not in flags)
    kind = "native_bf16" if native else "avx2" if avx2_only else "fp32"
    idle = load_start <= IDLE_LOAD
    target = TARGET_MIN.get(kind) if args.preset == "smol" else None  # the targets are one smol seed's
    return {
        "preset": args.preset, "seed": args.seed, "strategies": strategies, "run_dir": str(args.run_dir),
        "isa": {"cpu_flags": flags, "limited_to": os.environ.get("ONEDNN_MAX_CPU_ISA"), "compute": dtype,
                "kind": kind},
        "threads": torch.get_num_threads(), "load_start": load_start, "load_end": round(os.getloadavg()[0], 2),
        "matmul_ceiling_gflop_per_s": {k: round(v, 1) for k, v in ceilings.items()},
        "stages": totals, "rows": rows, "wall_s_this_process": round(wall_s, 1) if wall_s is not None else None,
        "total_min": round(total_s / 60, 1), "floor_min": round(sum(t["floor_s"] for t in totals.values()) / 60, 3),
        "target_min": target,
        "verdict": ("not judged: the run was not timed in this process (--report-only)" if wall_s is None else
                    f"not judged: the machine was not idle at the start (load {load_start})" if not idle else
                    "no target for this preset and ISA" if target is None else
                    "met" if total_s / 60 <= target else f"missed by {total_s / 60 - target:.1f} min"),
        "machine": machine_info(),
    }


def print_table(res: dict) -> None:
    print(f"\n== {res['preset']} seed {res['seed']} ({res['strategies']}) on {res['isa']['kind']}, "
          f"{res['threads']} threads, load {res['load_start']} -> {res['load_end']} ==")
    print(f"{'stage':<8} {'wall s':>9} {'floor s':>9} {'x floor':>8} {'tokens':>12}")
    for stage, t in res["stages"].items():
        ratio = f"{t['over_floor']:>8.1f}" if t["over_floor"] else f"{'-':>8}"
        print(f"{stage:<8} {t['seconds']:>9.1f} {t['floor_s']:>9.2f} {ratio} {t['tokens']:>12,}")
    print(f"total {res['total_min']} min (floor {res['floor_min']} min); target {res['target_min']} min: "
          f"{res['verdict']}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="smol")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of the run")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--run-dir", type=Path, default=None, help="default DATA_DIR/runs/bench-PRESET-sSEED")
    parser.add_argument("--isa", choices=["native", "avx2"], default="native")
    parser.add_argument("--report-only", action="store_true", help="analyse RUN_DIR as it is; run nothing")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "smol_preset.json")
    args = parser.parse_args(argv)
    args.run_dir = args.run_dir or args.data_dir / "runs" / f"bench-{args.preset}-s{args.seed}"
    if args.isa == "avx2" and os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":
        child = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--isa", "avx2")]
        proc = subprocess.run([sys.executable, __file__, *child, "--isa", "avx2"], cwd=REPO,
                              env={**os.environ, **AVX2_ENV})
        raise SystemExit(proc.returncode)
    torch.set_num_threads(args.threads)
    load_start = round(os.getloadavg()[0], 2)
    # bf16 is timed only where it is native: emulated, it is not what the run computes in, and takes minutes
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if torch.ops.mkldnn._is_mkldnn_bf16_supported()
                                        else {})}
    first = {k: ceiling(d) for k, d in dtypes.items()}
    wall_s = None if args.report_only else run_seed(args)
    ceilings = {k: max(v, ceiling(dtypes[k])) for k, v in first.items()}
    res = analyse(args, wall_s, load_start, ceilings)
    res["command"] = " ".join([Path(__file__).name, *(argv if argv is not None else sys.argv[1:])])
    write_json(args.out, res)
    print_table(res)
    print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
