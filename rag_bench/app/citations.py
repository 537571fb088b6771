"""How the Chat tab shows a grounded answer's passages: literal text, the source as a title, and the answer's
supporting span highlighted (rag_bench.eval.support), or the answer marked as not found in the passages.

    from rag_bench.app.citations import citations, support_line
    support = find_support(answer.text, [s["text"] for s in answer.sources], question=question)
    support_line(support, answer.sources)     # "✓ Supported: “Funafuti” in passage [1] ..." or "✗ Not found ..."
    citations(answer.sources, support)        # one collapsed message per passage, the span in <mark>
"""

from __future__ import annotations

import html
import numbers
import re
from pathlib import Path
from typing import Any

from rag_bench.eval.support import Support, span_in

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]#~|])")


def markdown_text(text: str) -> str:
    """Corpus text shown literally: no HTML, no Markdown emphasis or headings."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))


def highlight(text: str, answer: str) -> str:
    """``text`` as literal Markdown with each whole-word occurrence of ``answer`` (case-insensitive) in <mark>.

    Whole words, so that a short answer ("E", "nm") does not light up the inside of every word.
    """
    answer = answer.strip()
    if not answer:
        return markdown_text(text)
    pattern = (r"(?<!\w)" if answer[0].isalnum() or answer[0] == "_" else "") + re.escape(answer) + \
        (r"(?!\w)" if answer[-1].isalnum() or answer[-1] == "_" else "")
    parts = re.split(f"({pattern})", text, flags=re.IGNORECASE)
    return "".join(f"<mark>{markdown_text(p)}</mark>" if i % 2 else markdown_text(p) for i, p in enumerate(parts))


def source_title(source: dict[str, Any]) -> str:
    """Where a passage comes from: country and section for the Factbook, else file (and page)."""
    if source.get("country"):
        where = " · ".join(str(source[k]) for k in ("country", "section") if source.get(k))
    else:
        where = Path(str(source.get("source", "unknown source"))).name
    if source.get("page"):
        where += f", page {source['page']}"
    score = source.get("score")
    numeric = isinstance(score, numbers.Real) and not isinstance(score, bool)  # numpy floats from FAISS too
    return f"[{source.get('rank', '?')}] {where}" + (f" · score {float(score):.3f}" if numeric else "")


def citation(source: dict[str, Any], answer: str, origin: str = "") -> dict[str, Any]:
    title = source_title(source) + (f" · {origin}" if origin else "")
    return {"role": "assistant", "content": highlight(str(source.get("text", "")), answer),
            "metadata": {"title": title, "status": "done"}}


def origin_notes(retriever: Any, sources: list[dict[str, Any]]) -> list[str]:
    """Each cited chunk's origin in a contaminated index (rag-bench contaminate), read from the index only now,
    after the answer: the labels never reach the retriever, the prompt or the citation the model produced."""
    from rag_bench.contaminate.build import origin_note

    store = getattr(retriever, "store", None)
    return [origin_note(store.docstore.search(s["chunk_id"]).metadata) if store is not None and s.get("chunk_id")
            else "" for s in sources]


def highlight_span(text: str, span: tuple[int, int] | None) -> str:
    """``text`` as literal Markdown with the characters ``span`` (start, end) in <mark>."""
    if span is None:
        return markdown_text(text)
    start, end = span
    return markdown_text(text[:start]) + f"<mark>{markdown_text(text[start:end])}</mark>" + markdown_text(text[end:])


def support_line(support: Support | None, sources: list[dict[str, Any]]) -> str:
    """One line under a grounded answer: where its span is, or that no passage holds it."""
    if support is None:
        return ("✗ **Not found in the passages**: no retrieved passage holds this answer's words; it may come "
                "from the model's weights, or be made up.")
    source = sources[support.passage]
    where = source_title(source).split(" · score")[0].split("] ", 1)[-1]  # "tuvalu.txt", not "[1] tuvalu.txt"
    return (f"✓ **Supported**: “{markdown_text(support.text)}” is in passage {source.get('rank', support.passage + 1)}"
            f" ({where}), highlighted below.")


def citations(sources: list[dict[str, Any]], support: Support | None, origins: list[str] | None = None
              ) -> list[dict[str, Any]]:
    """A collapsed message per passage; the supporting span marked in its passage and wherever else it occurs."""
    out = []
    for index, source in enumerate(sources):
        text = str(source.get("text", ""))
        span = None if support is None else (support.start, support.end) if index == support.passage else \
            span_in(text, support.text)
        origin = (origins or [""] * len(sources))[index]
        title = source_title(source) + (f" · {origin}" if origin else "")
        out.append({"role": "assistant", "content": highlight_span(text, span),
                    "metadata": {"title": title, "status": "done"}})
    return out
