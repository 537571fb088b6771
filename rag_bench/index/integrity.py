"""Integrity of an index folder that never trusts the manifest to describe itself.

    rag-bench search "capital of Algeria"      # every load runs these checks first

A version folder is named ``<stamp>-manifest-<sha256 of its manifest.json>``, and ``CURRENT`` names it:
both are written by one atomic rename each, so the manifest's digest lives outside the manifest. A load
refuses, with one line each:

- a ``CURRENT`` whose name is not a plain version name, or whose folder resolves outside ``versions/``
  (``../../other/versions/x``, a symlink);
- a version name without the digest (built before this check; ``rag-bench ingest`` re-seals it);
- a manifest whose bytes do not hash to that digest (any edited field: count, chunker, corpus hash, ...);
- a manifest whose ``sha256`` section does not cover exactly index.faiss and docstore.jsonl, or a file
  whose sha256 differs;
- an index.faiss FAISS cannot read; vector, docstore and manifest counts, the dimension or the corpus
  hash that disagree.

Nothing here unpickles: FAISS reads its own binary format, the docstore is JSON lines. A LangChain
``save_local`` folder (index.faiss + index.pkl) is refused before anything in it is read.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from rag_bench.records import sha256_file

FORMAT = "rag_bench.index/1"
SEALED_FILES = ("index.faiss", "docstore.jsonl")  # every data file of a version, each with its sha256
OPTIONAL_SEALED = ("bm25.npz",)  # sealed the same way when present (versions built before it lack it)
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,200}")
_SEAL = re.compile(r"-manifest-([0-9a-f]{64})$")


class IndexStoreError(ValueError):
    """An index folder that is missing, foreign or does not match its manifest."""


def sealed_name(stamp: str, manifest_path: Path) -> str:
    """The version folder's name: its stamp and the sha256 of its manifest."""
    return f"{stamp}-manifest-{sha256_file(manifest_path)}"


def is_sealed(version: Path) -> bool:
    """Whether a version's name carries its manifest's digest (every build since the check was added)."""
    return _SEAL.search(version.name) is not None


def read_current(index_dir: Path) -> str | None:
    """The version name in CURRENT, checked to be a plain name inside ``versions/``; None if no CURRENT."""
    pointer = index_dir / "CURRENT"
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexStoreError(f"{pointer}: unreadable ({exc})") from None
    if not _VERSION.fullmatch(name) or name in {".", ".."}:
        raise IndexStoreError(f"{pointer}: {name[:80]!r} is not a version name; CURRENT must name a folder "
                              f"directly inside {index_dir / 'versions'}")
    versions = (index_dir / "versions").resolve()
    if (versions / name).resolve().parent != versions:
        raise IndexStoreError(f"{pointer}: version {name!r} resolves outside {index_dir / 'versions'} (a link?)")
    return name


def read_manifest(version: Path) -> dict[str, Any]:
    """The manifest of a version after checking its bytes against the digest in the version's name."""
    manifest_path = version / "manifest.json"
    sealed = _SEAL.search(version.name)
    if sealed is None:
        raise IndexStoreError(
            f"{version}: no manifest digest in the version name (built before rag-bench sealed its manifests); "
            f"run `rag-bench ingest` on the same files once (`rag-bench prepare` for the Factbook) to re-seal it; "
            f"no text is embedded again")
    if not manifest_path.is_file():
        raise IndexStoreError(f"{manifest_path}: missing")
    if sha256_file(manifest_path) != sealed.group(1):
        raise IndexStoreError(f"{manifest_path}: altered since the build (its sha256 differs from the digest "
                              f"that CURRENT names)")
    return parse_manifest(manifest_path)


def parse_manifest(manifest_path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexStoreError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise IndexStoreError(f"{manifest_path}: format {found!r}, expected {FORMAT!r}")
    return manifest


def check_files(version: Path, manifest: dict[str, Any]) -> None:
    """Every data file is listed in the manifest's sha256 section and matches it."""
    listed = manifest.get("sha256")
    extra = sorted(set(listed) - set(SEALED_FILES)) if isinstance(listed, dict) else []
    if not isinstance(listed, dict) or not set(SEALED_FILES) <= set(listed) or not set(extra) <= set(OPTIONAL_SEALED):
        have = sorted(listed) if isinstance(listed, dict) else "none"
        raise IndexStoreError(f"{version / 'manifest.json'}: the sha256 section must list exactly "
                              f"{', '.join(SEALED_FILES)}, and {', '.join(OPTIONAL_SEALED)} if present "
                              f"(it lists {have})")
    for name in (*SEALED_FILES, *extra):
        if not (version / name).is_file() or sha256_file(version / name) != listed[name]:
            raise IndexStoreError(f"{version / name}: missing or altered since the build (sha256 mismatch)")


def read_faiss(path: Path):
    """FAISS's own reader; its C++ exception (source file, line, assertion) becomes one plain sentence."""
    import faiss

    try:
        return faiss.read_index(str(path))
    except (RuntimeError, MemoryError):
        raise IndexStoreError(f"{path}: not a readable FAISS index (the file is corrupt or truncated); rebuild "
                              f"the index from its source files with `rag-bench ingest --rebuild`") from None


LANGCHAIN_PICKLE = "index.pkl"  # FAISS.save_local writes the docstore here as a pickle


def refuse_langchain_layout(folder: Path) -> None:
    """Refuse a LangChain ``FAISS.save_local`` folder (index.faiss + index.pkl) without opening its pickle."""
    pickled = folder / LANGCHAIN_PICKLE
    if pickled.exists():
        raise IndexStoreError(
            f"{folder}: a LangChain FAISS folder (index.faiss + {LANGCHAIN_PICKLE}), refused: its {LANGCHAIN_PICKLE} "
            f"is a pickle, and loading a pickle can run any code in it; rebuild the index from its source files "
            f"with `rag-bench ingest SOURCE_FOLDER --name NAME` (the Corpus tab does the same)")


def check_counts(version: Path, manifest: dict[str, Any], *, ntotal: int, dimension: int, ids: list[str]) -> None:
    """FAISS rows, docstore lines, the manifest's count and dimension and the corpus hash all agree."""
    if not (ntotal == len(ids) == manifest.get("count")) or dimension != manifest.get("dimension"):
        raise IndexStoreError(
            f"{version}: the FAISS index holds {ntotal} vectors of dimension {dimension}, the docstore "
            f"{len(ids)} chunks, the manifest says {manifest.get('count')} of dimension "
            f"{manifest.get('dimension')}; they do not match")
    if len(set(ids)) != len(ids):
        raise IndexStoreError(f"{version / 'docstore.jsonl'}: repeated chunk ids")
    if corpus_hash(ids) != manifest.get("corpus_hash"):
        raise IndexStoreError(f"{version}: the docstore's chunk ids do not hash to the manifest's corpus_hash")


def corpus_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
