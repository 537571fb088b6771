"""`rag-bench probes | eval | ask`: factual probes, the evaluation of one model, and one question answered.

    rag-bench probes --kind factbook --limit 2000
    rag-bench probes --kind natural                  # questions ("What is the capital of Kenya?"), FlashRAG JSONL
    rag-bench eval --model runs/r1/gen_0/model --probes data/probes/factbook-factbook.jsonl --limit 200
    rag-bench ask "Algeria | Government | Capital:" --mode both --run runs/r1 --gen 0
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rag_bench.cli.common import (
    DEFAULT_CORPUS,
    CliError,
    add_subcommand,
    corpus_dir,
    index_dir,
    load_lm,
    print_source,
    resolve_model_arg,
)
from rag_bench.config import DEFAULT_READER, INDEXED_READER
from rag_bench.prompt import list_templates


def build_probes(data_dir: Path, *, kind: str = "factbook", name: str = DEFAULT_CORPUS, index: Path | None = None,
                 facts: Path | None = None, fields: tuple[str, ...] | None = None, split: str = "train",
                 limit: int | None = None, seed: int = 0, thresholds: dict[str, int] | None = None,
                 out: Path | None = None, copy_shape: tuple[int, int] = (6, 2)) -> tuple[dict, Path]:
    """Build the probes of ``kind`` from an index (DATA_DIR/indexes/NAME or ``index``); returns (sidecar, path)."""
    from rag_bench.index.store import load_index
    from rag_bench.probes.build import make_probe_file
    from rag_bench.probes.factbook_answers import DEFAULT_FIELDS
    from rag_bench.records import sha256_file

    path = index or index_dir(data_dir, name)
    name = name if index is None else Path(index).resolve().name
    loaded = load_index(path)
    out = out or data_dir / "probes" / f"{name}-{kind}.jsonl"
    facts = facts or corpus_dir(data_dir, name) / "facts.jsonl"
    index_info = {"path": str(path), "version": loaded.path.name, "corpus_hash": loaded.manifest.get("corpus_hash"),
                  "manifest_sha256": sha256_file(loaded.path / "manifest.json")}
    try:
        if kind == "natural":
            from rag_bench.probes.natural import DEFAULT_LIMIT, NATURAL_FIELDS, make_natural_probe_file

            meta = make_natural_probe_file(
                loaded.chunks, out, facts_path=facts, fields=fields or NATURAL_FIELDS, split=split,
                limit=DEFAULT_LIMIT if limit is None else limit, seed=seed, thresholds=thresholds,
                index_info=index_info)
            return meta, out
        meta = make_probe_file(
            kind, loaded.chunks, out, facts_path=facts if kind == "factbook" else None,
            fields=fields or DEFAULT_FIELDS, split=split, limit=limit, seed=seed, thresholds=thresholds,
            index_info=index_info, copy_shape=copy_shape)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    return meta, out


def _cmd_probes(args: argparse.Namespace) -> None:
    from rag_bench.probes.build import meta_path

    thresholds = None
    if args.thresholds:
        try:
            tail_max, torso_max = (int(x) for x in args.thresholds.split(","))
        except ValueError:
            raise CliError(f"--thresholds wants TAIL_MAX,TORSO_MAX (two integers), got {args.thresholds!r}") from None
        thresholds = {"tail_max": tail_max, "torso_max": torso_max}
    fields = tuple(f.strip() for f in args.fields.split(";")) if args.fields else None
    meta, out = build_probes(args.data_dir, kind=args.kind, name=args.name, index=args.index, facts=args.facts,
                             fields=fields, split=args.split, limit=args.limit, seed=args.seed,
                             thresholds=thresholds, out=args.out, copy_shape=(args.copy_lines, args.copy_distractors))
    print(f"{meta['probes']} {args.kind} probes over {meta['subjects']} subjects and {len(meta['fields'])} fields "
          f"in {meta['seconds']} s")
    if t := meta["bucket_thresholds"]:  # copy probes have none: their facts are in no corpus chunk
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
    p = add_subcommand(sub, "probes", "build factual probes (QA JSONL) with fact-frequency buckets from an index",
                       "rag-bench probes --kind factbook --limit 2000\n"
                       "  rag-bench probes --kind natural\n"
                       "  rag-bench probes --kind cloze --name acme --limit 500 --out data/probes/acme.jsonl")
    p.add_argument("--kind", choices=["factbook", "natural", "cloze", "copy"], default="factbook",
                   help="factbook: record prefixes from facts.jsonl; natural: questions about the same facts for "
                        "a pretrained chat model (FlashRAG QA JSONL, 1500 by default); cloze: sentence prefixes of "
                        "any corpus; "
                        "copy: invented entities whose facts are only in the prompt's passages (eval --modes closed)")
    p.add_argument("--name", default=DEFAULT_CORPUS, help="index name under DATA_DIR/indexes")
    p.add_argument("--index", type=Path, default=None, help="an index folder (overrides --name)")
    p.add_argument("--facts", type=Path, default=None, help="facts.jsonl (default DATA_DIR/corpora/NAME/facts.jsonl)")
    p.add_argument("--fields", default=None, help="factbook fields separated by ';' (default: the built-in list)")
    p.add_argument("--split", choices=["train", "heldout", "all"], default="train", help="which facts to probe")
    p.add_argument("--limit", type=int, default=None, help="keep a seeded random sample of this many probes")
    p.add_argument("--thresholds", default=None, help="fixed buckets TAIL_MAX,TORSO_MAX (default: from the data)")
    p.add_argument("--out", type=Path, default=None, help="output JSONL (default DATA_DIR/probes/NAME-KIND.jsonl)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p.add_argument("--copy-lines", type=int, default=6, help="copy probes: record lines per passage at most")
    p.add_argument("--copy-distractors", type=int, default=2, help="copy probes: other passages at most")
    p.set_defaults(func=_cmd_probes)



def _cmd_eval(args: argparse.Namespace) -> None:
    from rag_bench.config import EvalConfig
    from rag_bench.eval.inputs import human_texts, load_eval_probes
    from rag_bench.eval.paths import corpus_jsonl_for, default_out_dir, reference_model_path, run_generation
    from rag_bench.eval.run import evaluate
    from rag_bench.eval.tables import format_field_table, format_table
    from rag_bench.index.retrieve import make_retriever
    from rag_bench.index.store import load_index

    cfg = EvalConfig.from_file(args.config) if args.config else EvalConfig()
    overrides = {"limit": args.limit, "split": args.probe_split, "k": args.k, "retrieval": args.retrieval,
                 "batch_size": args.batch_size,
                 "diversity_prompts": args.diversity_prompts, "cache_dir": args.cache_dir, "template": args.template,
                 "modes": tuple(m.strip() for m in args.modes.split(",") if m.strip()) if args.modes else None}
    cfg = cfg.replace(**{key: value for key, value in overrides.items() if value is not None})
    load_eval_probes(args.probes)  # a malformed probe file fails here, before any model or index is loaded
    args.model = resolve_model_arg(args.model, args.data_dir)  # a registry name becomes its folder
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
    answer_with = None
    if args.ray is not None:  # the probes' answers come from Ray Data actors; the rest runs here
        from rag_bench.distributed.answer import ray_answerer
        from rag_bench.distributed.cluster import RayUnavailable, connect

        try:
            connect(args.ray)  # an unreachable cluster is one clear error before any model is loaded
        except RayUnavailable as exc:
            raise CliError(str(exc)) from None
        answer_with = ray_answerer(args.model, address=args.ray, threads=args.threads or 1, log=print)
    lm = load_lm(args.model, args.data_dir)
    reference, reference_path = None, args.reference_model or reference_model_path(args.model)
    if reference_path is not None:
        located = run_generation(args.model)
        same = located is not None and located[1] == 0 and args.reference_model is None
        reference = lm if same else load_lm(reference_path, args.data_dir)
        print(f"reference model (generation 0): {reference_path}")
    out = args.out or default_out_dir(args.model, args.probes, args.data_dir)
    index_info = {"path": str(index_path), "version": loaded.path.name, "chunks": len(loaded.chunks),
                  "corpus_hash": loaded.manifest.get("corpus_hash"), "heldout_source": texts.source}
    try:
        results = evaluate(lm, args.probes, retriever=retriever, cfg=cfg, heldout_texts=texts.heldout, out_dir=out,
                           reference_lm=reference, human_texts_for_rare=texts.train,
                           embedder=loaded.store.embedding_function,
                           model_path=args.model, index_info=index_info, notes=[texts.note] if texts.note else [],
                           answer_with=answer_with)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print()
    print(format_table(results))
    if args.by_field:
        print("\nexact match by field (all buckets):\n" + format_field_table(results))
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
    p = add_subcommand(sub, "eval", "evaluate one model: probes closed-book and grounded, perplexity, diversity",
                       "rag-bench eval --model runs/r1/gen_0/model --name factbook "
                       "--probes data/probes/factbook-factbook.jsonl --limit 200")
    p.add_argument("--model", type=Path, required=True,
                   help="a model folder (runs/<id>/gen_<k>/model or any HF LM) or a registry name: smollm2-135m")
    p.add_argument("--probes", type=Path, required=True, help="QA JSONL (rag-bench probes, or your own)")
    p.add_argument("--name", default=DEFAULT_CORPUS, help="index name under DATA_DIR/indexes")
    p.add_argument("--index", type=Path, default=None, help="an index folder (overrides --name)")
    p.add_argument("--modes", default=None,
                   help="comma-separated: closed,grounded,grounded_span,oracle,oracle_span (default closed,grounded)")
    p.add_argument("--template", choices=["auto", *list_templates()], default=None,
                   help="prompt template (default auto: config.DEFAULT_READER's for an instruct model, else plain)")
    p.add_argument("--limit", type=int, default=None, help="evaluate a seeded sample of N probes")
    p.add_argument("--probe-split", choices=["all", "dev", "test"], default=None,
                   help="evaluate the probes of one side of rag_bench.eval.splits only, before --limit samples")
    p.add_argument("--by-field", action="store_true", help="also print exact match by field and mode")
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
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="answer the probes over Ray Data actors, one model per worker: a local cluster, or ADDRESS "
                        "(auto, HOST:PORT); the same answers as without it at the same --threads (docs/scale.md)")
    p.set_defaults(func=_cmd_eval)


def check_question(text: str | None, what: str = "question") -> str:
    """The question stripped; an empty or whitespace-only one is one CliError line."""
    question = (text or "").strip()
    if not question:
        raise CliError(f"the {what} is empty; type one, e.g. \"What is the capital of Kenya?\"")
    return question


def ask_questions(args: argparse.Namespace) -> list[str] | Iterator[str]:
    """The questions of one `ask`, checked before anything loads: the argument, the lines of --questions FILE, or
    (with -i) the lines typed at the terminal, read as they come."""
    if sum([args.question is not None, args.questions is not None, args.interactive]) > 1:
        raise CliError("give one of: a question, --questions FILE, -i")
    if args.questions is not None:
        try:
            lines = args.questions.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{args.questions}: cannot read the questions file ({exc})") from None
        questions = [line.strip() for line in lines if line.strip()]
        if not questions:
            raise CliError(f"{args.questions}: no questions in it (one question a line)")
        return questions
    if args.interactive:
        return typed_questions()
    return [check_question(args.question)]


def typed_questions() -> Iterator[str]:
    """Lines typed at the terminal until Ctrl-D; an empty one is refused with one line and the next is read."""
    while True:
        try:
            line = input("question> ")
        except EOFError:
            print()
            return
        if line.strip():
            yield line.strip()
        else:
            print("error: the question is empty; type one, or Ctrl-D to stop", file=sys.stderr)


def _cmd_ask(args: argparse.Namespace) -> None:
    from rag_bench.answer import reader_mode
    from rag_bench.config import DecodeConfig
    from rag_bench.models.registry import DEFAULT_PRETRAINED

    if args.model is not None and args.run is not None:
        raise CliError("give either --model PATH or --run RUN --gen N, not both")
    questions = ask_questions(args)
    model = args.model or (args.run / f"gen_{args.gen}" / "model" if args.run is not None else DEFAULT_PRETRAINED)
    modes = ["closed", "grounded"] if args.mode == "both" else [args.mode]
    retriever = None
    if any(m != "closed" for m in modes):
        from rag_bench.index.retrieve import make_retriever
        from rag_bench.index.store import load_index

        loaded = load_index(args.index or index_dir(args.data_dir, args.name))
        retriever = make_retriever(loaded.store, mode=args.retrieval, k=args.k)
    lm = load_lm(model, args.data_dir)
    if args.mode == "both":  # an instruct model answers with the dev-chosen reader (config.DEFAULT_READER)
        modes[1] = reader_mode(lm.tokenizer)
    decode = DecodeConfig(max_new_tokens=args.max_new_tokens)  # it stops at the newline or EOS first
    for number, question in enumerate(questions):
        if number:
            print()
        if args.interactive or args.questions is not None:
            print(f"question: {question}")
        started = time.perf_counter()
        answer_one(lm, question, modes, retriever=retriever, k=args.k, decode=decode, snippet=args.snippet,
                   template=args.template)
        print(f"({model} · answered in {time.perf_counter() - started:.1f} s)")


def answer_one(lm, question: str, modes: list[str], *, retriever, k: int, decode, snippet: int,
               template: str = "auto") -> None:
    """Print one question's answers in ``modes`` and the grounded answer's sources."""
    from rag_bench.answer import answer

    labels = {"closed": "closed-book", "grounded": "grounded", "grounded_span": "grounded (span)",
              "grounded_scored": "grounded (scored)"}
    sources = []
    for mode in modes:
        (ans,) = answer(lm, [question], mode, retriever=retriever, k=k, decode=decode, template=template)
        print(f"{labels[mode] + ':':<17} {ans.text.strip() or '(empty)'}")
        if ans.truncated_tokens:
            print(f"{'':<17} (prompt cut by {ans.truncated_tokens} tokens from the left to fit the model)")
        sources = ans.sources or sources
    if sources:
        print("sources of the grounded answer (best first; the prompt puts the best last, next to the question):")
        for source in sources:
            print_source(source, source["text"], snippet)


def _add_ask(sub) -> None:
    p = add_subcommand(sub, "ask", "answer questions closed-book and/or grounded, with the sources",
                       'rag-bench ask "What is the capital of Kenya?"              # the chat\'s default model\n'
                       '  rag-bench ask -i --name acme                               # many questions, one load\n'
                       '  rag-bench ask --questions qs.txt --model path/to/model.gguf\n'
                       '  rag-bench ask "Algeria | Government | Capital:" --run runs/r1 --gen 0')
    p.add_argument("question", nargs="?", default=None, help="the question or record prefix")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="read questions from the terminal, one a line, loading the model and index once")
    p.add_argument("--questions", type=Path, default=None, help="a file of questions, one a line (loads once)")
    p.add_argument("--mode", choices=["closed", "grounded", "grounded_span", "grounded_scored", "both"],
                   default="both", help="both = closed-book and grounded (an instruct model: DEFAULT_READER's)")
    p.add_argument("--model", default=None,
                   help="a registry name (default smollm2-135m, the chat's default model), a model folder, or a "
                        "GGUF file")
    p.add_argument("--run", type=Path, default=None, help="a run folder; with --gen N uses RUN/gen_N/model")
    p.add_argument("--gen", type=int, default=0, help="generation of --run")
    p.add_argument("--name", default=DEFAULT_CORPUS, help="index name under DATA_DIR/indexes")
    p.add_argument("--index", type=Path, default=None, help="an index folder (overrides --name)")
    p.add_argument("-k", type=int, default=INDEXED_READER.k,
                   help=f"passages for the grounded answer (default {INDEXED_READER.k}: config.INDEXED_READER, the "
                        "dev-chosen reader over a dense index)")
    p.add_argument("--retrieval", choices=["dense", "bm25", "hybrid"], default=INDEXED_READER.retrieval,
                   help=f"retrieval mode (default {INDEXED_READER.retrieval}: config.INDEXED_READER)")
    p.add_argument("--template", choices=["auto", *list_templates()], default="auto",
                   help=f"prompt template; auto: {DEFAULT_READER.template} (config.DEFAULT_READER) for an instruct "
                        "model, plain for a model trained here")
    p.add_argument("--max-new-tokens", type=int, default=DEFAULT_READER.max_new_tokens,
                   help="answer length at most (it stops at the end of the answer first)")
    p.add_argument("--snippet", type=int, default=160, help="characters of each source to show")
    p.set_defaults(func=_cmd_ask)



SUBCOMMANDS = [_add_probes, _add_eval, _add_ask]
