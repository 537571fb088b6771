"""What LM.generate uses besides the model: the result record, span-constrained decoding, cutting at a stop string.

    lm.generate_detailed([prompt], DecodeConfig(), allowed_spans=[[passage]])   # -> [Generation(text=...)]

``SpanConstraint`` is the ``prefix_allowed_tokens_fn`` of transformers' ``generate`` that keeps a grounded answer
a token span of its retrieved passages.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch


@dataclasses.dataclass(frozen=True, kw_only=True)
class Generation:
    """One generated answer and what happened to its prompt."""

    text: str  # the continuation, cut before the first stop string
    prompt_tokens: int  # prompt tokens fed to the model (after truncation)
    truncated_tokens: int  # tokens dropped from the left of the prompt to fit the model's positions
    new_tokens: int  # tokens generated (before cutting at the stop string)
    hit_cap: bool = False  # generation ran into max_new_tokens before a stop string or EOS ended it


class SpanConstraint:
    """``prefix_allowed_tokens_fn``: the answer so far must occur in a context, token for token.

    Allowed next tokens are those that continue some occurrence in the context of the tokens
    generated so far; once the answer is non-empty a stop token (newline, EOS) is allowed too.
    Matches are cached per (row, prefix) so each step extends the previous step's matches.

    ``anchored[row]`` are further contexts an answer may only start at their first token: an instruct model
    answers at the start of a line, where a word has no leading space, so the suffixes of a passage that begin at
    a word, tokenized on their own, let it copy ``Funafuti`` where the passage's tokens hold `` Funafuti``.
    ``allow_empty`` lets EOS come first: the empty answer then says no span answers the question.
    """

    def __init__(self, contexts: list[list[list[int]]], prompt_len: int, stop_ids: frozenset[int], eos_id: int,
                 *, anchored: list[list[list[int]]] | None = None, allow_empty: bool = False) -> None:
        self.prompt_len, self.stop_ids, self.eos, self.allow_empty = prompt_len, stop_ids, eos_id, allow_empty
        anchored = anchored or [[] for _ in contexts]
        self.contexts = [[*free, *fixed] for free, fixed in zip(contexts, anchored, strict=True)]
        self.first_anchored = [len(free) for free in contexts]
        self._matches: dict[tuple[int, tuple[int, ...]], list[tuple[int, int]]] = {}

    def __call__(self, batch_id: int, input_ids: torch.Tensor) -> list[int]:
        generated = tuple(input_ids[self.prompt_len:].tolist())
        if generated and generated[-1] in self.stop_ids:
            return [self.eos]  # finished rows are padded by generate; anything allowed is fine
        matches = self._find(batch_id, generated)
        ctx = self.contexts[batch_id]
        allowed = {ctx[p][j + len(generated)] for p, j in matches if j + len(generated) < len(ctx[p])}
        if generated:
            allowed |= self.stop_ids
        else:
            allowed -= self.stop_ids
            if self.allow_empty:
                allowed.add(self.eos)
        return sorted(allowed) or [self.eos]

    def _find(self, row: int, generated: tuple[int, ...]) -> list[tuple[int, int]]:
        key = (row, generated)
        if key not in self._matches:
            if not generated:
                first_anchored = self.first_anchored[row]
                found = [(p, j) for p, toks in enumerate(self.contexts[row])
                         for j in (range(len(toks)) if p < first_anchored else range(min(1, len(toks))))]
            else:
                m, last = len(generated) - 1, generated[-1]
                found = [(p, j) for p, j in self._find(row, generated[:-1])
                         if j + m < len(self.contexts[row][p]) and self.contexts[row][p][j + m] == last]
            self._matches[key] = found
        return self._matches[key]


def span_constraint(tokenizer: Any, spans: Sequence[Sequence[str]], prompt_len: int,
                    stop_ids: frozenset[int]) -> SpanConstraint:
    """The constraint of a batch whose row i must answer with a span of ``spans[i]`` (its passages).

    An instruct model (a tokenizer with a chat template) answers at the start of a line: it may also copy from the
    start of any word of a passage (``anchored``), and may answer nothing (then no span answered).
    """
    chat = bool(getattr(tokenizer, "chat_template", None))
    contexts = [[tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts] for texts in spans]
    anchored = [word_suffix_ids(tokenizer, texts) for texts in spans] if chat else None
    return SpanConstraint(contexts, prompt_len, stop_ids, tokenizer.eos_token_id, anchored=anchored,
                          allow_empty=chat)


def word_suffix_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Each text's suffixes that start at a word or punctuation mark, tokenized on their own."""
    suffixes = [t[start:] for t in texts for start in word_starts(t)]
    return tokenizer(suffixes, add_special_tokens=False)["input_ids"] if suffixes else []


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """``text`` up to (not including) the earliest stop string."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def has_stop(text: str, stop: Iterable[str]) -> bool:
    return any(s in text for s in stop)


_WORD_START = re.compile(r"\w+|[^\w\s]")


def word_starts(text: str) -> list[int]:
    """Character offsets where a word or a punctuation mark begins: where an extractive answer may start."""
    return [m.start() for m in _WORD_START.finditer(text)]


def drop_partial_word(text: str) -> str:
    """``text`` without its last word when a token cap cut it: a cap ends an answer on a whole word."""
    head, _, _ = text.rstrip().rpartition(" ")
    return head.rstrip() if head.strip() else text
