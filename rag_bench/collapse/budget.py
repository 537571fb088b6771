"""Token budgets of pools: cutting a unit at a token, sampling units to an exact budget, the fresh control's samples.

    from rag_bench.collapse.budget import fresh_samples, sample_budget, token_cutter
    cut = token_cutter(tokenizer)
    part = sample_budget(units, 8192, random.Random("pool:0"), cut)      # exactly 8192 tokens
    pools = fresh_samples(units, samples=3, budget=8192, seed=0, cut=cut) # generations 1..3 of ``fresh``

A unit is a corpus record whose ``metadata.tokens`` counts its tokens under the run's tokenizer. A cut unit keeps
its id for the first part and takes ``<id>/rest`` for the rest, and the two counts add up to the unit's, so a
pool written to a budget holds exactly that many tokens in every seed (issue 20: the dose must not vary with the
seed).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

Unit = dict[str, Any]
Cut = Callable[[Unit, int], tuple[Unit, Unit]]  # a unit cut after n tokens: (the first n tokens, the rest)


def tokens_of(units: Sequence[Unit]) -> int:
    return sum(u["metadata"]["tokens"] for u in units)


def token_cutter(tokenizer: Any) -> Cut:
    """``cut(unit, n)``: the unit's first n tokens and the rest, as two units (ids ``<id>`` and ``<id>/rest``) whose
    token counts add up to the unit's."""
    def cut(unit: Unit, n: int) -> tuple[Unit, Unit]:
        ids = tokenizer(unit["contents"], add_special_tokens=False)["input_ids"]
        meta = unit["metadata"]
        head = {**unit, "contents": tokenizer.decode(ids[:n], skip_special_tokens=True),
                "metadata": {**meta, "tokens": n, "cut_from_tokens": meta["tokens"]}}
        tail = {**unit, "id": f"{unit['id']}/rest", "contents": tokenizer.decode(ids[n:], skip_special_tokens=True),
                "metadata": {**meta, "tokens": meta["tokens"] - n, "cut_from_tokens": meta["tokens"]}}
        return head, tail

    return cut


def take_budget(queue: deque[Unit], budget: int, cut: Cut | None = None) -> list[Unit]:
    """Units from the front of ``queue`` (consumed) until ``budget`` tokens; with ``cut`` the last one is cut to fit
    exactly and its rest goes back to the front of the queue, without it the last one may overshoot."""
    picked, total = [], 0
    while queue and total < budget:
        unit = queue.popleft()
        n = unit["metadata"]["tokens"]
        if cut is not None and total + n > budget:
            head, tail = cut(unit, budget - total)
            picked.append(head)
            queue.appendleft(tail)
            n = budget - total
        else:
            picked.append(unit)
        total += n
    return picked


def sample_budget(units: Sequence[Unit], budget: int, rng: random.Random, cut: Cut | None = None) -> list[Unit]:
    """Units in a seeded random order until ``budget`` tokens are reached (exactly with ``cut``, else the last one
    may overshoot)."""
    order = list(range(len(units)))
    rng.shuffle(order)
    return take_budget(deque(units[i] for i in order), budget, cut)


class FreshShortage(ValueError):
    """Too little held-aside human text for the fresh samples of every later generation."""


def fresh_samples(units: Sequence[Unit], *, samples: int, budget: int, seed: int,
                  cut: Cut | None = None) -> list[list[Unit]]:
    """The fresh control's pools: ``samples`` consecutive runs of ``budget`` tokens of one seeded shuffle of
    ``units``, so no text is in two of them (a unit cut at a budget opens the next sample with its rest).

    Element k-1 is generation k's pool. Raises FreshShortage, with the tokens needed and available, when the
    units hold fewer than ``samples * budget`` tokens.
    """
    needed, available = samples * budget, tokens_of(units)
    if available < needed:
        raise FreshShortage(f"fresh: {samples} later generations need {needed} tokens of fresh human text "
                            f"({samples} x {budget}), but only {available} are held aside")
    order = list(units)
    random.Random(f"fresh:{seed}").shuffle(order)
    queue = deque(order)
    return [take_budget(queue, budget, cut) for _ in range(samples)]
