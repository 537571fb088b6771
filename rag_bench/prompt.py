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

An instruct model (a tokenizer with a chat template, e.g. ``--model smollm2-135m``) gets the same text as one
user turn through its own template, closed-book and grounded alike::

    render_prompt("What is the capital of Kenya?", passages, tokenizer=lm.tokenizer)
    # '<|im_start|>system\n...<|im_end|>\n<|im_start|>user\n{passages}\n\nWhat is ...?<|im_end|>\n'
    # '<|im_start|>assistant\n'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PASSAGE_SEPARATOR = "\n\n"  # between passages, and between the last passage and the question


def render_prompt(question: str, passages: Sequence[str] = (), *, tokenizer: Any = None) -> str:
    """Passages (stripped, empty ones dropped) then the question, joined by blank lines.

    With a ``tokenizer`` that has a chat template, that text is one user turn rendered through the template,
    ending where the assistant's answer begins; other tokenizers (models trained here) get the text as it is.
    """
    if isinstance(passages, str):
        raise TypeError("passages must be a sequence of strings, not one string")
    kept = [p.strip() for p in passages if p and p.strip()]
    text = PASSAGE_SEPARATOR.join([*kept, question])
    if not uses_chat_template(tokenizer):
        return text
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def uses_chat_template(tokenizer: Any) -> bool:
    """Whether prompts for this tokenizer's model go through its chat template (an instruct model's)."""
    return bool(getattr(tokenizer, "chat_template", None))

