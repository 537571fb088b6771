"""Read a folder, a file or a glob of documents into chunks, and say what was skipped.

    rag-bench ingest ./company_docs --name acme      # txt md html pdf docx csv jsonl

Each readable file becomes LangChain ``Document`` objects (a pdf one per page, a csv one per
row, a corpus JSONL one per record); a file that cannot be read is skipped with its reason and
the run goes on. Chunks come from ``RecursiveCharacterTextSplitter`` and carry their source
path, page, the file's sha256 and their position. Chunk ids hash the document id and the chunk
text, so an unchanged chunk keeps its id across runs and the index can skip re-embedding it.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag_bench.config import CorpusConfig
from rag_bench.records import RecordError, read_corpus, sha256_file

# pypdf logs "EOF marker not found" and the like for every bad file; the skip reason says it once.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class CorpusError(ValueError):
    """The path given to ingest is missing, empty or holds nothing ingestible."""


class SkipFile(Exception):
    """A file that cannot be ingested; the message is the reason shown to the user."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FileOutcome:
    """What happened to one file during ingest."""

    path: str  # the file, as given
    status: str  # "ingested" or "skipped"
    reason: str = ""  # why it was skipped
    documents: int = 0  # documents read (pages, rows, records)
    chunks: int = 0  # chunks made from them
    sha256: str = ""  # of the file's bytes


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadedCorpus:
    """The chunks of every readable file, and the outcome of every file."""

    chunks: list[Document]  # each with metadata["chunk_id"], source, sha256, position
    files: list[FileOutcome]  # one per file found

    @property
    def skipped(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "skipped"]

    @property
    def skipped_sources(self) -> set[str]:
        return {f.path for f in self.skipped}


def discover_files(path: str | Path, cfg: CorpusConfig) -> tuple[Path, list[Path]]:
    """Expand a folder, a file or a glob into ``(root, files)``; missing or empty is an error."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        found = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
        if not found:
            raise CorpusError(f"{text}: the pattern matches no files")
        root = Path(os.path.commonpath([str(p.parent.resolve()) for p in found]))
        return root, [p.resolve() for p in found]
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    if path.is_file():
        return path.resolve().parent, [path.resolve()]
    found = sorted(p.resolve() for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
    if not found:
        raise CorpusError(f"{path}: the folder holds no files")
    wanted = [p for p in found if p.suffix.lower() in cfg.extensions]
    if not wanted:
        raise CorpusError(f"{path}: no files of the types {', '.join(cfg.extensions)}")
    return path.resolve(), found


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def load_file(path: Path, root: Path, cfg: CorpusConfig) -> list[Document]:
    """Read one file into documents, or raise SkipFile with a reason a person can act on."""
    suffix = path.suffix.lower()
    if suffix not in cfg.extensions:
        raise SkipFile(f"unsupported file type {suffix or '(none)'}")
    try:
        size = path.stat().st_size
        if size == 0:
            raise SkipFile("empty file")
        if size > cfg.max_file_bytes:
            raise SkipFile(f"too large: {size:,} bytes over the limit of {cfg.max_file_bytes:,}")
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except PermissionError:
        raise SkipFile("permission denied") from None
    except OSError as exc:
        raise SkipFile(f"cannot be read: {exc.strerror or exc}") from None
    source = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    if suffix in {".pdf", ".docx"}:
        docs = _load_binary(path, suffix, head)
    else:
        _check_text(path, head)
        docs = _load_text(path, suffix)
    docs = [d for d in docs if d.page_content.strip()]
    if not docs:
        raise SkipFile("no text in the file")
    for doc in docs:
        doc.metadata["source"] = source
        doc.metadata.setdefault("doc_id", source + _locator(doc.metadata))
    return docs


def _locator(meta: dict) -> str:
    if "page" in meta:
        return f"#page={meta['page']}"
    if "row" in meta:
        return f"#row={meta['row']}"
    return ""


def _check_text(path: Path, head: bytes) -> None:
    if b"\x00" in head:
        raise SkipFile("binary content in a text file (NUL bytes)")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkipFile(f"not UTF-8 text (undecodable byte at offset {exc.start})") from None


def _load_text(path: Path, suffix: str) -> list[Document]:
    from langchain_community.document_loaders import CSVLoader, TextLoader

    if suffix == ".jsonl":
        try:
            records = read_corpus(path)
        except RecordError as exc:
            message = str(exc).removeprefix(str(path))
            if message.startswith(":") and message[1:2].isdigit():
                number, _, rest = message[1:].partition(": ")
                message = f"line {number}: {rest}"
            raise SkipFile(f"malformed JSONL, {message.lstrip(': ')}") from None
        return [Document(page_content=r.contents, metadata={**r.metadata, "doc_id": r.id}) for r in records]
    if suffix in {".html", ".htm"}:
        return [_load_html(path)]
    if suffix == ".csv":
        loader = CSVLoader(str(path), encoding="utf-8")
    else:
        loader = TextLoader(str(path), encoding="utf-8")
    try:
        return loader.load()
    except Exception as exc:
        raise SkipFile(f"unreadable {suffix[1:]}: {type(exc).__name__}: {exc}") from None


def _load_html(path: Path) -> Document:
    # LangChain's BSHTMLLoader keeps the text of <script> and <style> and glues blocks together.
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return Document(page_content="\n".join(line for line in lines if line), metadata={"title": title})


def _load_binary(path: Path, suffix: str, head: bytes) -> list[Document]:
    from langchain_community.document_loaders import Docx2txtLoader, PyPDFLoader

    if suffix == ".pdf":
        if not head.startswith(b"%PDF-"):
            raise SkipFile("corrupt PDF: no %PDF- header")
        loader = PyPDFLoader(str(path))
    else:
        if not head.startswith(b"PK"):
            raise SkipFile("corrupt DOCX: not a zip container")
        loader = Docx2txtLoader(str(path))
    try:
        docs = loader.load()
    except Exception as exc:
        raise SkipFile(f"corrupt {suffix[1:].upper()}: {type(exc).__name__}: {exc}") from None
    for doc in docs:
        if suffix == ".pdf":
            # PyPDFLoader counts pages from 0; people count from 1.
            doc.metadata["page"] = int(doc.metadata.get("page", 0)) + 1
            for key in [k for k in doc.metadata if k not in {"page", "total_pages", "source"}]:
                doc.metadata.pop(key)
    return docs


def splitter(cfg: CorpusConfig) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        chunk_size=cfg.chunk_size, chunk_overlap=cfg.chunk_overlap, add_start_index=True
    )


def chunk_documents(docs: Iterable[Document], cfg: CorpusConfig, *, sha256: str = "") -> list[Document]:
    """Split documents into chunks with content-hash ids, stable across runs."""
    chunks: list[Document] = []
    seen: dict[str, int] = {}
    for position, chunk in enumerate(splitter(cfg).split_documents(list(docs))):
        meta = chunk.metadata
        key = f"{meta.get('doc_id', '')}\x00{chunk.page_content}"
        repeat = seen.get(key, 0)
        seen[key] = repeat + 1
        digest = hashlib.sha256(f"{key}\x00{repeat}".encode()).hexdigest()[:24]
        meta.update(chunk_id=digest, position=position)
        if sha256:
            meta["sha256"] = sha256
        chunks.append(chunk)
    return chunks


def load_corpus(path: str | Path, cfg: CorpusConfig = CorpusConfig(), *, progress: bool = True) -> LoadedCorpus:
    """Read every file under ``path`` into chunks; unreadable files are skipped with reasons."""
    from tqdm.auto import tqdm

    root, files = discover_files(path, cfg)
    chunks: list[Document] = []
    outcomes: list[FileOutcome] = []
    for file in tqdm(files, desc="reading files", unit="file", disable=not progress):
        shown = str(file.relative_to(root)) if file.is_relative_to(root) else str(file)
        try:
            docs = load_file(file, root, cfg)
            digest = sha256_file(file)
        except SkipFile as exc:
            outcomes.append(FileOutcome(path=shown, status="skipped", reason=str(exc)))
            continue
        except OSError as exc:
            outcomes.append(FileOutcome(path=shown, status="skipped", reason=f"cannot be read: {exc}"))
            continue
        file_chunks = chunk_documents(docs, cfg, sha256=digest)
        chunks.extend(file_chunks)
        outcomes.append(FileOutcome(path=shown, status="ingested", documents=len(docs),
                                    chunks=len(file_chunks), sha256=digest))
    if not chunks:
        reasons = "; ".join(f"{o.path}: {o.reason}" for o in outcomes[:5])
        raise CorpusError(f"{path}: no file could be ingested ({reasons})")
    return LoadedCorpus(chunks=chunks, files=outcomes)
