"""Training on every core: our loop as one single-thread process per core (DDP over gloo), against one process.

    OMP_NUM_THREADS=1 .venv/bin/torchrun --nproc_per_node 2 bench/train_ddp_bench.py            # ~4 min here
    OMP_NUM_THREADS=1 .venv/bin/torchrun --nproc_per_node 2 bench/train_ddp_bench.py --compile  # also compiled

In one torchrun job, in this order:
- the matmul ceiling: a one-thread 2048^3 matmul per dtype timed on every rank at once (so every core is busy,
  as in training), summed over the ranks; timed again at the end, the better of the two stands;
- the baseline: ``rag_bench.training.loop.train`` in rank 0 alone (world size 1, one thread, ``--batch-size`` rows per
  step) while the other ranks wait in a barrier (their CPU time while waiting is reported);
- ours on every rank: the same loop under DDP, ``--batch-size`` rows per rank, so each process does the
  baseline's work per step; with ``--compile`` the same again with ``compile=True``.
MFU = 6 x parameters x tokens/s over the ceiling of the cores used: rank 0's for the baseline, the sum for DDP.
Prints a table and writes bench/results/train_ddp.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from train_bench import (
    REPO,
    corpus_texts,
    load_average,
    machine_info,
    matmul_ceiling,
    throughput,
    time_ours,
)

from rag_bench.config import ModelConfig, TrainConfig
from rag_bench.records import write_json


def rank_ceilings() -> dict[str, list[float]]:
    """GFLOP/s per dtype of every rank's one-thread matmul, timed at the same moment (summed by the caller)."""
    ceilings = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        dist.barrier()
        mine = torch.tensor([matmul_ceiling(dtype)], dtype=torch.float64)
        gathered = [torch.zeros(1, dtype=torch.float64) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, mine)
        ceilings[name] = [float(t) for t in gathered]
    return ceilings


def baseline_alone(cfg: TrainConfig, texts, heldout, warmup: int, workdir: Path) -> dict:
    """Rank 0 trains as a single process (the loop reads WORLD_SIZE) while the others wait in a barrier.

    Rank 0 gets the part, with the CPU seconds the waiting ranks spent (they should be idle); the others get {}.
    """
    part, cpu = {}, time.process_time()
    if dist.get_rank() == 0:
        saved = os.environ["WORLD_SIZE"]
        os.environ["WORLD_SIZE"] = "1"
        try:
            part = time_ours(cfg, texts, heldout, warmup, workdir / "alone")
        finally:
            os.environ["WORLD_SIZE"] = saved
    dist.barrier()
    waiting = torch.tensor([0.0 if part else time.process_time() - cpu], dtype=torch.float64)
    dist.all_reduce(waiting)
    return {**part, "waiting_ranks_cpu_s": round(float(waiting), 2)} if part else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="base", help="ModelConfig preset: tiny | small | base | large")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps of each loop")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compiling happens here)")
    parser.add_argument("--batch-size", type=int, default=8, help="rows of n_positions tokens per step and process")
    parser.add_argument("--compile", action="store_true", help="also time the DDP loop with compile=True")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_ddp.json")
    args = parser.parse_args()
    if "WORLD_SIZE" not in os.environ:
        parser.error("run it under torchrun: OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 bench/train_ddp_bench.py")
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    load_start = load_average()
    model_cfg = ModelConfig.preset(args.size)
    texts, source = corpus_texts()
    heldout, texts = texts[:1], texts[1:]
    alone = TrainConfig(model=model_cfg, max_steps=args.warmup + args.steps, batch_size=args.batch_size,
                        warmup_steps=2, eval_every=10_000, save_every=10_000, eval_max_texts=1, probe_count=0,
                        copy_share=0.0, seed=0)
    together = alone.replace(batch_size=args.batch_size * world)
    first = rank_ceilings()
    with tempfile.TemporaryDirectory(prefix="train_ddp_bench_") as tmp:
        shared = [tmp]
        dist.broadcast_object_list(shared, src=0)  # rank 0's folder: only rank 0 writes checkpoints and logs
        workdir = Path(shared[0])
        parts = {"one_process": baseline_alone(alone, texts, heldout, args.warmup, workdir)}
        runs = {"ddp": together, **({"ddp_compiled": together.replace(compile=True)} if args.compile else {})}
        for name, cfg in runs.items():
            parts[name] = time_ours(cfg, texts, heldout, args.warmup, workdir / name)
            dist.barrier()
        last = rank_ceilings()
    if rank != 0:
        dist.destroy_process_group()
        return
    per_rank = {d: [max(a, b) for a, b in zip(first[d], last[d], strict=True)] for d in first}
    one_core = {d: per_rank[d][0] for d in per_rank}
    all_cores = {d: sum(per_rank[d]) for d in per_rank}
    block = model_cfg.n_positions
    loops = {"one_process": throughput(parts["one_process"], args.batch_size * block,
                                       parts["one_process"]["parameters"], one_core)}
    for name in runs:
        loops[name] = throughput(parts[name], args.batch_size * world * block, parts[name]["parameters"], all_cores)
    report = {
        "model": {"size": args.size, "arch": model_cfg.arch, "parameters": parts["ddp"]["parameters"],
                  "n_positions": block},
        "data": {"source": source, "texts": len(texts)}, "world_size": world, "threads_per_process": 1,
        "rows_per_process_and_step": args.batch_size, "warmup_steps": args.warmup, "timed_steps": args.steps,
        "matmul_ceiling_gflop_per_s": {"per_rank": {d: [round(v, 1) for v in vs] for d, vs in per_rank.items()},
                                       "one_core": {d: round(v, 1) for d, v in one_core.items()},
                                       "all_cores": {d: round(v, 1) for d, v in all_cores.items()}},
        "loops": loops,
        "ratios": {name: round(loops[name]["tokens_per_s"] / loops["one_process"]["tokens_per_s"], 3)
                   for name in runs},
        "mfu_target_of_bf16_ceiling": 0.40,
        "target_met": {name: loops[name]["mfu_of_bf16_ceiling"] >= 0.40 for name in runs},
        "load_start": load_start, "load_end": load_average(), "machine": machine_info(),
    }
    write_json(args.out, report)
    print_table(report)
    print(f"wrote {args.out}")
    dist.destroy_process_group()


def print_table(r: dict) -> None:
    m, c = r["model"], r["matmul_ceiling_gflop_per_s"]
    print(f"\n== data-parallel training: {m['size']} {m['arch']}, {m['parameters'] / 1e6:.2f}M parameters, "
          f"{r['world_size']} processes x 1 thread, {r['rows_per_process_and_step']} x {m['n_positions']} tokens "
          f"per process and step, {r['timed_steps']} timed steps, load {r['load_start']} -> {r['load_end']} ==")
    print(f"bf16 matmul ceiling: {c['one_core']['bf16']:.0f} GFLOP/s on rank 0's core, "
          f"{c['all_cores']['bf16']:.0f} on all {r['world_size']} (per rank {c['per_rank']['bf16']})")
    print(f"{'loop':<16}{'tokens/s':>9}{'MFU bf16':>10}{'MFU fp32':>10}{'x one process':>15}{'peak RSS':>10}")
    for name, row in r["loops"].items():
        print(f"{name:<16}{row['tokens_per_s']:>9}{row['mfu_of_bf16_ceiling']:>10.1%}{row['mfu_of_fp32_ceiling']:>10.1%}"
              f"{r['ratios'].get(name, 1.0):>14.2f}x{row['peak_rss_mb']:>8.0f}MB")
    print(f"the waiting ranks used {r['loops']['one_process']['waiting_ranks_cpu_s']} s of CPU during the baseline")
    met = ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in r["target_met"].items())
    print(f"MFU target {r['mfu_target_of_bf16_ceiling']:.0%} of the bf16 ceiling of the cores used: {met}")


if __name__ == "__main__":
    main()
