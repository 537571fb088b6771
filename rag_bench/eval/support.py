"""Is a grounded answer supported by its passages? Where: the passage and the characters to highlight.

    from rag_bench.eval.support import find_support
    find_support("The capital of Tuvalu is Funafuti.", ["Tuvalu | Government | Capital: Funafuti"],
                 question="What is the capital of Tuvalu?")
    # Support(passage=0, start=32, end=40, text='Funafuti', words=1)

Words are compared as the `contains` metric compares them (rag_bench.eval.metrics.normalize_answer: lowercase,
no punctuation or articles, thousands separators dropped), as whole words. A chat model answers in sentences that
repeat the question ("The capital of Tuvalu is ..."), so the answer's *content* is its words that are neither in
the question nor common function words, and of those its numbers and names when it has any ("About 39584 people"
rests on 39584); the support is the longest run of the answer's words found in one passage that holds all of that
content. An answer whose content is in no passage, or that has no content at all ("The
capital of Tuvalu is Tuvalu."), is unsupported: None. Pure: no I/O, no model.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from rag_bench.eval.metrics import normalize_answer
from rag_bench.extract import FUNCTION_WORDS

# a word with its inner separators, so that "2,381,740", "3.5" and "U.S." stay one word as normalize_answer sees them
_WORD = re.compile(r"\w+(?:[.,'’]\w+)*")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Support:
    """Where an answer's words occur in one passage."""

    passage: int  # index of the passage in the list given
    start: int  # character offsets of the span in that passage's text
    end: int
    text: str  # passage[start:end], as written there
    words: int  # answer words in the span


def words(text: str) -> list[tuple[str, int, int]]:
    """(normalised word, start, end) for each word of ``text``; a word normalising to nothing ("the", "%") is left
    out, one normalising to several ("1,5" -> "1 5") gives several with the same offsets."""
    out = []
    for match in _WORD.finditer(text):
        for piece in normalize_answer(match.group()).split():
            out.append((piece, match.start(), match.end()))
    return out


def content_words(answer: str, question: str = "") -> set[str]:
    """The words that carry the answer: those not in the question and not function words; of these, only the
    numbers and names (a digit, or a capital letter past the first word) when the answer has any."""
    asked = {w for w, _, _ in words(question)}
    content = [(w, answer[start:end], start) for w, start, end in words(answer)
               if w not in asked and w not in FUNCTION_WORDS]
    first = min((start for _, _, start in content), default=0) if not words(answer) else words(answer)[0][1]
    key = {w for w, raw, start in content if any(c.isdigit() for c in raw) or (raw[:1].isupper() and start > first)}
    return key or {w for w, _, _ in content}


def find_support(answer: str, passages: Sequence[str], *, question: str = "") -> Support | None:
    """The longest run of the answer's words that occurs, whole, in one passage and holds all its content words;
    None when no passage holds them (the answer is "not found in the passages") or the answer has no content."""
    said = [w for w, _, _ in words(answer)]
    content = content_words(answer, question)
    if not content:
        return None
    best: Support | None = None
    for index, passage in enumerate(passages):
        found = words(passage or "")
        tokens = [w for w, _, _ in found]
        if not content <= set(tokens):
            continue
        for length in range(len(said), best.words if best else 0, -1):  # longer than the best so far only
            span = _longest_at(said, tokens, length, content)
            if span is not None:
                start, end = found[span[0]][1], found[span[1]][2]
                best = Support(passage=index, start=start, end=end, text=passage[start:end], words=length)
                break
    return best


def support_at(span: dict[str, Any] | None, passages: Sequence[str]) -> Support | None:
    """The support of a scored answer (``rag_bench.answer.Answer.span``): the passage and characters it was cut
    from; None without a span or when the span does not fit the passages given."""
    if not span or not 0 <= span["passage"] < len(passages):
        return None
    passage, start, end = passages[span["passage"]], span["start"], span["end"]
    if not 0 <= start < end <= len(passage):
        return None
    return Support(passage=span["passage"], start=start, end=end, text=passage[start:end],
                   words=len(words(passage[start:end])))


def _longest_at(said: list[str], tokens: list[str], length: int, content: set[str]) -> tuple[int, int] | None:
    """(first, last) token index in ``tokens`` of a run of ``length`` answer words holding all ``content``."""
    for offset in range(len(said) - length + 1):
        run = said[offset:offset + length]
        if not content <= set(run):
            continue
        for first in range(len(tokens) - length + 1):
            if tokens[first:first + length] == run:
                return first, first + length - 1
    return None


def span_in(passage: str, span: str) -> tuple[int, int] | None:
    """Character offsets of the normalised words of ``span`` as a whole-word run in ``passage``, or None."""
    wanted = [w for w, _, _ in words(span)]
    found = words(passage or "")
    tokens = [w for w, _, _ in found]
    for first in range(len(tokens) - len(wanted) + 1) if wanted else ():
        if tokens[first:first + len(wanted)] == wanted:
            return found[first][1], found[first + len(wanted) - 1][2]
    return None
