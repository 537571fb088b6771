"""Seconds per step of the `quick` preset's generation-0 training with this CPU's native kernels and restricted to
AVX2, in one run: how much longer the preset takes on a CPU without AVX-512 and native bf16.

    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/train_isa.py --steps 25 --rounds 2

Each round trains the preset's generation-0 TrainConfig (the `small` model, batch 32) for ``--steps`` steps with
`rag-bench train` twice, natively and with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
MKL_ENABLE_INSTRUCTIONS=AVX2 (oneDNN then reports no bf16, so the loop trains in fp32 as it does on such a CPU),
alternating so that both see the same machine load. The first 5 steps of each (warm-up) are dropped; the
ratio of the median step times comes with a 95% bootstrap interval over steps. Prints a table and writes
bench/results/train_isa.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
WARMUP_STEPS = 5


def step_seconds(config: Path, corpus: Path, out: Path, steps: int, isa: str) -> list[float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           **(AVX2_ENV if isa == "avx2" else {})}
    subprocess.run([sys.executable, "-m", "rag_bench", "train", "--config", str(config), "--corpus", str(corpus),
                    "--kinds", "record", "--limit", "400", "--max-steps", str(steps), "--out", str(out)],
                   cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (out / "last" / "train_log.jsonl").read_text().splitlines()]
    return [row["step_s"] for row in rows if row["step"] > WARMUP_STEPS and "heldout_ppl" not in row]


def bootstrap_ratio(slow: list[float], fast: list[float], draws: int = 2000) -> list[float]:
    rng = random.Random(0)
    ratios = sorted(statistics.median(rng.choices(slow, k=len(slow))) /
                    statistics.median(rng.choices(fast, k=len(fast))) for _ in range(draws))
    return [round(ratios[int(0.025 * draws)], 2), round(ratios[int(0.975 * draws)], 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=25, help="steps per training (the first 5 are not timed)")
    parser.add_argument("--rounds", type=int, default=2, help="native + avx2 pairs, alternating")
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "corpora" / "factbook" / "corpus.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_isa.json")
    args = parser.parse_args()
    from rag_bench.config import collapse_preset

    # the steps only: the held-out evaluation that ends every training is cut to 2 texts
    cfg = collapse_preset("quick").train.replace(eval_every=10_000, save_every=10_000, eval_max_texts=2)
    times: dict[str, list[float]] = {"native": [], "avx2": []}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "train_config.json"
        config.write_text(json.dumps(cfg.to_dict()))
        for round_ in range(args.rounds):
            for isa in ("native", "avx2"):
                times[isa] += step_seconds(config, args.corpus, Path(tmp) / f"{isa}-{round_}", args.steps, isa)
    native, avx2 = statistics.median(times["native"]), statistics.median(times["avx2"])
    result = {"preset": "quick", "model": cfg.model.name, "batch_size": cfg.batch_size, "env_avx2": AVX2_ENV,
              "native_s_per_step": round(native, 3), "avx2_s_per_step": round(avx2, 3),
              "ratio": round(avx2 / native, 2), "ratio_ci95": bootstrap_ratio(times["avx2"], times["native"]),
              "steps_timed": {k: len(v) for k, v in times.items()}, "load_1min": round(os.getloadavg()[0], 2),
              "command": "bench/train_isa.py " + " ".join(sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| kernels | s per step (median) |\n|---|---|\n| native | {native:.3f} |\n| avx2 | {avx2:.3f} |\n"
          f"avx2 / native: {result['ratio']} {result['ratio_ci95']} (95% bootstrap)\nwrote {args.out}")


if __name__ == "__main__":
    main()
