"""`rag-bench contaminate`: contaminated indexes of a run's generation, measured with and without defences.

    rag-bench contaminate data/runs/quick-factbook --gen 4 --shares 0,0.25,0.5,0.75,0.9 --limit 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rag_bench.cli.common import CliError, add_subcommand


def _cmd_contaminate(args: argparse.Namespace) -> None:
    from rag_bench.contaminate.config import ContaminateConfig, parse_shares
    from rag_bench.contaminate.run import ContaminateError, contaminate

    items = {"shares": parse_shares(args.shares), "limit": args.limit, "strategy": args.strategy or "",
             "k": args.k or 0, "seed": args.seed, "retrievers": _names(args.retrievers),
             "defences": _names(args.defences), "ks": _ints(args.ks, "--ks"),
             "trusted_depths": _ints(args.trusted_depths, "--trusted-depths"), "writer": args.writer,
             "writer_temperature": args.writer_temperature, "restate_model": args.restate_model,
             "writer_repetition_penalty": args.writer_repetition_penalty,
             "fluency_scorer": args.fluency_scorer, "human_control": not args.no_human_control}
    cfg = ContaminateConfig(**{k: v for k, v in items.items() if v is not None})
    try:
        out = contaminate(args.run_dir, generation=args.gen, cfg=cfg, data_dir=args.data_dir, out=args.out,
                          thresholds=args.thresholds)
    except ContaminateError as exc:
        raise CliError(str(exc)) from None
    print(f"done: {out} (results.json, results.csv, filters.csv, differences.csv, table.md, thresholds.json, "
          "contamination.png, retrieved_share.png)")
    if args.publish:
        from rag_bench.contaminate.report import publish

        print(f"published the small result files to {publish(out, args.publish)}")


def _names(text: str) -> tuple[str, ...] | None:
    return tuple(s.strip() for s in text.split(",") if s.strip()) or None


def _ints(text: str, flag: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip()) or None
    except ValueError:
        raise CliError(f"{flag}: {text!r} is not a comma-separated list of whole numbers") from None


def _add_contaminate(sub) -> None:
    p = add_subcommand(sub, "contaminate",
                       "add text a run's generation wrote to copies of the human index, and measure what it costs",
                       "rag-bench contaminate data/runs/quick-factbook --gen 4 --shares 0,0.25,0.5,0.75,0.9 "
                       "--limit 100")
    p.add_argument("run_dir", type=Path, help="a collapse run folder (rag-bench collapse)")
    p.add_argument("--gen", type=int, required=True, help="the generation that writes the synthetic documents")
    p.add_argument("--shares", default="0,0.25,0.5,0.75,0.9",
                   help="synthetic shares of the answer pool, each in [0, 1), comma-separated")
    p.add_argument("--limit", type=int, default=None, help="a seeded sample of this many probes (default all)")
    p.add_argument("--strategy", default=None, help="whose last generation answers (default the run's first)")
    p.add_argument("--retrievers", default="dense,bm25,hybrid", help="comma-separated: dense, bm25, hybrid")
    p.add_argument("--defences", default="none,provenance,perplexity,trusted",
                   help="comma-separated: none, provenance, perplexity, trusted")
    p.add_argument("--k", type=int, default=None, help="passages per grounded prompt (default the run's eval k)")
    p.add_argument("--seed", type=int, default=0, help="probe sample, rewrites and watermark coin")
    p.add_argument("--ks", default="1,3,5", help="passages per prompt at which the cost is measured (control)")
    p.add_argument("--trusted-depths", default="1,2,4,8,16",
                   help="trusted source: candidates read per passage, swept")
    p.add_argument("--writer", choices=["generation", "restate"], default="generation",
                   help="generation: --gen continues each record prefix; restate: an instruct model (--restate-model) "
                        "restates the passage with one value changed")
    p.add_argument("--writer-temperature", type=float, default=1.0, help="the writer's temperature (0: greedy)")
    p.add_argument("--writer-repetition-penalty", type=float, default=1.0,
                   help="> 1 keeps a small writer from repeating itself (1: off)")
    p.add_argument("--restate-model", default="smollm2-135m", help="the restate writer's model")
    p.add_argument("--fluency-scorer", default="smollm2-135m",
                   help="the neutral model whose perplexity of the rewrites is reported (gen0: the run's generation 0)")
    p.add_argument("--no-human-control", action="store_true",
                   help="skip the human-distractor control (as many held-out human chunks at each share)")
    p.add_argument("--thresholds", type=Path, default=None,
                   help="reuse a thresholds.json chosen on dev (default: choose them on this run's dev probes)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN/contaminate/gen_<n>[-limit<L>])")
    p.add_argument("--publish", type=Path, default=None,
                   help="also copy the small result files (no samples) to this folder, e.g. docs/results/NAME")
    p.set_defaults(func=_cmd_contaminate)


SUBCOMMANDS = [_add_contaminate]
