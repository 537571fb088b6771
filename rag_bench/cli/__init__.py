"""The `rag-bench` command: one subcommand per stage.

    rag-bench prepare                      # build the Factbook corpus and its index (first run)
    rag-bench ingest ./docs --name acme    # index a company's own documents
    rag-bench search "capital of Algeria" -k 5
    rag-bench train --model-size small --max-minutes 10

Every stage takes --data-dir (default ./data). `rag-bench SUBCOMMAND --help` shows an example.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

# This module is the parser and the entry point (`rag-bench`, `python -m rag_bench`); the commands live
# by stage in corpus, eval, train, experiment and contaminate. Importing common (first, through them) sets the
# offline and OpenMP environment before anything imports torch.
from rag_bench.cli import contaminate as cli_contaminate
from rag_bench.cli import corpus as cli_corpus
from rag_bench.cli import eval as cli_eval
from rag_bench.cli import experiment as cli_experiment
from rag_bench.cli import train as cli_train
from rag_bench.cli.common import DEFAULT_CORPUS, REPO_ROOT, CliError, corpus_dir, index_dir
from rag_bench.cli.corpus import build_factbook, ingest, prepare


def subcommands() -> list[Callable]:
    """The subcommands' adders, in the order `rag-bench --help` lists them: the data flow of the package."""
    return [*cli_corpus.SUBCOMMANDS, cli_eval.SUBCOMMANDS[0], *cli_train.SUBCOMMANDS, *cli_eval.SUBCOMMANDS[1:],
            *cli_experiment.SUBCOMMANDS, *cli_contaminate.SUBCOMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for add in subcommands():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rag_bench.config import ConfigError
    from rag_bench.corpus.load import CorpusError
    from rag_bench.index.integrity import IndexStoreError
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


__all__ = ["DEFAULT_CORPUS", "REPO_ROOT", "CliError", "build_factbook", "build_parser", "corpus_dir", "index_dir",
           "ingest", "main", "prepare", "subcommands"]
