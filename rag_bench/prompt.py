"""Prompt templates as data, registered by name: one template renders closed-book, grounded and oracle prompts.

The ``plain`` template is the one shared by retrieval-augmented training and by answering: the retrieved
passages, each as it appears in the corpus, then the question. For the Factbook the question is the record prefix
the model was trained on and the answer is what follows it up to the newline::

    >>> print(render_prompt("Algeria | Government | Capital:", ["Algeria | Government | Capital: Algiers"]))
    Algeria | Government | Capital: Algiers
    <BLANKLINE>
    Algeria | Government | Capital:

Without passages the prompt is the question alone, so a closed-book prompt is exactly the text the model saw in
training. Passages are separated by a blank line because documents are too; the question repeats the passage's
own prefix so that one induction step ("find the earlier occurrence of this prefix, copy what follows") answers it.

An instruct model (a tokenizer with a chat template, e.g. ``--model smollm2-135m``) gets its template's system
turn, an optional worked example, and the passages and question as one user turn through its own chat template::

    render_prompt("What is the capital of Kenya?", passages, tokenizer=lm.tokenizer, template="short")
    # '<|im_start|>system\nAnswer the question based on the given document. ...<|im_end|>\n'
    # '<|im_start|>user\nDoc 1: ...\n\nQuestion: What is the capital of Kenya?<|im_end|>\n<|im_start|>assistant\n'

Templates (``list_templates()``): ``plain`` (today's: passages then the question), ``short`` (FlashRAG's
short-answer instruction, passages labelled ``Doc 1:``, ``Doc 2:`` ...), ``oneshot`` (``short`` plus one worked
example whose facts are invented, so it leaks no probe's answer). A tokenizer without a chat template (the models
trained here) gets the plain text whatever the template: those models never saw an instruction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

PASSAGE_SEPARATOR = "\n\n"  # between passages, and between the last passage and the question
DEFAULT_TEMPLATE = "plain"  # what models trained here read; instruct models default to config.READER's template


@dataclasses.dataclass(frozen=True, kw_only=True)
class PromptTemplate:
    """How one prompt is written; every field is text with ``{placeholders}``, empty where unused."""

    name: str  # the registry key, recorded in results.json and per-sample rows
    doc: str  # one line for tables and the UI
    system: str = ""  # system turn when passages are given (grounded, oracle); empty: the model's default
    closed_system: str = ""  # system turn without passages (closed-book)
    passage: str = "{text}"  # one passage; {i} is its 1-based number in the prompt
    question: str = "{question}"  # the question after the passages
    example_passages: tuple[str, ...] = ()  # a worked example (one-shot) shown before the question ...
    example_question: str = ""  # ... its question ...
    example_answer: str = ""  # ... and the answer the model should imitate


_SHORT_SYSTEM = ("Answer the question based on the given document. Only give me the answer and do not output "
                 "any other words.")
_SHORT_CLOSED = ("Answer the question based on your own knowledge. Only give me the answer and do not output "
                 "any other words.")

TEMPLATES: dict[str, PromptTemplate] = {}


def register_template(template: PromptTemplate) -> PromptTemplate:
    """Add ``template`` under its name; a second, different template of the same name is an error."""
    if template.name in TEMPLATES and TEMPLATES[template.name] != template:
        raise ValueError(f"prompt template {template.name!r} is already registered")
    TEMPLATES[template.name] = template
    return template


register_template(PromptTemplate(name="plain", doc="the passages, then the question (what models trained here read)"))
register_template(PromptTemplate(
    name="short", doc="FlashRAG's short-answer instruction; passages labelled Doc 1, Doc 2, ...",
    system=_SHORT_SYSTEM, closed_system=_SHORT_CLOSED, passage="Doc {i}: {text}", question="Question: {question}"))
register_template(PromptTemplate(
    name="oneshot", doc="the short-answer instruction and one worked example with invented facts",
    system=_SHORT_SYSTEM, closed_system=_SHORT_CLOSED, passage="Doc {i}: {text}", question="Question: {question}",
    example_passages=("Veltria | Geography | Highest point: Mount Orsk 3,112 m",
                      "Veltria | Government | Capital: Amberlo; note - the royal court sits in Tessary"),
    example_question="What is the capital of Veltria?", example_answer="Amberlo"))


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; choose one of {', '.join(TEMPLATES)}") from None


def list_templates() -> list[str]:
    return list(TEMPLATES)


def user_text(template: PromptTemplate, question: str, passages: Sequence[str]) -> str:
    """The passages (numbered by the template) and the question, joined by blank lines."""
    shown = [template.passage.format(i=i, text=p) for i, p in enumerate(passages, start=1)]
    return PASSAGE_SEPARATOR.join([*shown, template.question.format(question=question)])


def render_prompt(question: str, passages: Sequence[str] = (), *, tokenizer: Any = None,
                  template: str | PromptTemplate = DEFAULT_TEMPLATE) -> str:
    """The prompt for ``question`` after ``passages`` (stripped, empty ones dropped) in ``template``.

    With a ``tokenizer`` that has a chat template, the text goes through it and ends where the assistant's answer
    begins; other tokenizers (models trained here) get the plain text: passages then the question.
    """
    if isinstance(passages, str):
        raise TypeError("passages must be a sequence of strings, not one string")
    tpl = get_template(template) if isinstance(template, str) else template
    kept = [p.strip() for p in passages if p and p.strip()]
    if not uses_chat_template(tokenizer):
        return PASSAGE_SEPARATOR.join([*kept, question])
    messages = []
    system = tpl.system if kept else tpl.closed_system
    if system:
        messages.append({"role": "system", "content": system})
    if tpl.example_question:
        example = list(tpl.example_passages) if kept else []
        messages += [{"role": "user", "content": user_text(tpl, tpl.example_question, example)},
                     {"role": "assistant", "content": tpl.example_answer}]
    messages.append({"role": "user", "content": user_text(tpl, question, kept)})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def uses_chat_template(tokenizer: Any) -> bool:
    """Whether prompts for this tokenizer's model go through its chat template (an instruct model's)."""
    return bool(getattr(tokenizer, "chat_template", None))
