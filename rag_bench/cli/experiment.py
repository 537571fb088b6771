"""`rag-bench collapse | report`: the collapse experiment and its report.

    rag-bench collapse --preset quick --run-dir data/runs/quick     # the same command resumes
    rag-bench report data/runs/quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rag_bench.cli.common import CliError, add_subcommand


def _cmd_collapse(args: argparse.Namespace) -> None:
    from rag_bench.collapse.data import InputError
    from rag_bench.collapse.run import RunCancelled, default_run_dir, resolve_config, run_collapse
    from rag_bench.run_status import RunLocked

    errors: tuple[type[Exception], ...] = (InputError, RunLocked)
    if args.ray is not None:
        from rag_bench.distributed.cluster import RayUnavailable, import_ray

        errors += (RayUnavailable,)
        try:
            import_ray()  # a missing Ray is one clear error before any work
        except RayUnavailable as exc:
            raise CliError(str(exc)) from None

    strategies = tuple(s.strip() for item in args.strategy or () for s in item.split(",") if s.strip())
    overrides = {"generations": args.generations, "strategies": strategies or None, "seed": args.seed,
                 "model_size": args.model_size, "decoding": args.decoding, "corpus": args.corpus,
                 "base_model": str(args.base_model) if args.base_model else None, "lora_rank": args.lora_rank,
                 "next_curriculum": True if args.next_curriculum else None, "threads": args.threads}
    cfg = resolve_config(config_file=args.config, preset=args.preset, run_dir=args.run_dir,
                         overrides={k: v for k, v in overrides.items() if v is not None})
    run_dir = args.run_dir or default_run_dir(cfg, args.data_dir)
    print(f"run folder: {run_dir}  (the same command resumes it)", flush=True)
    try:
        run_collapse(cfg, run_dir=run_dir, data_dir=args.data_dir, ray_address=args.ray)
    except errors as exc:
        raise CliError(str(exc)) from None
    except RunCancelled:
        print("cancelled; run the same command to resume", file=sys.stderr)
        raise SystemExit(143) from None
    print(f"done: {run_dir}")


def _add_collapse(sub) -> None:
    p = add_subcommand(sub, "collapse",
                       "retrain a model generation after generation on its own text, per data strategy",
                       "rag-bench collapse --preset quick\n"
                       "  rag-bench collapse --preset quick --strategy replace --strategy mix:0.1 --generations 3 "
                       "--run-dir data/runs/r2\n"
                       "  rag-bench collapse --run-dir data/runs/r2          # resume after a kill or a cancel\n"
                       "  rag-bench collapse --preset quick --ray auto       # branches on the running Ray cluster")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, default=None, help="a CollapseConfig JSON file")
    source.add_argument("--preset", default=None, help="tiny | quick | full | smol | paper | paper-1epoch")
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default DATA_DIR/runs/<preset>-<corpus>)")
    p.add_argument("--generations", type=int, default=None, help="models per strategy, generation 0 included")
    p.add_argument("--strategy", action="append", default=None,
                   help="replace | mix:P | accumulate | accumulate-fixed | accumulate-subsample | "
                        "filter[:perplexity|dedup] | watermark[:C] | grounded | fresh (the human-text control); "
                        "repeat the flag or separate with commas")
    p.add_argument("--model-size", default=None, help="model preset of every generation: tiny | small | base | large")
    p.add_argument("--decoding", choices=["beam", "sample"], default=None,
                   help="the writer: 5-way beam search with repetition penalty, or pure sampling")
    p.add_argument("--seed", type=int, default=None, help="seed of the whole run (generation 0 included)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (0: by the load when the run starts); 1 for each of several runs side by side")
    p.add_argument("--corpus", default=None, help="corpus and index name under DATA_DIR (default factbook)")
    p.add_argument("--base-model", type=Path, default=None,
                   help="a local HF causal-LM folder to fine-tune, or a registry name: smollm2-135m")
    p.add_argument("--lora-rank", type=int, default=None,
                   help="fine-tune LoRA adapters of this rank (PEFT) in every generation instead of all weights")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the branches after generation 0 as Ray tasks: a local cluster, or ADDRESS (auto, "
                        "HOST:PORT, ray://HOST:10001); resumable with or without it (docs/scale.md)")
    p.add_argument("--next-curriculum", action="store_true",
                   help="later generations keep fact, copy and retrieval rows built from their pool (an ablation)")
    p.set_defaults(func=_cmd_collapse)


def _cmd_report(args: argparse.Namespace) -> None:
    from rag_bench.records import read_json
    from rag_bench.report.write import PrimaryChoice, compare_runs, write_report

    if len(args.run_dir) > 1 and args.out is None:
        raise CliError("several run folders need --out DIR for the combined report")
    if args.seeds and len(args.run_dir) == 1:
        raise CliError("--seeds pools several run folders; give at least two")
    primary = PrimaryChoice(path=args.primary, preset=args.primary_preset, control=args.control)
    if len(args.run_dir) == 1:
        out = write_report(args.run_dir[0], args.out, primary=primary)
    else:
        out = compare_runs(args.run_dir, args.out, seeds=args.seeds, primary=primary)
    for line in read_json(out / "report.json")["summary"]:
        print(f"- {line}")
    print(f"\nwrote {out}/report.md, report.html, {len(list(out.glob('*.png')))} PNG and "
          f"{len(list(out.glob('*.csv')))} CSV files")


def _add_report(sub) -> None:
    p = add_subcommand(sub, "report", "plots, CSV, Markdown and self-contained HTML of a collapse run (or several)",
                       "rag-bench report data/runs/quick\n"
                       "  rag-bench report runs/s0 runs/s1 --seeds --out runs/seeds-report\n"
                       "  rag-bench report runs/s0 runs/s1 --seeds --out runs/r --control replace   # stand-in control")
    p.add_argument("run_dir", type=Path, nargs="+", help="run folder(s) holding gen_<k>/eval/results.json")
    p.add_argument("--out", type=Path, default=None, help="report folder (default RUN_DIR/report for one run)")
    p.add_argument("--seeds", action="store_true",
                   help="the run folders are seeds of one experiment: pool them per strategy (mean and spread)")
    p.add_argument("--primary", type=Path, default=None,
                   help="primary-comparisons file (default docs/primary_comparisons.json, when it lists the preset)")
    p.add_argument("--primary-preset", default=None, help="its entry to use (default the runs' preset name)")
    p.add_argument("--control", default=None, help="compare with this arm instead of the file's control (a stand-in)")
    p.set_defaults(func=_cmd_report)



SUBCOMMANDS = [_add_collapse, _add_report]
