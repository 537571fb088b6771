"""`rag-bench train`: train generation 0 on a corpus JSONL (or fine-tune a local HF model), resumably.

    rag-bench train --model-size small --max-minutes 10          # the Factbook, DATA_DIR/models/factbook-small
    rag-bench train --corpus my.jsonl --out models/m --model-size tiny --max-steps 50 --limit 200
    rag-bench train --base-model ./my-hf-llama --out models/ft --max-steps 500
    rag-bench train --base-model smollm2-135m --out models/smol-ft --max-steps 200   # the offline SmolLM2
    rag-bench train --config train.json --index factbook --retrieval-share 0.2
    rag-bench train --base-model models/m/last --kinds record --out models/m-records   # records only
    rag-bench train --model-size base --ray auto --workers 4 --gpu     # Ray Train, one GPU per worker

The training and held-out texts are split as the collapse experiment splits them: the records whose
``metadata.split`` is ``heldout`` are held out; a corpus without a split holds out 5% of its documents
by a hash of their id (``rag_bench.eval.inputs``). The same command run again resumes from OUT/last.
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from rag_bench.cli.common import (
    DEFAULT_CORPUS,
    CliError,
    add_subcommand,
    check_memory,
    corpus_dir,
    index_dir,
    resolve_model_arg,
)
from rag_bench.config import MODEL_PRESETS, ModelConfig, TrainConfig

NEIGHBOUR_MARGIN = 3  # extra passages fetched per text, so that dropping held-out chunks still leaves k


def split_corpus(path: Path, *, limit: int | None = None, kinds: tuple[str, ...] = ()):
    """(training texts, held-out texts, where the split came from) of a corpus JSONL; ``limit`` keeps the first N
    training documents, ``kinds`` only the documents whose ``metadata.kind`` is one of them."""
    from langchain_core.documents import Document

    from rag_bench.eval.inputs import human_texts
    from rag_bench.records import read_corpus

    if not path.is_file():
        raise CliError(f"{path}: corpus JSONL not found (build the Factbook with `rag-bench prepare` or give --corpus)")
    records = read_corpus(path)
    if not records:
        raise CliError(f"{path}: the corpus holds no documents")
    # a record's id plays the chunk id, so a corpus without a split holds out what the collapse run holds out
    texts = human_texts([Document(page_content=r.contents, metadata={"chunk_id": r.id}) for r in records],
                        corpus_jsonl=path)
    train_texts, heldout_texts = texts.train, texts.heldout
    if kinds:  # the split is read from the file again, so the kinds filter applies to its texts
        kept = {r.contents for r in records if r.metadata.get("kind") in kinds}
        if not kept:
            found = sorted({str(r.metadata.get("kind")) for r in records})
            raise CliError(f"{path}: no document has metadata.kind in {list(kinds)} (the corpus has {found})")
        train_texts = [t for t in train_texts if t in kept]
        heldout_texts = [t for t in heldout_texts if t in kept]
    train_texts = train_texts[:limit] if limit else train_texts
    if not train_texts or not heldout_texts:
        raise CliError(f"{path}: {len(train_texts)} training and {len(heldout_texts)} held-out documents; "
                       "both must be non-empty")
    return train_texts, heldout_texts, texts.source


def index_neighbours(index_path: Path, *, k: int):
    """texts -> the index's k best passages for each (dense retrieval), never a held-out chunk."""
    from rag_bench.eval.inputs import retrieve_contexts
    from rag_bench.index.retrieve import make_retriever
    from rag_bench.index.store import load_index

    retriever = make_retriever(load_index(index_path).store, mode="dense", k=k + NEIGHBOUR_MARGIN)

    def neighbours(texts: list[str]) -> list[list[str]]:
        found, _ = retrieve_contexts(retriever, texts, k=k + NEIGHBOUR_MARGIN, progress=True)
        return [[d.page_content for d in docs if d.metadata.get("split") != "heldout"][:k] for docs in found]

    return neighbours


def train_config(args: argparse.Namespace):
    """TrainConfig from --config (or the defaults), then the flags that were given."""
    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    model = cfg.model
    if args.model_size:
        model = ModelConfig.preset(args.model_size, arch=args.arch or model.arch)
    elif args.arch:
        model = model.replace(arch=args.arch)
    overrides = {"max_steps": args.max_steps, "max_minutes": args.max_minutes, "seed": args.seed,
                 "retrieval_share": args.retrieval_share}
    return cfg.replace(model=model, **{k: v for k, v in overrides.items() if v is not None})


def _cmd_train(args: argparse.Namespace) -> None:
    from rag_bench.collapse.data import copy_guard
    from rag_bench.collapse.strategies import PoolNeighbours
    from rag_bench.config import CollapseConfig
    from rag_bench.lm import ModelLoadError
    from rag_bench.records import read_json
    from rag_bench.training.loop import train

    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit must be >= 1, got {args.limit}")
    cfg = train_config(args)
    if args.ray is not None and cfg.retrieval_share > 0 and args.index:
        raise CliError("--index: neighbours from an index are not shipped to Ray workers; leave --index out "
                       "(BM25 over the training texts) or train without --ray")
    if args.ray is not None and args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}")
    corpus = args.corpus or corpus_dir(args.data_dir, DEFAULT_CORPUS) / "corpus.jsonl"
    corpus_name = corpus.parent.name if corpus.name == "corpus.jsonl" else corpus.stem
    out = args.out or args.data_dir / "models" / f"{corpus_name}-{cfg.model.name}"
    kinds = tuple(k for k in (args.kinds or "").split(",") if k)
    train_texts, heldout_texts, source = split_corpus(corpus, limit=args.limit, kinds=kinds)
    print(f"corpus: {len(train_texts)} training and {len(heldout_texts)} held-out documents ({source})")
    cfg, copy_state = copy_guard(cfg, train_texts)
    print(f"copy curriculum: {copy_state}")
    neighbours = None
    k = CollapseConfig().neighbours_k
    if cfg.retrieval_share > 0 and args.index:
        neighbours = index_neighbours(index_dir(args.data_dir, args.index), k=k)
        print(f"retrieval-augmented rows: {cfg.retrieval_share:.0%}, {k} passages from the index {args.index}")
    elif cfg.retrieval_share > 0:
        neighbours = PoolNeighbours(train_texts, k=k)
        print(f"retrieval-augmented rows: {cfg.retrieval_share:.0%}, {k} passages by BM25 over the training texts")
    elif args.index:
        print(f"note: --index {args.index} is unused while retrieval_share is 0 (set --retrieval-share)")
    base_model = None
    if args.base_model:
        base_model = resolve_model_arg(args.base_model, args.data_dir)
        check_memory(base_model)
        print(f"fine-tuning {args.base_model}: its architecture and tokenizer replace --model-size/--arch")
    print(f"output: {out}  (the same command resumes from {out / 'last'})", flush=True)
    try:
        if args.ray is not None:
            model_dir = _train_on_ray(args, cfg, train_texts, heldout_texts, out, k, base_model)
        else:
            model_dir = train(cfg, train_texts=train_texts, heldout_texts=heldout_texts, out_dir=out,
                              neighbours=neighbours, base_model=base_model)
    except ModelLoadError as exc:
        raise CliError(f"--base-model: {exc}") from None
    except ValueError as exc:  # e.g. a corpus shorter than one training block
        raise CliError(f"{corpus}: {exc}") from None
    timings = read_json(model_dir / "timings.json")
    print(f"\n{timings.get('parameters', 0):,} parameters, {timings.get('steps')} steps, "
          f"{timings.get('tokens_per_s')} tokens/s")
    print(f"best checkpoint (lowest held-out perplexity): {model_dir}")


def _train_on_ray(args: argparse.Namespace, cfg, train_texts, heldout_texts, out: Path, k: int,
                  base_model: Path | None) -> Path:
    """The same loop on ``--workers`` Ray Train workers (rag_bench.distributed.trainer)."""
    from rag_bench.distributed.cluster import RayUnavailable
    from rag_bench.distributed.trainer import train_on_ray

    print(f"Ray Train: {args.workers} workers ({'one GPU' if args.gpu else '1 CPU'} each) on {args.ray}", flush=True)
    try:
        return train_on_ray(cfg, train_texts=train_texts, heldout_texts=heldout_texts, out_dir=out,
                            workers=args.workers, use_gpu=args.gpu, address=args.ray, base_model=base_model,
                            neighbours_k=k)
    except RayUnavailable as exc:
        raise CliError(str(exc)) from None


def _add_train(sub) -> None:
    p = add_subcommand(sub, "train", "train generation 0 on a corpus JSONL, or fine-tune a local HF causal LM",
                       "rag-bench train --model-size small --max-minutes 10\n"
                       "  rag-bench train --corpus my.jsonl --out models/m --model-size tiny --max-steps 50\n"
                       "  rag-bench train --base-model ./my-hf-llama --out models/ft --max-steps 500")
    p.add_argument("--corpus", type=Path, default=None,
                   help="corpus JSONL with metadata.split (default DATA_DIR/corpora/factbook/corpus.jsonl)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder: OUT/model (best), OUT/last (resume); default DATA_DIR/models/CORPUS-SIZE")
    p.add_argument("--model-size", choices=list(MODEL_PRESETS), default=None,
                   help="model preset (default: the config's, base)")
    p.add_argument("--arch", choices=typing.get_args(typing.get_type_hints(ModelConfig)["arch"]), default=None,
                   help=f"architecture (default {ModelConfig().arch})")
    p.add_argument("--base-model", type=Path, default=None,
                   help="a local HF causal-LM folder to fine-tune, or a registry name: smollm2-135m")
    p.add_argument("--config", type=Path, default=None, help="a TrainConfig JSON file; flags override it")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default 2000)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop with a checkpoint after this wall time")
    p.add_argument("--seed", type=int, default=None, help="model init and data order")
    p.add_argument("--retrieval-share", type=float, default=None,
                   help="share of rows prefixed with neighbour passages (default 0)")
    p.add_argument("--index", default=None,
                   help="index name under DATA_DIR/indexes supplying the neighbours (default: BM25 over the corpus)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N training documents only")
    p.add_argument("--kinds", default=None,
                   help="comma-separated metadata.kind values to keep, e.g. record (default: every document)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="train under Ray Train's TorchTrainer (DDP over --workers): a local cluster, or ADDRESS "
                        "(auto, HOST:PORT); same OUT/last and OUT/model (docs/scale.md)")
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers (with --ray)")
    p.add_argument("--gpu", action="store_true", help="one GPU per Ray Train worker (with --ray)")
    p.set_defaults(func=_cmd_train)


SUBCOMMANDS = [_add_train]
