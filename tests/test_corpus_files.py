"""Streamed reading and charset detection: memory stays bounded whatever the file size; encodings found."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from rag_bench.config import CorpusConfig
from rag_bench.corpus.files import SEGMENT_CHARS, SkipFile, detect_encoding, iter_jsonl_records, iter_text
from rag_bench.corpus.load import load_file


def write_big(path: Path, megabytes: int) -> str:
    line = "Brellin harbour ships timber, grain and salted fish; caf\u00e9 cr\u00e8me at the quay.\n"
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(megabytes * 1_000_000 // len(line.encode())):
            fh.write(line)
    return line


def test_reading_a_large_file_holds_one_segment_at_a_time(tmp_path: Path):
    line = write_big(tmp_path / "big.txt", 40)
    size = (tmp_path / "big.txt").stat().st_size
    cfg = CorpusConfig(max_file_bytes=10 * size)  # a raised --max-file-mb does not lift the bound
    tracemalloc.start()
    try:
        docs, encoding = load_file(tmp_path / "big.txt", tmp_path, cfg)
        characters = segments = 0
        for doc in docs:
            characters += len(doc.page_content)
            segments += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert encoding == "utf-8" and segments > 100
    assert characters == len(line) * (size // len(line.encode()))
    assert peak < 8 * SEGMENT_CHARS, f"peak {peak:,} bytes while reading a {size:,}-byte file"  # ~2 MB, not 40 MB


def test_segments_reassemble_the_file_exactly(tmp_path: Path):
    text = "".join(f"line {i} \u00e9\u20ac\n" if i % 7 else f"{'x' * 300}" for i in range(60_000))
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    parts = list(iter_text(tmp_path / "a.txt", "utf-8"))
    assert "".join(parts) == text and len(parts) > 1
    assert all(p.endswith("\n") for p in parts[:-1])


@pytest.mark.parametrize("encoding, text", [
    ("cp1252", "Le caf\u00e9 co\u00fbte 5 \u20ac \u2013 \u201cna\u00efve\u201d cr\u00e8me br\u00fbl\u00e9e.\n"),
    ("cp1251", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? "
               "\u042d\u0442\u043e \u0442\u0435\u043a\u0441\u0442 \u043e \u0433\u0430\u0432\u0430\u043d\u0438.\n"),
    ("utf_16", "Harbour notes with a byte-order mark: caf\u00e9.\n"),
])
def test_legacy_encodings_are_detected_and_decode_the_text(tmp_path: Path, encoding: str, text: str):
    (tmp_path / "f.txt").write_bytes((text * 30).encode(encoding))
    found = detect_encoding(tmp_path / "f.txt")
    assert "".join(iter_text(tmp_path / "f.txt", found)) == text * 30, found


def test_utf8_is_utf8_even_when_the_bad_byte_comes_late(tmp_path: Path):
    (tmp_path / "ok.txt").write_bytes(("a" * 200_000 + "\u00e9").encode("utf-8"))
    (tmp_path / "late.txt").write_bytes(b"a" * 200_000 + "caf\u00e9 cr\u00e8me fran\u00e7aise".encode("cp1252"))
    assert detect_encoding(tmp_path / "ok.txt") == "utf-8"
    assert detect_encoding(tmp_path / "late.txt") != "utf-8"


def test_jsonl_bad_lines_are_numbered(tmp_path: Path):
    (tmp_path / "r.jsonl").write_text('{"id": 1, "contents": "a"}\n\n{oops\n'
                                      '{"id": 2, "contents": "b", "metadata": 3}\n')
    rows = list(iter_jsonl_records(tmp_path / "r.jsonl", "utf-8"))
    assert [(n, obj is not None) for n, obj, _ in rows] == [(1, True), (3, False), (4, False)]
    assert "not JSON" in rows[1][2] and "metadata" in rows[2][2]


def test_undecodable_text_is_a_skip_reason(tmp_path: Path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfd" * 10)
    with pytest.raises(SkipFile, match="undecodable as utf-8"):
        list(iter_text(tmp_path / "bad.txt", "utf-8"))
