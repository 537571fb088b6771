"""Span-constrained decoding and cutting at stop strings, on token ids (LM.generate uses both: tests/test_lm.py).

    .venv/bin/pytest tests/test_models_decoding.py -q
"""

from __future__ import annotations

import torch

from rag_bench.models.decoding import SpanConstraint, cut_at_stop

PROMPT = [1, 2]  # two prompt tokens before the answer
STOP = 0  # the stop token (EOS or a newline token)


def test_stop_sequences_cut_the_text_before_the_stop():
    assert cut_at_stop(" Carsk\nLand3", ("\n",)) == " Carsk"
    assert cut_at_stop(" Carsk | x", ("\n", " |")) == " Carsk"
    assert cut_at_stop("abc", ()) == "abc"



def test_a_span_constraint_allows_only_continuations_of_the_context():
    constraint = SpanConstraint([[[5, 6, 7, 6, 8]]], len(PROMPT), frozenset({STOP}), STOP)

    def allowed(*answer: int) -> list[int]:
        return constraint(0, torch.tensor([*PROMPT, *answer]))

    assert allowed() == [5, 6, 7, 8]  # any context token may start the answer, but not a stop
    assert allowed(6) == [STOP, 7, 8]  # 6 occurs twice: either continuation, or stop after a non-empty answer
    assert allowed(6, 8) == [STOP]  # the end of the context: only stopping
    assert allowed(9) == [STOP]  # no occurrence at all: stopping is all that remains
    assert allowed(6, STOP) == [STOP]  # a finished row
