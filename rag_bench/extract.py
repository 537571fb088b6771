"""Extractive answers by scoring candidate spans: the answer is a passage span, chosen whole.

    from rag_bench.extract import candidate_spans, choose_span
    candidate_spans("Kenya | Government | Capital: Nairobi")        # [Span(start=29, end=36, text='Nairobi', ...)]
    choose_span(lm, prompt, passages, question, end="<|im_end|>", weights=(100.0, 4.0), min_score=40.0)

Greedy span-constrained decoding (``grounded_span``) commits to its first token and then copies on, so a 135M
model starts a span in the wrong passage and cannot take it back. Here every candidate span is scored whole: the
model's mean log-probability per token of the span, then the end of its turn, as the answer after the prompt
(one forward of the prompt; the candidates then side by side after its KV cache, ``span_logprobs``). A question
names the field it asks for ("What is the capital of Kenya?"), so the score adds ``weights[0]`` times the share of
the question's content words found in the candidate's record key ("Kenya | Government | Capital"; in prose, its
sentence) and subtracts ``weights[1]`` times the share of the field name's words the question lacks ("Capital -
time difference"). With the weights chosen on the dev split (config.DEFAULT_READER) the question's words pick the
record line and the model picks the span within it: the 135M model's own scores alone choose worse than the
line's first value (bench/results/reader.json). A best score below ``min_score`` is a refusal: no span of the
passages answers.

Candidates (``candidate_spans``): in a record line ``key: value`` the value, its parts split on ``;`` and then
``,``, and each of those without a trailing parenthesis ("85,370 (2024 est.)" -> "85,370"); in prose, each run
of one to ``max_words`` words inside a clause that neither starts nor ends with a function word. Every candidate
is a verbatim slice of its passage, so the citation can highlight it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
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
    score: float  # the combined score (model mean log-probability + weights x question_match)
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


STEM = 6  # words compare by their first 6 letters: "independent" finds "Independence", "kilometers" "kilometres"


def content_stems(text: str, stem: int | None = STEM) -> set[str]:
    """The stems of ``text``'s words that are not function words (``stem=None``: the whole words)."""
    return {w.lower()[:stem] for w in re.findall(r"\w+", text) if w.lower() not in FUNCTION_WORDS}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Match:
    """How a candidate's context (a record key, or a prose span's sentence) matches the question."""

    key: float  # of the question's content words, the share in the context (country, section and field name)
    extra: float  # of the field name's content words, the share the question lacks ("Capital - time difference")


def question_match(question: str, context: str) -> Match:
    """How well ``context`` (a record key, or a prose span's sentence) answers to the words of ``question``."""
    asked, field = content_stems(question), content_stems(context.rsplit("|", 1)[-1])
    return Match(key=len(asked & content_stems(context)) / len(asked) if asked else 0.0,
                 extra=len(field - asked) / len(field) if field else 0.0)


def echoes(question: str, text: str) -> bool:
    """Whether every content word of ``text`` is in the question (it names what is asked, it cannot answer it).
    Whole words: "Panamanian" answers a question about Panama."""
    return content_stems(text, None) <= content_stems(question, None)


def span_logprobs(lm: Any, prompt: str, answers: Sequence[str], *, end: str, batch_size: int = 8,
                  chunk_tokens: int = 256) -> list[float]:
    """Mean log-probability per token of each answer followed by ``end``, after ``prompt``.

    The prompt is run once; answers then go ``chunk_tokens`` at a time side by side after its KV cache (``_packed``),
    so they cost their own tokens only (a model whose cache cannot be shared so, like LFM2's convolution state,
    reads the prompt again in every row, ``batch_size`` rows a forward).
    An answer whose tokens begin another's ("Great Britain" in "Great Britain claimed") rides in that one's row:
    the distribution after its last token gives its ``end``, when ``end`` is one token. The prompt is cut from the
    left to leave ``SPAN_ROOM`` positions; a longer answer scores -inf.
    """
    import torch

    from rag_bench.lm import autocast

    tok = lm.tokenizer
    end_ids = tok(end, add_special_tokens=False)["input_ids"]
    ids_of = [tok(a, add_special_tokens=False)["input_ids"] for a in answers]
    if len(end_ids) != 1:  # each answer its own row, its end included
        ids_of, end_ids = [ids + end_ids for ids in ids_of], []
    rows, where = _shared_rows([ids if 0 < len(ids) < SPAN_ROOM else [] for ids in ids_of])
    prompt_ids = tok(prompt)["input_ids"][-(lm.max_positions - SPAN_ROOM):]
    device = lm.device
    on_row: dict[int, list[tuple[int, int]]] = {}  # row -> (answer index, its tokens) of the answers riding on it
    for i, (row, length) in enumerate(where):
        if row is not None:
            on_row.setdefault(row, []).append((i, length))
    out = [float("-inf")] * len(ids_of)
    with torch.inference_mode(), autocast(device):
        first = lm.model(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True)
        cache = first.past_key_values
        # attention-only layers (not LFM2's convolution state, which a mask cannot confine to one row)
        packed = all(hasattr(layer, "batch_repeat_interleave") for layer in getattr(cache, "layers", [None]))
        for begin, logits in (_packed(lm, first, cache, prompt_ids, rows, chunk_tokens) if packed
                              else _padded(lm, prompt_ids, rows, batch_size)):
            for r, row_logits in enumerate(logits):
                row = rows[begin + r]
                logprobs = row_logits[:len(row) + 1].float().log_softmax(-1)  # [position, next token]
                steps = logprobs[torch.arange(len(row)), torch.tensor(row)].tolist()  # each token of the row
                ends = logprobs[:, end_ids[0]].tolist() if end_ids else None
                for i, length in on_row[begin + r]:
                    picked = steps[:length] + ([ends[length]] if ends else [])
                    out[i] = sum(picked) / len(picked)
    return out


def _packed(lm: Any, first: Any, cache: Any, prompt_ids: list[int], rows: list[list[int]],
            chunk_tokens: int) -> Iterator[tuple[int, Any]]:
    """(first row, each row's next-token logits [positions + 1, vocabulary]) per chunk of rows laid side by side
    in one sequence after the prompt's cache: each row sees the prompt and its own earlier tokens (a block-causal mask,
    its positions restarting after the prompt), so the prompt's keys are neither copied nor repeated."""
    import torch

    n_prompt, device = len(prompt_ids), lm.device
    begin = 0
    while begin < len(rows):
        stop, total = begin, 0
        while stop < len(rows) and (stop == begin or total + len(rows[stop]) <= chunk_tokens):
            total += len(rows[stop])
            stop += 1
        flat = [t for row in rows[begin:stop] for t in row]
        positions = [n_prompt + j for row in rows[begin:stop] for j in range(len(row))]
        mask = torch.zeros((total, n_prompt + total), dtype=torch.bool)
        mask[:, :n_prompt] = True
        at = 0
        for row in rows[begin:stop]:
            mask[at:at + len(row), n_prompt + at:n_prompt + at + len(row)] = torch.tril(
                torch.ones((len(row), len(row)), dtype=torch.bool))
            at += len(row)
        if lm.model.config._attn_implementation != "sdpa":  # eager attention adds the mask to its scores
            mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
        logits = lm.model(input_ids=torch.tensor([flat], device=device), attention_mask=mask[None, None].to(device),
                          position_ids=torch.tensor([positions], device=device), past_key_values=cache,
                          use_cache=True).logits[0]
        cache.crop(-total)  # the next chunk sees the prompt only
        starts = [sum(len(row) for row in rows[begin:r]) for r in range(begin, stop)]
        yield begin, [torch.cat([first.logits[0, -1:], logits[at:at + len(row)]])
                      for at, row in zip(starts, rows[begin:stop], strict=True)]
        begin = stop


def _padded(lm: Any, prompt_ids: list[int], rows: list[list[int]], batch_size: int) -> Iterator[tuple[int, Any]]:
    """The same logits for a model whose cache a mask cannot share (LFM2's convolution state): the prompt is read
    again in every row of a right-padded batch."""
    import torch

    n_prompt, device = len(prompt_ids), lm.device
    for begin in range(0, len(rows), batch_size):
        batch = rows[begin:begin + batch_size]
        width = max(len(r) for r in batch)
        ids = torch.full((len(batch), n_prompt + width), lm.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, row in enumerate(batch):
            ids[r, :n_prompt + len(row)] = torch.tensor(prompt_ids + row)
            mask[r, :n_prompt + len(row)] = 1
        yield begin, lm.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, n_prompt - 1:]


def _shared_rows(token_lists: list[list[int]]) -> tuple[list[list[int]], list[tuple[int | None, int]]]:
    """Rows to run and, per token list, (its row, its length): a list that begins a longer one shares its row;
    an empty list gets (None, 0)."""
    rows: list[list[int]] = []
    row_of_prefix: dict[tuple[int, ...], int] = {}
    for ids in sorted((ids for ids in token_lists if ids), key=len, reverse=True):
        if tuple(ids) not in row_of_prefix:
            rows.append(ids)
            for cut in range(1, len(ids) + 1):
                row_of_prefix.setdefault(tuple(ids[:cut]), len(rows) - 1)
    return rows, [(row_of_prefix[tuple(ids)], len(ids)) if ids else (None, 0) for ids in token_lists]


def choose_span(lm: Any, prompt: str, passages: Sequence[str], question: str, *, end: str,
                weights: tuple[float, float] = (0.0, 0.0), min_score: float | None = None,
                max_words: int = 4) -> ScoredSpan | None:
    """The best-scoring candidate span of ``passages`` as the answer to ``question`` after ``prompt``, or None
    (a refusal) when there is no candidate or the best scores below ``min_score`` (None: no floor).

    A candidate's score is the model's mean log-probability of it as the answer plus ``weights`` (key, extra) times
    its ``question_match``: key adds, extra subtracts. A candidate that only echoes the
    question's words is left out. Ties go to the earlier passage (the retriever's better rank)."""
    found = [(i, span) for i, passage in enumerate(passages) for span in candidate_spans(passage, max_words=max_words)
             if not echoes(question, span.text)]
    if not found:
        return None
    texts = list(dict.fromkeys(span.text for _, span in found))
    logprob = dict(zip(texts, span_logprobs(lm, prompt, texts, end=end), strict=True))
    w_key, w_extra = weights
    scored = []
    for i, span in found:
        match = question_match(question, span.context)
        lexical = w_key * match.key - w_extra * match.extra
        scored.append((logprob[span.text] + lexical, -i, i, span))
    score, _, index, span = max(scored, key=lambda row: row[:2])
    if score == float("-inf") or (min_score is not None and score < min_score):
        return None
    return ScoredSpan(passage=index, start=span.start, end=span.end, text=span.text, score=score,
                      logprob=logprob[span.text], candidates=len(texts))
