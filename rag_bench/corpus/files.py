"""Which files an ingest sees, and how text files are read: every file accounted for, text streamed.

    rag-bench ingest ./company_docs --name acme    # the report lists every file: ingested or skipped, why

- ``walk`` lists every file under the root. Hidden ones (any path part beginning with ``.``, ``..x``
  included) are skipped as hidden, a hidden folder as one entry with its file count; a symlink is
  followed only when its target resolves inside the root (else skipped, naming the target); a link to a
  folder is never followed.
- ``detect_encoding`` reads UTF-8 as UTF-8 and anything else through charset-normalizer (cp1252,
  Latin-1, cp1251, UTF-16 with a BOM, ...), on a bounded sample; cp1252 wins a close call.
- ``iter_text`` yields a text file's contents in segments of about ``SEGMENT_CHARS`` characters cut at
  line ends, decoding incrementally, so reading a file holds one segment at a time whatever its size.
- ``iter_jsonl_records`` yields the valid records of a corpus JSONL and the line number and reason of
  each bad line, reading one line at a time.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator
from pathlib import Path

SEGMENT_CHARS = 256_000  # characters per streamed segment of a text file
SAMPLE_BYTES = 1 << 20  # bytes charset detection looks at
READ_BYTES = 1 << 16  # bytes per read


class SkipFile(Exception):
    """A file that cannot be ingested; the message is the reason shown to the user."""


def is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def walk(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """``(files to read, [(shown path, reason) of every file or link skipped here])`` under ``root``."""
    root = root.absolute()
    real_root = root.resolve()
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            path = here / name
            shown = str(path.relative_to(root))
            if path.is_symlink():
                skipped.append((shown + "/", f"link to a folder ({os.readlink(path)}); links to folders are "
                                             f"not followed"))
            elif name.startswith("."):
                count = sum(len(f) for _, _, f in os.walk(path))
                skipped.append((shown + "/", f"hidden folder (name begins with '.'; {count} file(s) not read)"))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (here / d).is_symlink())
        for name in sorted(names):
            path = here / name
            shown = str(path.relative_to(root))
            if name.startswith("."):
                skipped.append((shown, "hidden file (name begins with '.')"))
                continue
            reason = link_problem(path, real_root)
            if reason:
                skipped.append((shown, reason))
            elif path.is_file():
                files.append(path)
            else:
                skipped.append((shown, "not a regular file"))
    return files, skipped


def link_problem(path: Path, real_root: Path) -> str:
    """Why ``path`` must not be read (a link leaving the root, a broken link), or "" if it may."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return f"broken symlink (to {os.readlink(path)})" if path.is_symlink() else "cannot be resolved"
    if not target.is_relative_to(real_root):
        return f"resolves outside the ingested folder (to {target}); refused"
    return ""


def detect_encoding(path: Path) -> str:
    """"utf-8" when the whole file decodes as UTF-8 (checked streaming), else charset-normalizer's guess."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with open(path, "rb") as fh:
            while block := fh.read(READ_BYTES):
                decoder.decode(block)
                offset += len(block)
            decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    with open(path, "rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    matches = list(from_bytes(sample))
    if not matches or matches[0].encoding is None:
        raise SkipFile("not text in UTF-8 or any encoding charset-normalizer recognises")
    best = matches[0]
    # On short Western European text the detector's first pick is often a Baltic or Central European code page
    # (measured: French cp1252 and Latin-1 samples came back as cp1257). cp1252, a superset of Latin-1's
    # printable range and the commonest legacy encoding of Western office files, wins when it is a close match.
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + 0.15 and match.coherence >= best.coherence - 0.1:
            return "cp1252"
    return best.encoding


def iter_text(path: Path, encoding: str) -> Iterator[str]:
    """The file's text in segments of about SEGMENT_CHARS, each ending at a line end where there is one."""
    decoder = codecs.getincrementaldecoder(encoding)()
    pending = ""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(READ_BYTES)
            try:
                pending += decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                raise SkipFile(f"undecodable as {encoding} ({exc.reason})") from None
            while len(pending) >= SEGMENT_CHARS:
                cut = pending.rfind("\n", 0, SEGMENT_CHARS) + 1 or SEGMENT_CHARS
                yield pending[:cut]
                pending = pending[cut:]
            if not block:
                break
    if pending:
        yield pending


def iter_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """Numbered lines, decoded incrementally (one line held at a time)."""
    number = 0
    with open(path, encoding=encoding, newline="") as fh:
        try:
            for number, line in enumerate(fh, start=1):
                yield number, line
        except UnicodeDecodeError as exc:
            raise SkipFile(f"line {number + 1}: undecodable as {encoding} ({exc.reason})") from None


def iter_jsonl_records(path: Path, encoding: str) -> Iterator[tuple[int, dict | None, str]]:
    """``(line number, record, "")`` for each valid corpus record, ``(line number, None, reason)`` for a bad one."""
    for number, line in iter_lines(path, encoding):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            yield number, None, f"not JSON ({exc.msg})"
            continue
        if not isinstance(obj, dict) or obj.get("id") is None or not isinstance(obj.get("contents"), str):
            yield number, None, "a corpus record needs 'id' and a string 'contents'"
        elif not isinstance(obj.get("metadata") or {}, dict):
            yield number, None, "'metadata' must be an object"
        else:
            yield number, obj, ""
