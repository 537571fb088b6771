"""The Markdown files whose result tables ``readme_tables`` regenerates: README.md and every file under docs/ that has
a ``<!-- table:<name>:<kind> -->`` marker, rewritten or checked together by one command.

    from rag_bench.report.marked_files import marked_files, rewrite_tables
    files = marked_files(readme=None, docs=None)          # README.md + docs/**/*.md with markers
    rewrite_tables(files, render_one, check=True)         # 1 when any of them differs from its results

The README was split into docs/ pages (quick.md, smol.md, ...); their tables are checked exactly as the README's
were, so a hand edit or a changed result in any of them fails ``--check``, naming the file.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A marker line opening a table (readme_tables.MARKER matches the whole table); a marker quoted in prose is not one
TABLE_MARK = re.compile(r"^<!-- table:[\w.-]+:[\w-]+ -->$", re.M)


def marked_files(readme: Path | None, docs: Path | None, repo: Path = REPO) -> list[Path]:
    """The files to rewrite or check. Neither given: README.md and every marked ``docs/**/*.md`` of ``repo``.
    Otherwise ``readme`` (if given) and the marked Markdown files under ``docs`` (if given)."""
    if readme is None and docs is None:
        readme, docs = repo / "README.md", repo / "docs"
    files = [readme] if readme is not None else []
    if docs is not None:
        if not docs.is_dir():
            raise ValueError(f"{docs}: no such docs folder")
        files += [p for p in sorted(docs.rglob("*.md"))
                  if p != readme and TABLE_MARK.search(p.read_text(encoding="utf-8"))]
    return files


def rewrite_tables(files: list[Path], render: Callable[[str, str], str], *, check: bool) -> int:
    """Render every file's tables with ``render(text, file_name)``; with ``check``, change nothing and return 1 when
    any file differs (each such file named on stderr); else rewrite the files that changed. A file that cannot be
    rendered (a missing results folder, an unknown kind) is one line on stderr naming it, and 1."""
    rendered: list[tuple[Path, str, str]] = []
    for path in files:
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            return 1
        text = path.read_text(encoding="utf-8")
        try:
            rendered.append((path, text, render(text, str(path))))
        except ValueError as exc:  # ReportError included: one line naming the file
            print(exc, file=sys.stderr)
            return 1
    changed = [(path, new) for path, text, new in rendered if new != text]
    if check:
        for path, _ in changed:
            print(f"{path}: a table differs from docs/results; run python -m rag_bench.report.readme_tables",
                  file=sys.stderr)
        return 1 if changed else 0
    for path, text, new in rendered:
        if new != text:
            tmp = path.with_name(f".{path.name}.tmp")  # atomic: a kill leaves the old file or the new one
            tmp.write_text(new, encoding="utf-8")
            tmp.replace(path)
        print(f"{'rewrote' if new != text else 'unchanged:'} {len(TABLE_MARK.findall(text))} tables in {path}")
    return 0
