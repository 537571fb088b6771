"""JSONL records: round trips, atomic writes, and errors that name the file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag_bench.records import (
    CorpusRecord,
    Probe,
    RecordError,
    atomic_path,
    read_corpus,
    read_json,
    read_probes,
    replace_dir,
    write_json,
    write_jsonl,
)


def test_corpus_and_probe_round_trip(tmp_path: Path):
    docs = [CorpusRecord(id="a", contents="text", metadata={"k": 1})]
    probes = [Probe(id="p", prompt="X | Y | Capital:", golden_answers=("Z",), metadata={"bucket": "tail"})]
    write_jsonl(tmp_path / "c.jsonl", docs)
    write_jsonl(tmp_path / "p.jsonl", probes)
    assert read_corpus(tmp_path / "c.jsonl") == docs
    assert read_probes(tmp_path / "p.jsonl") == probes


def test_question_is_accepted_for_prompt(tmp_path: Path):
    (tmp_path / "q.jsonl").write_text('{"id": 1, "question": "Who?", "golden_answers": ["Me"]}\n')
    assert read_probes(tmp_path / "q.jsonl")[0].prompt == "Who?"


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"id": 1, "golden_answers": ["x"]}', "needs 'id' and a non-empty 'prompt'"),
    ('{"id": 1, "prompt": "p", "golden_answers": []}', "non-empty list of strings"),
    ('{"id": 1, "prompt": "p", "golden_answers": ["x"], "metadata": 3}', "'metadata' must be an object"),
])
def test_malformed_probe_line_names_file_and_line(tmp_path: Path, line: str, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 0, "prompt": "ok", "golden_answers": ["y"]}\n' + line + "\n")
    with pytest.raises(RecordError, match=f"bad.jsonl:2: .*{message}"):
        read_probes(path)


def test_undecodable_and_missing_files(tmp_path: Path):
    (tmp_path / "latin.jsonl").write_bytes(b'{"id": "\xe9"}\n')
    with pytest.raises(RecordError, match="not UTF-8"):
        read_corpus(tmp_path / "latin.jsonl")
    with pytest.raises(RecordError, match="file not found"):
        read_json(tmp_path / "none.json")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("crash mid-write")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_replace_dir_swaps_a_whole_folder_and_leaves_no_old_copy(tmp_path: Path):
    target, new = tmp_path / "model", tmp_path / ".model.tmp"
    target.mkdir()
    (target / "old.bin").write_text("old")
    new.mkdir()
    (new / "weights.bin").write_text("new")
    replace_dir(new, target)
    assert [p.name for p in target.iterdir()] == ["weights.bin"] and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    fresh = tmp_path / ".fresh.tmp"
    fresh.mkdir()
    replace_dir(fresh, tmp_path / "absent")  # nothing to replace: a plain rename
    assert (tmp_path / "absent").is_dir() and not fresh.exists()
