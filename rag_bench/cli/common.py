"""What every `rag-bench` subcommand shares: the environment, the data layout, the error type, the parser helper.

    from rag_bench.cli.common import CliError, add_subcommand, index_dir
    p = add_subcommand(sub, "search", "print the chunks an index retrieves", 'rag-bench search "capital of Algeria"')
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads that spin steal the cores of a shared 2-core machine (measured: p95 query
# latency 490-740 ms spinning, ~19 ms passive). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_CORPUS = "factbook"
REPO_ROOT = Path(__file__).resolve().parents[2]


class CliError(Exception):
    """A problem the user must fix; printed without a traceback."""


def corpus_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "corpora" / name


def index_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "indexes" / name


def add_subcommand(sub: argparse._SubParsersAction, name: str, help_text: str,
                   example: str) -> argparse.ArgumentParser:
    """A subparser with its help, an example in the epilog, and --data-dir."""
    parser = sub.add_parser(name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="where corpora, indexes and runs live")
    return parser


def print_source(meta: dict, text: str, width: int) -> None:
    """One retrieved chunk as two lines: rank, score, where it came from and its id; then its text, cut."""
    where = meta.get("source", "") + (f" p.{meta['page']}" if meta.get("page") else "")
    snippet = " ".join(text.split())
    print(f"{meta['rank']:>2}. {meta['score']:.4f}  {where}  [{meta['chunk_id']}]")
    print(f"    {snippet[:width]}{'...' if len(snippet) > width else ''}")


def resolve_model_arg(spec: str | Path, data_dir: Path) -> Path:
    """A --model / --base-model value as a folder: a registry name (``smollm2-135m``, converted into DATA_DIR
    once) or a model folder; a bad one is a CliError naming it."""
    from rag_bench.lm import ModelLoadError
    from rag_bench.models import resolve_model

    try:
        return resolve_model(spec, data_dir)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None


def check_memory(folder: Path) -> None:
    """Refuse a model folder whose weights would not fit in the memory available now (one CliError line)."""
    from rag_bench.lm import ModelLoadError
    from rag_bench.models.memory import check_folder_fits

    try:
        check_folder_fits(folder)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None


def load_lm(spec: str | Path, data_dir: Path = Path("data")):
    """The LM a --model value names (see ``resolve_model_arg``), checked against memory; errors are CliErrors."""
    from rag_bench.lm import ModelLoadError
    from rag_bench.models import load_model

    try:
        return load_model(spec, data_dir)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None
