"""Reading files of every type into chunks, and skipping bad files with a reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_bench.config import CorpusConfig
from rag_bench.corpus.load import CorpusError, chunk_documents, load_corpus
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
    ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "corrupt PDF"),
    ("fake.pdf", b"this is not a pdf at all", "corrupt PDF"),
    ("broken.docx", b"PK\x03\x04 not really a zip", "corrupt DOCX"),
    ("bad.jsonl", b'{not json\n{"id": 2}\n', "no valid records in the file; 2 bad line(s), the first line 1: not JSON"),
    ("dotted..txt", b"\x00\x00\x00\x00 binary", "binary content"),
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
    code = (f"from rag_bench.corpus.load import load_corpus; "
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


def test_legacy_encodings_are_read_and_the_encoding_recorded(tmp_path: Path):
    (tmp_path / "cp1252.txt").write_bytes("Le caf\u00e9 co\u00fbte 5 \u20ac \u2013 \u201cna\u00efve\u201d cr\u00e8me "
                                          "br\u00fbl\u00e9e, d\u00e9j\u00e0 vu.\n".encode("cp1252") * 20)
    (tmp_path / "latin1.md").write_bytes("Caf\u00e9 cr\u00e8me, \u00e0 la fran\u00e7aise: d\u00e9j\u00e0 "
                                         "r\u00e9serv\u00e9 pour l\u2019\u00e9t\u00e9.\n".replace("\u2019", "'")
                                         .encode("latin-1") * 20)
    loaded = load_corpus(tmp_path, progress=False)
    assert not loaded.skipped, loaded.skipped
    files = {f.path: f for f in loaded.files}
    assert files["cp1252.txt"].encoding not in {"", "utf-8"} and files["latin1.md"].encoding not in {"", "utf-8"}
    text = {c.metadata["source"]: c.page_content for c in loaded.chunks}
    assert "5 \u20ac \u2013 \u201cna\u00efve\u201d" in text["cp1252.txt"]
    assert "Caf\u00e9 cr\u00e8me" in text["latin1.md"]
    assert all(c.metadata["encoding"] == files[c.metadata["source"]].encoding for c in loaded.chunks)


def test_malformed_jsonl_line_is_skipped_with_its_number_and_the_rest_kept(tmp_path: Path):
    (tmp_path / "records.jsonl").write_text(
        '{"id": "a", "contents": "Tarsil mines copper."}\n{"id": "b", "contents": "trunc\n'
        '{"id": "c", "contents": "Askel fishes cod."}\n[1, 2]\n{"id": "d", "contents": 5}\n')
    loaded = load_corpus(tmp_path, progress=False)
    (outcome,) = loaded.files
    assert outcome.status == "ingested" and outcome.documents == 2
    assert [n.split(":")[0] for n in outcome.notes] == ["line 2", "line 4", "line 5"]
    assert "not JSON" in outcome.notes[0] and "needs 'id'" in outcome.notes[1]
    assert {c.metadata["doc_id"] for c in loaded.chunks} == {"a", "c"}


def test_every_file_is_in_the_report_hidden_and_links_included(tmp_path: Path):
    root, outside = tmp_path / "docs", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("Outside the ingested folder: must not be read.")
    (root / "good.txt").write_text("A readable file about otters.")
    (root / "sub" / "inner.md").write_text("Inner notes about herons.")
    (root / ".env").write_text("TOKEN=1")
    (root / "..hidden.txt").write_text("dot-dot name")
    (root / ".git" / "config").write_text("[core]")
    (root / ".git" / "HEAD").write_text("ref")
    (root / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "link_out.md").symlink_to(outside / "secret.md")
    (root / "link_in.md").symlink_to(root / "sub" / "inner.md")
    (root / "dangling.txt").symlink_to(root / "gone.txt")
    (root / "folder_link").symlink_to(outside)
    loaded = load_corpus(root, progress=False)
    outcome = {f.path: (f.status, f.reason) for f in loaded.files}
    assert set(outcome) == {"good.txt", "sub/inner.md", ".env", "..hidden.txt", ".git/", "photo.png", "link_out.md",
                            "link_in.md", "dangling.txt", "folder_link/"}
    assert outcome["good.txt"][0] == outcome["link_in.md"][0] == outcome["sub/inner.md"][0] == "ingested"
    assert "hidden file" in outcome[".env"][1] and "hidden file" in outcome["..hidden.txt"][1]
    assert "hidden folder" in outcome[".git/"][1] and "2 file(s)" in outcome[".git/"][1]
    assert "resolves outside the ingested folder" in outcome["link_out.md"][1]
    assert "broken symlink" in outcome["dangling.txt"][1] and "not followed" in outcome["folder_link/"][1]
    assert not any("Outside the ingested" in c.page_content for c in loaded.chunks)


def test_glob_refuses_a_link_that_leaves_its_folder(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "secret.md").write_text("Outside.")
    (tmp_path / "docs" / "ok.md").write_text("Inside.")
    (tmp_path / "docs" / "out.md").symlink_to(tmp_path / "secret.md")
    loaded = load_corpus(str(tmp_path / "docs" / "*.md"), progress=False)
    assert [c.page_content for c in loaded.chunks] == ["Inside."]
    assert "resolves outside" in {f.path: f.reason for f in loaded.skipped}[str(tmp_path / "docs" / "out.md")]


def test_a_large_text_file_is_chunked_in_streamed_segments(tmp_path: Path):
    line = "The harbour of Brellin ships timber, grain and salted fish to the northern isles.\n"
    (tmp_path / "big.txt").write_text(line * 8000)  # ~660k characters: three segments
    chunks = load_corpus(tmp_path, progress=False).chunks
    text = (tmp_path / "big.txt").read_text()
    assert all(text[c.metadata["start_index"]:].startswith(c.page_content) for c in chunks)
    assert chunks[-1].metadata["start_index"] + len(chunks[-1].page_content) == len(text.rstrip("\n"))


def test_formats_parsed_whole_keep_a_size_cap_whatever_max_file_mb_says(tmp_path: Path):
    from rag_bench.corpus.load import WHOLE_FILE_MAX_BYTES

    (tmp_path / "good.txt").write_text("A readable file about otters.")
    with open(tmp_path / "huge.html", "wb") as fh:  # sparse: costs no disk
        fh.write(b"<html><body>otters</body></html>")
        fh.truncate(WHOLE_FILE_MAX_BYTES + 1)
    loaded = load_corpus(tmp_path, CorpusConfig(max_file_bytes=10 * WHOLE_FILE_MAX_BYTES), progress=False)
    reason = {f.path: f.reason for f in loaded.skipped}["huge.html"]
    assert "too large to parse" in reason and "--max-file-mb does not raise it" in reason
    assert [c.metadata["source"] for c in loaded.chunks] == ["good.txt"]


def test_html_inline_elements_stay_on_their_line_and_blocks_break(tmp_path: Path):
    page = tmp_path / "functools.html"
    page.write_text(
        "<html><head><title>functools</title><style>p {color: red}</style></head><body>"
        "<h1>The <code>functools</code>\n   module</h1>"
        "<p>Decorator to wrap a function with a memoizing callable: <code><span>lru_cache</span>(<em>maxsize</em>="
        "<span class='n'>128</span>, <em>typed</em>=<b>False</b>)</code>. See <a href='#x'>the\n  cache</a>.</p>"
        "<ul><li>first <strong>item</strong></li><li>second</li></ul>line one<br>line two"
        "<table><tr><td>cell a</td><td>cell <i>b</i></td></tr></table></body></html>", encoding="utf-8")
    loaded = load_corpus(page, progress=False)
    assert not loaded.skipped
    text = "\n".join(c.page_content for c in loaded.chunks)
    lines = text.splitlines()
    assert "Decorator to wrap a function with a memoizing callable: lru_cache(maxsize=128, typed=False). "\
           "See the cache." in lines
    assert "The functools module" in lines  # inline code and a newline in the source stay one line
    assert {"first item", "second", "line one", "line two", "cell a", "cell b"} <= set(lines)  # blocks and <br> break
    assert "color" not in text
