"""Record types and their JSONL files, written atomically.

Two formats carry data between stages (FlashRAG style):

* corpus JSONL: ``{"id": ..., "contents": ..., "metadata": {...}}``, one document per line;
* QA JSONL: ``{"id": ..., "prompt" | "question": ..., "golden_answers": [...], "metadata": {...}}``.

Every write goes to a temporary file in the same folder and is renamed into place, so a
reader never sees half a file and a crash never destroys the previous version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


class RecordError(ValueError):
    """A malformed record file; the message names the file and line."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CorpusRecord:
    """One document of a corpus JSONL."""

    id: str  # stable document id
    contents: str  # the text
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)  # source, country, section, ...

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "contents": self.contents, "metadata": self.metadata}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Probe:
    """One factual probe of a QA JSONL."""

    id: str  # stable probe id
    prompt: str  # the text the model continues (or a question)
    golden_answers: tuple[str, ...]  # every accepted answer
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)  # subject, field, frequency, bucket, ...

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "golden_answers": list(self.golden_answers),
                "metadata": self.metadata}


# ---------------------------------------------------------------------------------------
# Atomic writes


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; written files should look ordinary
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """Write pretty, key-sorted JSON atomically (sorted keys keep diffs and hashes stable)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({exc})") from exc


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write one JSON object per line atomically; dataclass rows use their ``to_dict``."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            if hasattr(row, "to_dict"):
                row = row.to_dict()
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)``; a malformed line raises RecordError naming it."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: file not found")
    with open(path, encoding="utf-8") as fh:
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RecordError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise RecordError(f"{path}:{number}: expected a JSON object")
                yield number, obj
        except UnicodeDecodeError as exc:
            raise RecordError(f"{path}: not UTF-8 text ({exc.reason})") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path)]


def read_corpus(path: str | Path) -> list[CorpusRecord]:
    """Read a corpus JSONL (``id``, ``contents``, optional ``metadata``)."""
    records = []
    for number, obj in iter_jsonl(path):
        doc_id, contents = obj.get("id"), obj.get("contents")
        if doc_id is None or not isinstance(contents, str):
            raise RecordError(f"{path}:{number}: a corpus record needs 'id' and a string 'contents'")
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise RecordError(f"{path}:{number}: 'metadata' must be an object")
        records.append(CorpusRecord(id=str(doc_id), contents=contents, metadata=metadata))
    return records


def read_probes(path: str | Path) -> list[Probe]:
    """Read a QA JSONL; ``question`` is accepted in place of ``prompt``."""
    probes = []
    for number, obj in iter_jsonl(path):
        prompt = obj.get("prompt", obj.get("question"))
        answers = obj.get("golden_answers")
        if isinstance(answers, str):
            answers = [answers]
        if obj.get("id") is None or not isinstance(prompt, str) or not prompt.strip():
            raise RecordError(f"{path}:{number}: a probe needs 'id' and a non-empty 'prompt' or 'question'")
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise RecordError(f"{path}:{number}: 'golden_answers' must be a non-empty list of strings")
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise RecordError(f"{path}:{number}: 'metadata' must be an object")
        probes.append(Probe(id=str(obj["id"]), prompt=prompt, golden_answers=tuple(answers), metadata=metadata))
    return probes


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing any previous ``dst`` with only a rename in between."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
