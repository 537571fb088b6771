"""What LM.generate uses besides the model: the result record, span-constrained decoding, cutting at a stop string.

    lm.generate_detailed([prompt], DecodeConfig(), allowed_spans=[[passage]])   # -> [Generation(text=...)]

``SpanConstraint`` is the ``prefix_allowed_tokens_fn`` of transformers' ``generate`` that keeps a grounded answer
a token span of its retrieved passages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch


@dataclasses.dataclass(frozen=True, kw_only=True)
class Generation:
    """One generated answer and what happened to its prompt."""

    text: str  # the continuation, cut before the first stop string
    prompt_tokens: int  # prompt tokens fed to the model (after truncation)
    truncated_tokens: int  # tokens dropped from the left of the prompt to fit the model's positions
    new_tokens: int  # tokens generated (before cutting at the stop string)


class SpanConstraint:
    """``prefix_allowed_tokens_fn``: the answer so far must occur in a context, token for token.

    Allowed next tokens are those that continue some occurrence in the context of the tokens
    generated so far; once the answer is non-empty a stop token (newline, EOS) is allowed too.
    Matches are cached per (row, prefix) so each step extends the previous step's matches.
    """

    def __init__(self, contexts: list[list[list[int]]], prompt_len: int, stop_ids: frozenset[int], eos_id: int) -> None:
        self.contexts, self.prompt_len, self.stop_ids, self.eos = contexts, prompt_len, stop_ids, eos_id
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
        return sorted(allowed) or [self.eos]

    def _find(self, row: int, generated: tuple[int, ...]) -> list[tuple[int, int]]:
        key = (row, generated)
        if key not in self._matches:
            if not generated:
                found = [(p, j) for p, toks in enumerate(self.contexts[row]) for j in range(len(toks))]
            else:
                m, last = len(generated) - 1, generated[-1]
                found = [(p, j) for p, j in self._find(row, generated[:-1])
                         if j + m < len(self.contexts[row][p]) and self.contexts[row][p][j + m] == last]
            self._matches[key] = found
        return self._matches[key]


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """``text`` up to (not including) the earliest stop string."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]
