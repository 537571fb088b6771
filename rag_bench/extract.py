"""Extractive answers by scoring candidate spans: the answer is the passage span the model finds likeliest.

    from rag_bench.extract import candidate_spans, read_spans
    candidate_spans("Kenya | Government | Capital: Nairobi")        # [Span(start=29, end=36, text='Nairobi', ...)]
    read_spans(lm, prompts, passages, questions)                     # one ScoredSpan (or None) per question

Greedy span-constrained decoding (``grounded_span``) commits to its first token and then copies on, so a 135M
model starts a span in the wrong passage and cannot take it back. Here every candidate span is scored whole: the
model's mean log-probability per token of the span, then the end of its turn, as the answer after the prompt
(one forward of the prompt, its KV cache shared by a batch of candidates). A question names the field it asks
for ("What is the capital of Kenya?"), so the score adds ``field_weight`` times the share of the question's
content words found in the candidate's record key ("Kenya | Government | Capital"), or, in prose, in its
sentence. A best score below ``min_score`` is a refusal: no span of the passages answers.

Candidates (``candidate_spans``): in a record line ``key: value`` the value, its parts split on ``;`` and then
``,``, and each of those without a trailing parenthesis ("85,370 (2024 est.)" -> "85,370"); in prose, each run
of one to ``max_words`` words inside a clause that neither starts nor ends with a function word. Every candidate
is a verbatim slice of its passage, so the citation can highlight it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

_FUNCTION_WORDS = """a an the of in on at to for by with from and or but is are was were be been being it its this that
these those as which who whom what where when how there their they he she his her has have had do does did not no yes
about into than then so such also can could would should will shall may might i you we our your"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())  # words that never carry an answer (nor start or end a span)
_RECORD_LINE = re.compile(r"^(?P<key>[^\n:]*\|[^\n:]*):[ \t]*(?P<value>\S.*)$", re.MULTILINE)
_CLAUSE_BREAK = re.compile(r"[.;:,!?](?=\s|$)|[()\"“”\n]")  # ends a prose clause ("0.42" and "10:00" do not)
_WORD = re.compile(r"[\w’'$€£](?:[\w’'.,:%/-]*[\w%])?")  # a word or number: "0.42", "2,381,740", "10:00", "$5"
_PAREN_TAIL = re.compile(r"\s*\([^()]*\)\s*$")
SPAN_ROOM = 64  # tokens of an answer and its end at most: the prompt is cut from the left to leave them room


@dataclasses.dataclass(frozen=True, kw_only=True)
class Span:
    """One candidate answer: a verbatim slice of one passage."""

    start: int  # character offsets in the passage
    end: int
    text: str  # passage[start:end]
    context: str  # the record key, or the sentence around a prose span: what the question's words are matched to


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScoredSpan:
    """The chosen span of a question's passages and why."""

    passage: int  # index of the passage in the list given
    start: int
    end: int
    text: str
    score: float  # the combined score (model mean log-probability + field_weight x question overlap)
    logprob: float  # the model's mean log-probability per token of the span and its end
    candidates: int  # candidates scored for this question


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Offsets with surrounding spaces and dangling punctuation trimmed."""
    while start < end and (text[start].isspace() or text[start] in "-–—:;,."):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in "-–—:;,"):
        end -= 1
    return start, end


def _value_parts(passage: str, start: int, end: int) -> list[tuple[int, int]]:
    """The value, its ';' parts, their ',' parts (not a thousands comma), each with and without a final (...)."""
    pieces = [(start, end)]
    for a, b in _split(passage, start, end, r";"):
        pieces.append((a, b))
        pieces += _split(passage, a, b, r",(?!\d{3}\b)")
    out = []
    for a, b in pieces:
        a, b = _strip(passage, a, b)
        if b <= a:
            continue
        out.append((a, b))
        if (match := _PAREN_TAIL.search(passage[a:b])) and match.start() > 0:
            out.append(_strip(passage, a, a + match.start()))
    return out


def _split(text: str, start: int, end: int, pattern: str) -> list[tuple[int, int]]:
    bounds, at = [], start
    for match in re.finditer(pattern, text[start:end]):
        bounds.append((at, start + match.start()))
        at = start + match.end()
    return [*bounds, (at, end)] if bounds else []


def _prose_spans(passage: str, start: int, end: int, max_words: int) -> list[Span]:
    out = []
    for sentence in re.finditer(r"[^.!?\n]+(?:[.!?](?=\d)[^.!?\n]*)*", passage[start:end]):
        s0, s1 = start + sentence.start(), start + sentence.end()
        for c0, c1 in _split(passage, s0, s1, _CLAUSE_BREAK.pattern) or [(s0, s1)]:
            found = [(m.start(), m.end()) for m in _WORD.finditer(passage, c0, c1)]
            for i, (a, _) in enumerate(found):
                if passage[a:found[i][1]].lower() in FUNCTION_WORDS:
                    continue
                for j in range(i, min(i + max_words, len(found))):
                    b = found[j][1]
                    if passage[found[j][0]:b].lower() not in FUNCTION_WORDS:
                        out.append(Span(start=a, end=b, text=passage[a:b], context=passage[s0:s1]))
    return out


def candidate_spans(passage: str, *, max_words: int = 4) -> list[Span]:
    """Every candidate answer of one passage, each a verbatim slice of it, without repeats (first kept)."""
    spans: list[Span] = []
    covered = 0
    for line in _RECORD_LINE.finditer(passage):
        if line.start() > covered:
            spans += _prose_spans(passage, covered, line.start(), max_words)
        key = line.group("key")
        for a, b in _value_parts(passage, line.start("value"), line.end("value")):
            spans.append(Span(start=a, end=b, text=passage[a:b], context=key))
        covered = line.end()
    if covered < len(passage):
        spans += _prose_spans(passage, covered, len(passage), max_words)
    seen: set[tuple[int, int]] = set()
    return [s for s in spans if (s.start, s.end) not in seen and not seen.add((s.start, s.end))]


def _content(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text) if w.lower() not in FUNCTION_WORDS}


def question_overlap(question: str, context: str) -> float:
    """Share of the question's content words found in ``context`` (0 when the question has none)."""
    asked = _content(question)
    return len(asked & _content(context)) / len(asked) if asked else 0.0


def span_logprobs(lm: Any, prompt: str, answers: Sequence[str], *, end: str, batch_size: int = 32) -> list[float]:
    """Mean log-probability per token of each answer followed by ``end``, after ``prompt``.

    The prompt is run once; its KV cache is repeated over a batch of answers, so a batch costs the answers' tokens
    only (a model whose cache cannot be repeated, like LFM2's convolution state, reads the prompt in every row).
    The prompt is cut from the left to leave ``SPAN_ROOM`` positions; a longer answer scores -inf.
    """
    import torch

    from rag_bench.lm import autocast

    tok = lm.tokenizer
    every = [tok(a, add_special_tokens=False)["input_ids"] + tok(end, add_special_tokens=False)["input_ids"]
             for a in answers]
    rows = [r for r in every if 0 < len(r) <= SPAN_ROOM]
    prompt_ids = tok(prompt)["input_ids"][-(lm.max_positions - SPAN_ROOM):]
    n_prompt, device = len(prompt_ids), lm.device
    out: list[float] = []
    with torch.inference_mode(), autocast(device):
        first = lm.model(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True)
        cache = first.past_key_values
        if not all(hasattr(layer, "batch_repeat_interleave") for layer in getattr(cache, "layers", [None])):
            cache = None
        for begin in range(0, len(rows), batch_size):
            batch = rows[begin:begin + batch_size]
            width = max(len(r) for r in batch)
            ids = torch.full((len(batch), n_prompt + width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, row in enumerate(batch):
                ids[r, :n_prompt + len(row)] = torch.tensor(prompt_ids + row)
                mask[r, :n_prompt + len(row)] = 1
            if cache is None:
                logits = lm.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, n_prompt - 1:-1]
            else:  # the prompt's last logits predict each answer's first token, the batch the rest
                rest = lm.model(input_ids=ids[:, n_prompt:].to(device), attention_mask=mask.to(device),
                                past_key_values=_repeat_cache(cache, len(batch)), use_cache=True).logits[:, :-1]
                logits = torch.cat([first.logits[:, -1:].expand(len(batch), 1, -1), rest], dim=1)
            logits = logits.float()
            targets = ids[:, n_prompt:].to(device)
            picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
            out += [float(picked[r, :len(row)].mean()) for r, row in enumerate(batch)]
    scores = iter(out)
    return [next(scores) if 0 < len(r) <= SPAN_ROOM else float("-inf") for r in every]


def _repeat_cache(cache: Any, n: int) -> Any:
    """A copy of a one-row KV cache repeated to ``n`` rows (the original stays one row for the next batch)."""
    import copy

    repeated = copy.deepcopy(cache)
    repeated.batch_repeat_interleave(n)
    return repeated


def choose_span(lm: Any, prompt: str, passages: Sequence[str], question: str, *, end: str,
                field_weight: float = 0.0, min_score: float | None = None, max_words: int = 4) -> ScoredSpan | None:
    """The best-scoring candidate span of ``passages`` as the answer to ``question`` after ``prompt``, or None
    (a refusal) when there is no candidate or the best scores below ``min_score`` (None: no floor). Ties go to the
    earlier passage (the retriever's better rank)."""
    found = [(i, span) for i, passage in enumerate(passages) for span in candidate_spans(passage, max_words=max_words)]
    if not found:
        return None
    texts = list(dict.fromkeys(span.text for _, span in found))
    logprob = dict(zip(texts, span_logprobs(lm, prompt, texts, end=end), strict=True))
    scored = [(logprob[span.text] + field_weight * question_overlap(question, span.context), -i, i, span)
              for i, span in found]
    score, _, index, span = max(scored, key=lambda row: row[:2])
    if score == float("-inf") or (min_score is not None and score < min_score):
        return None
    return ScoredSpan(passage=index, start=span.start, end=span.end, text=span.text, score=score,
                      logprob=logprob[span.text], candidates=len(texts))
