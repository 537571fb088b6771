"""Read a folder, a file or a glob of documents into chunks, and say what was skipped.

    rag-bench ingest ./company_docs --name acme      # txt md html pdf docx csv jsonl

Each readable file becomes LangChain ``Document`` objects (a pdf one per page, a csv one per
row, a corpus JSONL one per record, a text file one per streamed segment); a file that cannot be
read is skipped with its reason and the run goes on. Every file under the root is in the outcome
list (hidden files and links that leave the root as skipped, see rag_bench.corpus.files), text in
a legacy encoding is read through charset detection, and a bad JSONL line is skipped with its number
while the file's good lines are kept. Chunks come from ``RecursiveCharacterTextSplitter`` and carry their source
path, page, the file's sha256 and their position. Chunk ids hash the document id and the chunk
text, so an unchanged chunk keeps its id across runs and the index can skip re-embedding it.
"""

from __future__ import annotations

import codecs
import dataclasses
import glob
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag_bench.config import CorpusConfig
from rag_bench.corpus.files import SkipFile, detect_encoding, iter_jsonl_records, iter_text, link_problem, walk
from rag_bench.records import sha256_file

# html, pdf and docx are parsed whole in memory (BeautifulSoup, pypdf, docx2txt), unlike the streamed text
# formats, so their size is capped whatever --max-file-mb says: parsing takes several times the file's size.
WHOLE_FILE_MAX_BYTES = 32_000_000
WHOLE_FILE_SUFFIXES = frozenset({".html", ".htm", ".pdf", ".docx"})

# pypdf logs "EOF marker not found" and the like for every bad file; the skip reason says it once.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class CorpusError(ValueError):
    """The path given to ingest is missing, empty or holds nothing ingestible."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FileOutcome:
    """What happened to one file during ingest."""

    path: str  # the file, as given
    status: str  # "ingested" or "skipped"
    reason: str = ""  # why it was skipped
    documents: int = 0  # documents read (pages, rows, records)
    chunks: int = 0  # chunks made from them
    sha256: str = ""  # of the file's bytes
    encoding: str = ""  # of a text file: utf-8, or what charset-normalizer detected (cp1252, latin_1, ...)
    notes: tuple[str, ...] = ()  # lines skipped inside an ingested file ("line 7: not JSON (...)")


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


def discover_files(path: str | Path, cfg: CorpusConfig) -> tuple[Path, list[Path], list[tuple[str, str]]]:
    """Expand a folder, a file or a glob into ``(root, files to read, [(path, reason) skipped already])``."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        base = Path(text.split("*")[0].split("?")[0].split("[")[0] or ".")
        base = base if base.is_dir() else base.parent
        matches = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        found = [p for p in matches if p.is_file() or p.is_symlink()]
        if not found:
            raise CorpusError(f"{text}: the pattern matches no files")
        root = Path(os.path.commonpath([str(p.parent.absolute()) for p in found]))
        files, skipped = [], []
        for p in found:
            reason = link_problem(p, base.resolve())
            (skipped.append((str(p), reason)) if reason else files.append(p.absolute()))
        return root, files, skipped
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    if path.is_file():
        return path.absolute().parent, [path.absolute()], []
    files, skipped = walk(path)
    if not files and not skipped:
        raise CorpusError(f"{path}: the folder holds no files")
    if files and not any(p.suffix.lower() in cfg.extensions for p in files):
        raise CorpusError(f"{path}: no files of the types {', '.join(cfg.extensions)}")
    return path.absolute(), files, skipped


def load_file(path: Path, root: Path, cfg: CorpusConfig,
              notes: list[str] | None = None) -> tuple[Iterator[Document], str]:
    """``(documents, encoding)`` of one file, documents read lazily; SkipFile carries a reason a person can act on.

    Bad lines inside a JSONL file are appended to ``notes`` as they are met.
    """
    suffix = path.suffix.lower()
    if suffix not in cfg.extensions:
        raise SkipFile(f"unsupported file type {suffix or '(none)'}")
    try:
        size = path.stat().st_size
        if size == 0:
            raise SkipFile("empty file")
        if size > cfg.max_file_bytes:
            raise SkipFile(f"too large: {size:,} bytes over the limit of {cfg.max_file_bytes:,}")
        if suffix in WHOLE_FILE_SUFFIXES and size > WHOLE_FILE_MAX_BYTES:
            raise SkipFile(f"too large to parse: {suffix} files are read whole, and {size:,} bytes is over their "
                           f"fixed limit of {WHOLE_FILE_MAX_BYTES:,} (--max-file-mb does not raise it); split the file")
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except PermissionError:
        raise SkipFile("permission denied") from None
    except OSError as exc:
        raise SkipFile(f"cannot be read: {exc.strerror or exc}") from None
    source = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    encoding = ""
    if suffix in {".pdf", ".docx"}:
        docs: Iterable[Document] = _load_binary(path, suffix, head)
    else:
        if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise SkipFile("binary content in a text file (NUL bytes)")
        encoding = detect_encoding(path)
        docs = _load_text(path, suffix, encoding, notes if notes is not None else [])
    return _with_source(docs, source, encoding), encoding


def _with_source(docs: Iterable[Document], source: str, encoding: str) -> Iterator[Document]:
    for doc in docs:
        if not doc.page_content.strip():
            continue
        doc.metadata["source"] = source
        if encoding not in {"", "utf-8", "utf_8", "ascii"}:
            doc.metadata["encoding"] = encoding
        doc.metadata.setdefault("doc_id", source + _locator(doc.metadata))
        yield doc


def _locator(meta: dict) -> str:
    if "page" in meta:
        return f"#page={meta['page']}"
    if "row" in meta:
        return f"#row={meta['row']}"
    return ""


def _load_text(path: Path, suffix: str, encoding: str, notes: list[str]) -> Iterator[Document]:
    from langchain_community.document_loaders import CSVLoader

    if suffix == ".jsonl":
        for number, obj, reason in iter_jsonl_records(path, encoding):
            if obj is None:
                notes.append(f"line {number}: {reason}")
            else:
                yield Document(page_content=obj["contents"], metadata={**(obj.get("metadata") or {}),
                                                                       "doc_id": str(obj["id"])})
    elif suffix in {".html", ".htm"}:
        yield _load_html(path, encoding)
    elif suffix == ".csv":
        try:
            yield from CSVLoader(str(path), encoding=encoding).lazy_load()
        except Exception as exc:
            raise SkipFile(f"unreadable csv: {type(exc).__name__}: {exc}") from None
    else:
        offset = 0
        for segment in iter_text(path, encoding):
            # start_index of a chunk stays its offset in the whole file (see chunk_documents)
            yield Document(page_content=segment, metadata={"segment_offset": offset} if offset else {})
            offset += len(segment)


# Elements that start a new line of text; every other element (a, b, code, em, span, ...) stays on its line.
BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "html", "legend", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot",
    "th", "thead", "title", "tr", "ul"})
_HTML_SPACE = re.compile(r"\s+")


def html_text(markup: str) -> tuple[str, str]:
    """(text, title) of an HTML page: a block element is its own line, inline elements stay on theirs.

    ``<p>Use <code>lru_cache(maxsize=128)</code> here.</p>`` is one line, as a browser shows it (a newline
    between all elements would give three). Whitespace inside text collapses to one space as in a browser,
    except inside <pre>.
    """
    from bs4 import BeautifulSoup, NavigableString

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    for text in soup.find_all(string=True):
        if type(text) is NavigableString and text.find_parent("pre") is None:
            text.replace_with(_HTML_SPACE.sub(" ", str(text)))
    for tag in soup.find_all("br"):
        tag.replace_with("\n")
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before("\n")
        tag.append("\n")
    lines = (line.strip() for line in soup.get_text().splitlines())
    return "\n".join(line for line in lines if line), title


def _load_html(path: Path, encoding: str) -> Document:
    # LangChain's BSHTMLLoader keeps the text of <script> and <style> and glues blocks together.
    text, title = html_text(path.read_text(encoding=encoding))
    return Document(page_content=text, metadata={"title": title})


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
    split = splitter(cfg)
    pieces = (chunk for doc in docs for chunk in split.split_documents([doc]))  # one document held at a time
    for position, chunk in enumerate(pieces):
        meta = chunk.metadata
        if "segment_offset" in meta:
            meta["start_index"] = meta.get("start_index", 0) + meta.pop("segment_offset")
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
    """Read every file under ``path`` into chunks; every other file is listed as skipped with its reason."""
    from tqdm.auto import tqdm

    root, files, refused = discover_files(path, cfg)
    chunks: list[Document] = []
    outcomes = [FileOutcome(path=shown, status="skipped", reason=reason) for shown, reason in refused]
    for file in tqdm(files, desc="reading files", unit="file", disable=not progress):
        shown = str(file.relative_to(root)) if file.is_relative_to(root) else str(file)
        notes: list[str] = []
        try:
            docs, encoding = load_file(file, root, cfg, notes)
            file_chunks = chunk_documents(docs, cfg)
            if not file_chunks:
                raise SkipFile("no valid records in the file" if notes else "no text in the file")
            digest = sha256_file(file)
        except SkipFile as exc:
            reason = str(exc) + (f"; {len(notes)} bad line(s), the first {notes[0]}" if notes else "")
            outcomes.append(FileOutcome(path=shown, status="skipped", reason=reason))
            continue
        except OSError as exc:
            outcomes.append(FileOutcome(path=shown, status="skipped", reason=f"cannot be read: {exc}"))
            continue
        for chunk in file_chunks:
            chunk.metadata["sha256"] = digest
        chunks.extend(file_chunks)
        documents = len({c.metadata.get("doc_id") for c in file_chunks})
        outcomes.append(FileOutcome(path=shown, status="ingested", documents=documents, chunks=len(file_chunks),
                                    sha256=digest, encoding=encoding, notes=tuple(notes)))
    if not chunks:
        reasons = "; ".join(f"{o.path}: {o.reason}" for o in outcomes[:5])
        raise CorpusError(f"{path}: no file could be ingested ({reasons})")
    return LoadedCorpus(chunks=chunks, files=outcomes)
