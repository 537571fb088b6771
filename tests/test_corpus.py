"""Reading files of every type into chunks, and skipping bad files with a reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_bench.config import CorpusConfig
from rag_bench.corpus import CorpusError, chunk_documents, load_corpus
from tests.conftest import PLANTED_FACT


def by_source(loaded):
    out: dict[str, list] = {}
    for chunk in loaded.chunks:
        out.setdefault(chunk.metadata["source"], []).append(chunk)
    return out


def test_every_file_type_is_ingested(mixed_corpus: Path):
    loaded = load_corpus(mixed_corpus, progress=False)
    assert not loaded.skipped, loaded.skipped
    chunks = by_source(loaded)
    assert set(chunks) == {"notes.txt", "sub/guide.md", "page.html", "table.csv", "records.jsonl",
                           "report.pdf", "memo.docx"}
    assert any(PLANTED_FACT in c.page_content for c in chunks["sub/guide.md"])
    html = " ".join(c.page_content for c in chunks["page.html"])
    assert "Brellin harbour" in html and "secret" not in html  # script text is dropped
    assert [c.metadata["page"] for c in chunks["report.pdf"]] == [1, 2]
    assert "glaciers" in chunks["report.pdf"][0].page_content and "fjords" in chunks["report.pdf"][1].page_content
    assert len(chunks["table.csv"]) == 2 and "Dorvik" in chunks["table.csv"][1].page_content
    assert chunks["records.jsonl"][0].metadata["doc_id"] == "r1"
    assert chunks["records.jsonl"][0].metadata["topic"] == "mining"
    assert "ferry schedule" in chunks["memo.docx"][0].page_content


def test_chunks_carry_source_sha_and_position(mixed_corpus: Path):
    import hashlib

    loaded = load_corpus(mixed_corpus, progress=False)
    for chunk in loaded.chunks:
        meta = chunk.metadata
        source_bytes = (mixed_corpus / meta["source"]).read_bytes()
        assert meta["sha256"] == hashlib.sha256(source_bytes).hexdigest()
        assert isinstance(meta["position"], int) and isinstance(meta["start_index"], int)
        assert len(meta["chunk_id"]) == 24


def test_chunk_ids_are_stable_and_content_addressed(mixed_corpus: Path):
    first = [c.metadata["chunk_id"] for c in load_corpus(mixed_corpus, progress=False).chunks]
    second = [c.metadata["chunk_id"] for c in load_corpus(mixed_corpus, progress=False).chunks]
    assert first == second and len(set(first)) == len(first)
    (mixed_corpus / "notes.txt").write_text("Completely different words now.")
    third = {c.metadata["source"]: c.metadata["chunk_id"] for c in load_corpus(mixed_corpus, progress=False).chunks}
    assert third["notes.txt"] not in first
    assert third["sub/guide.md"] in first


def test_chunk_size_and_overlap_are_honoured():
    from langchain_core.documents import Document

    text = " ".join(f"word{i}" for i in range(400))
    cfg = CorpusConfig(chunk_size=200, chunk_overlap=40)
    chunks = chunk_documents([Document(page_content=text, metadata={"doc_id": "d"})], cfg)
    assert len(chunks) > 5 and all(len(c.page_content) <= 200 for c in chunks)
    tail = chunks[0].page_content.split()[-2:]
    assert " ".join(tail) in chunks[1].page_content  # neighbours share the overlap


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("empty.txt", b"", "empty file"),
    ("junk.txt", b"\x00\x01\x02binary\xff" * 20, "binary content"),
    ("latin1.md", "caf\u00e9 cr\u00e8me".encode("latin-1"), "not UTF-8"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "corrupt PDF"),
    ("fake.pdf", b"this is not a pdf at all", "corrupt PDF"),
    ("broken.docx", b"PK\x03\x04 not really a zip", "corrupt DOCX"),
    ("bad.jsonl", b'{"id": 1, "contents": "ok"}\n{not json\n', "line 2"),
    ("image.png", b"\x89PNG\r\n\x1a\n", "unsupported file type"),
    ("blank.txt", b"   \n\n  ", "no text"),
])
def test_bad_files_are_skipped_with_reason(tmp_path: Path, name: str, content: bytes, reason: str):
    (tmp_path / "good.txt").write_text("A readable file about otters.")
    (tmp_path / name).write_bytes(content)
    loaded = load_corpus(tmp_path, progress=False)
    skipped = {f.path: f.reason for f in loaded.skipped}
    assert name in skipped and reason in skipped[name], skipped
    assert [c.metadata["source"] for c in loaded.chunks] == ["good.txt"]


def test_oversized_file_is_skipped(tmp_path: Path):
    (tmp_path / "good.txt").write_text("small")
    (tmp_path / "huge.txt").write_text("x" * 5000)
    loaded = load_corpus(tmp_path, CorpusConfig(max_file_bytes=1000), progress=False)
    assert "too large" in {f.path: f.reason for f in loaded.skipped}["huge.txt"]


def test_unreadable_file_is_skipped(tmp_path: Path):
    import shutil

    (tmp_path / "good.txt").write_text("A readable file.")
    secret = tmp_path / "secret.txt"
    secret.write_text("nobody may read this")
    secret.chmod(0)
    code = (f"from rag_bench.corpus import load_corpus; "
            f"print({{f.path: f.reason for f in load_corpus({str(tmp_path)!r}, progress=False).skipped}})")
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        # root reads any file; without CAP_DAC_OVERRIDE it obeys file modes like everyone else.
        assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop root's override"
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--", *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert "'secret.txt': 'permission denied'" in out.stdout


def test_missing_and_empty_paths_are_clear_errors(tmp_path: Path):
    with pytest.raises(CorpusError, match="no such file or folder"):
        load_corpus(tmp_path / "nope", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no files"):
        load_corpus(tmp_path / "empty", progress=False)
    with pytest.raises(CorpusError, match="matches no files"):
        load_corpus(str(tmp_path / "*.pdf"), progress=False)
    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "a.txt").write_bytes(b"")
    with pytest.raises(CorpusError, match="no file could be ingested"):
        load_corpus(tmp_path / "only_bad", progress=False)


def test_glob_selects_files(mixed_corpus: Path):
    loaded = load_corpus(str(mixed_corpus / "**" / "*.md"), progress=False)
    assert {c.metadata["source"] for c in loaded.chunks} == {"guide.md"}
