"""Copy benchmark: how soon does each architecture learn to read a fact from its context?

    .venv/bin/python bench/copy_bench.py                          # lfm2, llama and gpt2, `small`, 600 steps each
    .venv/bin/python bench/copy_bench.py --archs lfm2 --steps 300 --size base

Each architecture is trained from scratch by ``rag_bench.training.loop.train`` on the copy curriculum alone
(``copy_share=1``): passages of 1-3 Factbook record lines of an invented entity with changed values, then
the same lines repeated, the loss on the values. Every ``--every`` steps the training loop asks 100 held-out
copy probes (2-3 lines, a new invented entity, the question one line's prefix) and logs greedy exact match.
Nothing but reading the passage answers them. This is the measurement behind the choice of LFM2 (gated short
convolutions between attention blocks) for generation 0; docs/copying.md tells the story. Steps, not
seconds, are compared, so the load of the machine does not matter. Prints a table and writes
bench/results/copy.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from rag_bench.config import ModelConfig, TrainConfig  # noqa: E402
from rag_bench.eval.run import provenance  # noqa: E402
from rag_bench.records import read_corpus, read_json, read_jsonl, write_json  # noqa: E402
from rag_bench.training.loop import train  # noqa: E402


def corpus_texts(corpus: Path, limit: int) -> tuple[list[str], list[str]]:
    docs = read_corpus(corpus)
    train_texts = [d.contents for d in docs if d.metadata.get("split") != "heldout"][:limit]
    heldout = [d.contents for d in docs if d.metadata.get("split") == "heldout"][:20]
    return train_texts, heldout or train_texts[:5]


def copy_curve(arch: str, args: argparse.Namespace, texts: list[str], heldout: list[str]) -> dict:
    cfg = TrainConfig(model=ModelConfig.preset(args.size, arch=arch), max_steps=args.steps, batch_size=32,
                      lr=args.lr, warmup_steps=30, min_lr_ratio=1.0, weight_decay=0.0, eval_every=args.every,
                      save_every=args.steps, eval_max_texts=10, probe_count=100, copy_share=1.0,
                      copy_min_lines=1, copy_max_lines=3, copy_max_value_chars=30, copy_max_distractors=0,
                      seed=args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="copy_bench_") as tmp:
        train(cfg, train_texts=texts, heldout_texts=heldout, out_dir=tmp)
        log = read_jsonl(Path(tmp) / "last" / "train_log.jsonl")
    curve = {row["step"]: row["copy_em"] for row in log if "copy_em" in row}
    return {"arch": arch, "copy_em_by_step": curve, "final_loss": log[-1]["loss"], "config": cfg.to_dict(),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "corpora" / "factbook" / "corpus.jsonl")
    parser.add_argument("--archs", default="lfm2,llama,gpt2", help="comma-separated architectures")
    parser.add_argument("--size", default="small", help="model preset")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=100, help="steps between copy-probe evaluations")
    parser.add_argument("--lr", type=float, default=5e-3, help="constant after 30 warm-up steps")
    parser.add_argument("--docs", type=int, default=1500, help="training documents the records come from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "copy.json")
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"{args.corpus}: corpus not found; build it with `rag-bench prepare`")
    torch.set_num_threads(args.threads)
    texts, heldout = corpus_texts(args.corpus, args.docs)
    runs = [copy_curve(arch.strip(), args, texts, heldout) for arch in args.archs.split(",") if arch.strip()]
    steps = sorted({s for run in runs for s in run["copy_em_by_step"]})
    print(f"\ncopy exact match on 100 invented-entity probes, `{args.size}` models, copy curriculum only\n")
    print(f"{'arch':<8}" + "".join(f"{'step ' + str(s):>10}" for s in steps) + f"{'seconds':>10}")
    for run in runs:
        print(f"{run['arch']:<8}" + "".join(f"{run['copy_em_by_step'].get(s, float('nan')):>10.2f}" for s in steps)
              + f"{run['seconds']:>10.0f}")
    previous = read_json(args.out) if args.out.is_file() else {}
    merged = {r["arch"]: r for r in previous.get("runs", [])} | {r["arch"]: r for r in runs}
    write_json(args.out, {"benchmark": "copy", "size": args.size, "steps": args.steps, "lr": args.lr,
                          "runs": list(merged.values()), "torch_threads": args.threads,
                          "load_average": os.getloadavg(), **provenance()})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
