"""The one prompt template, shared by retrieval-augmented training and by answering.

A prompt is the retrieved passages, each as it appears in the corpus, then the question; for
the Factbook the question is the record prefix the model was trained on and the answer is
what follows it up to the newline::

    >>> print(render_prompt("Algeria | Government | Capital:", ["Algeria | Government | Capital: Algiers"]))
    Algeria | Government | Capital: Algiers
    <BLANKLINE>
    Algeria | Government | Capital:

Without passages the prompt is the question alone, so a closed-book prompt is exactly the
text the model saw in training. Passages are separated by a blank line because documents are
too; the question repeats the passage's own prefix so that one induction step ("find the
earlier occurrence of this prefix, copy what follows") answers it.
"""

from __future__ import annotations

from collections.abc import Sequence

PASSAGE_SEPARATOR = "\n\n"  # between passages, and between the last passage and the question


def render_prompt(question: str, passages: Sequence[str] = ()) -> str:
    """Passages (stripped, empty ones dropped) then the question, joined by blank lines."""
    if isinstance(passages, str):
        raise TypeError("passages must be a sequence of strings, not one string")
    kept = [p.strip() for p in passages if p and p.strip()]
    return PASSAGE_SEPARATOR.join([*kept, question])

