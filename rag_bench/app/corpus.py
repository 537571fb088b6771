"""The Corpus tab: upload files or name a server folder, ingest them into an index, switch the active corpus.

    from rag_bench.app.corpus import ingest_uploads, ingest_server_folder, index_table
    rows, summary = ingest_uploads(cfg, "acme", ["/tmp/gradio/.../handbook.pdf"])
    rows, summary = ingest_server_folder(cfg, "acme", "acme_docs")   # a folder under the upload root

Uploads are copied to UPLOAD_ROOT/<name>/ and that folder is ingested, so a later upload adds to the same
index. Only the configured file types and sizes are accepted, and a server folder must lie inside the upload
root with no link leading out of it. Each ingest also (re)builds the corpus's cloze probes
(DATA/probes/<name>-cloze.jsonl, as `rag-bench probes --kind cloze --name <name>`), so that the quick
experiment can run on the new corpus from the page alone.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_bench.app.state import (
    AppConfig,
    UserError,
    check_name,
    check_tree_inside,
    list_indexes,
    read_json_or_none,
    resolve_inside,
)

Progress = Callable[..., Any]
INGEST_COLUMNS = ["status", "file", "detail"]
INDEX_COLUMNS = ["corpus", "chunks", "files", "embedder", "dtype", "chunk size", "built", "MB", "source"]
CLOZE_PROBES = 1000  # probes kept per ingested corpus (a seeded sample), as the cloze builder's default


def _no_progress(*args: Any, **kwargs: Any) -> None:
    return None


def check_target(cfg: AppConfig, name: str, source: Path) -> str:
    """A corpus name the user may (re)build from ``source``; the default corpus belongs to `rag-bench prepare`."""
    name = check_name(name, "corpus name")
    if name == "factbook":
        raise UserError("'factbook' is the default corpus, built by `rag-bench prepare`; choose another name.")
    previous = read_json_or_none(cfg.indexes_path / name / "ingest_report.json") or {}
    before = previous.get("path")
    if before and Path(before).resolve() != source.resolve():
        raise UserError(f"The corpus {name!r} was built from {before}; ingesting {source} would replace it. "
                        "Choose another name.")
    return name


def save_uploads(cfg: AppConfig, name: str, files: list[str] | None) -> tuple[Path, list[list[str]]]:
    """Copy acceptable uploads into UPLOAD_ROOT/<name>/; returns the folder and rows for the refused ones."""
    if not files:
        raise UserError("Choose one or more files to upload first.")
    dest = cfg.upload_path / check_name(name, "corpus name")
    limit = int(cfg.max_upload_mb * 1_000_000)
    refused, accepted = [], []
    for item in files:
        path = Path(item)
        if path.suffix.lower() not in cfg.upload_extensions:
            refused.append(["refused", path.name, f"type {path.suffix or '(none)'} is not accepted; "
                                                  f"allowed: {' '.join(cfg.upload_extensions)}"])
        elif path.stat().st_size > limit:
            refused.append(["refused", path.name, f"{path.stat().st_size / 1e6:.1f} MB is over the "
                                                  f"{cfg.max_upload_mb:g} MB limit"])
        else:
            accepted.append(path)
    if not accepted:
        raise UserError("No file was accepted: " + "; ".join(f"{r[1]}: {r[2]}" for r in refused))
    check_target(cfg, name, dest)
    dest.mkdir(parents=True, exist_ok=True)
    for path in accepted:
        shutil.copyfile(path, dest / Path(path.name).name)
    return dest, refused


def ingest_path(cfg: AppConfig, name: str, folder: Path, progress: Progress = _no_progress) -> tuple[list, str]:
    """Ingest ``folder`` into the index ``name``; returns the per-file table rows and a one-paragraph summary."""
    from rag_bench.cli import ingest
    from rag_bench.corpus.load import CorpusError
    from rag_bench.index.integrity import IndexStoreError

    progress(0.0, desc=f"reading {folder.name}")
    started = time.perf_counter()
    try:
        _, report = ingest(str(folder), data_dir=cfg.data_path, name=name, progress=True)
    except (CorpusError, IndexStoreError) as exc:
        raise UserError(str(exc)) from None
    progress(0.9, desc="building cloze probes")
    probes = cloze_probes(cfg, name)
    rows = [["ingested", _short(f["path"], folder), f"{f['chunks']} chunks from {f['documents']} document(s)"]
            for f in report["ingested"]]
    rows += [["skipped", _short(f["path"], folder), f["reason"]] for f in report["skipped"]]
    chunks = report["chunks"]
    summary = (f"Ingested {len(report['ingested'])} file(s) and skipped {len(report['skipped'])} into the corpus "
               f"**{name}**: {chunks['total']} chunks in the index ({chunks['embedded']} embedded now, "
               f"{chunks.get('resumed', 0)} read back from an interrupted ingest, "
               f"{chunks['kept']} kept) and {probes} cloze probes for experiments, in "
               f"{time.perf_counter() - started:.1f} s. "
               f"Pick it as the active corpus to chat with it or run an experiment on it.")
    return rows, summary


def cloze_probes(cfg: AppConfig, name: str) -> int:
    """Build DATA/probes/<name>-cloze.jsonl from the live index (what a collapse run on it evaluates); the count.

    Without them a run on an ingested corpus stops at once ("probes: ... not found"); with too few chunks for
    any probe, the run is refused with that reason.
    """
    from rag_bench.index.store import load_index
    from rag_bench.probes.build import make_probe_file
    from rag_bench.records import sha256_file

    loaded = load_index(cfg.indexes_path / check_name(name, "corpus"))
    info = {"path": str(cfg.indexes_path / name), "version": loaded.path.name,
            "corpus_hash": loaded.manifest.get("corpus_hash"),
            "manifest_sha256": sha256_file(loaded.path / "manifest.json")}
    out = cfg.data_path / "probes" / f"{name}-cloze.jsonl"
    try:
        return make_probe_file("cloze", loaded.chunks, out, limit=CLOZE_PROBES, seed=0, index_info=info)["probes"]
    except ValueError:  # no sentence with a salient span: chat still works, experiments cannot
        return 0


def has_probes(cfg: AppConfig, name: str) -> bool:
    """Whether a collapse run on ``name`` finds probes (rag_bench.collapse.data.probes_source looks for these)."""
    folder = cfg.data_path / "probes"
    return any((folder / f"{name}-{kind}.jsonl").is_file() for kind in ("factbook", "cloze"))


def _short(path: str, folder: Path) -> str:
    try:
        return Path(path).resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def ingest_uploads(cfg: AppConfig, name: str, files: list[str] | None,
                   progress: Progress = _no_progress) -> tuple[list, str]:
    dest, refused = save_uploads(cfg, name, files)
    rows, summary = ingest_path(cfg, check_name(name, "corpus name"), dest, progress)
    return refused + rows, summary


def ingest_server_folder(cfg: AppConfig, name: str, folder: str,
                         progress: Progress = _no_progress) -> tuple[list, str]:
    """Ingest a folder that already lies on the server, inside the upload root."""
    if any(ch in (folder or "") for ch in "*?["):
        raise UserError("Name a folder, not a pattern (no * ? or [).")
    path = resolve_inside(cfg.upload_path, folder, "folder")
    if not path.is_dir():
        raise UserError(f"{folder}: no such folder inside {cfg.upload_path}")
    if check_tree_inside(path, cfg.upload_path) == 0:
        raise UserError(f"{folder}: the folder is empty")
    name = check_target(cfg, name, path)
    return ingest_path(cfg, name, path, progress)


def index_table(cfg: AppConfig) -> list[list[Any]]:
    """One row per index: size, embedder and where it came from, read from manifests without loading anything."""
    from rag_bench.index.store import current_version

    rows = []
    for name in list_indexes(cfg.indexes_path):
        version = current_version(cfg.indexes_path / name)
        manifest = read_json_or_none(version / "manifest.json") or {}
        report = read_json_or_none(cfg.indexes_path / name / "ingest_report.json") or {}
        size = sum(p.stat().st_size for p in version.iterdir() if p.is_file()) if version.is_dir() else 0
        rows.append([name, manifest.get("count"), len(manifest.get("files", [])), manifest.get("embedder"),
                     manifest.get("dtype"), (manifest.get("chunker") or {}).get("chunk_size"),
                     version.name.split("-")[0], round(size / 1e6, 1), report.get("path", "")])
    return rows
