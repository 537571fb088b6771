"""Span-constrained decoding and cutting at stop strings, on token ids (LM.generate uses both: tests/test_lm.py).

    .venv/bin/pytest tests/test_models_decoding.py -q
"""

from __future__ import annotations

import torch

from rag_bench.models.decoding import SpanConstraint, cut_at_stop, drop_partial_word, word_starts

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


def test_anchored_contexts_may_only_start_at_their_first_token():
    # free context [5, 6, 7]; anchored word suffix [9, 7] (a word tokenized without its leading space)
    constraint = SpanConstraint([[[5, 6, 7]]], len(PROMPT), frozenset({STOP}), STOP, anchored=[[[9, 7], [7]]])

    def allowed(*answer: int) -> list[int]:
        return constraint(0, torch.tensor([*PROMPT, *answer]))

    assert allowed() == [5, 6, 7, 9]  # 9 starts a word suffix; it is not a free context token
    assert allowed(9) == [STOP, 7]
    assert allowed(9, 7) == [STOP]


def test_allow_empty_lets_eos_come_first_so_no_span_can_be_said():
    constraint = SpanConstraint([[[5, 6]]], len(PROMPT), frozenset({STOP, 4}), STOP, allow_empty=True)
    assert constraint(0, torch.tensor(PROMPT)) == [STOP, 5, 6]  # EOS, never the newline token 4
    empty = SpanConstraint([[]], len(PROMPT), frozenset({STOP}), STOP, allow_empty=True)
    assert empty(0, torch.tensor(PROMPT)) == [STOP]


def test_word_starts_and_dropping_a_partial_word():
    text = "Capital: Funafuti (atoll)"
    assert [text[i:] for i in word_starts(text)][:4] == [text, ": Funafuti (atoll)", "Funafuti (atoll)", "(atoll)"]
    assert drop_partial_word("The capital of Tuvalu is Funa") == "The capital of Tuvalu is"
    assert drop_partial_word("Funafu") == "Funafu"  # one word: nothing whole to fall back to
