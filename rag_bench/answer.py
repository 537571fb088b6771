"""Closed-book and grounded answers: one prompt template, one generator, two ways in.

    rag-bench ask "Algeria | Government | Capital:" --mode both --model runs/r1/gen_0/model

    from rag_bench.answer import closed_book, grounded
    closed_book(lm, ["Algeria | Government | Capital:"])
    grounded(lm, retriever, ["Algeria | Government | Capital:"], k=3)          # free generation
    grounded(lm, retriever, questions, k=3, span_constrained=True)            # answer must be a context span

Both are the same LCEL chain, ``context | prompt | generate``, and differ only in the context
step: closed-book gives no passages, grounded asks the retriever. The chain is a LangChain
``Runnable``, so a user can compose it (``grounded_chain(lm, retriever) | my_parser``) and
``.batch()`` reaches the model as one batched ``generate`` call rather than one call per question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableConfig

from rag_bench.config import DecodeConfig
from rag_bench.lm import LM
from rag_bench.prompt import render_prompt

Mode = Literal["closed", "grounded", "grounded_span"]
MODES: tuple[str, ...] = ("closed", "grounded", "grounded_span")
SOURCE_FIELDS = ("chunk_id", "score", "rank", "source", "page", "country", "section", "doc_id", "retriever")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Answer:
    """One answer with everything needed to check it."""

    question: str  # as asked
    mode: str  # closed | grounded | grounded_span
    text: str  # the answer, cut at the stop string
    prompt: str  # the full prompt given to the model
    sources: list[dict[str, Any]]  # retrieved chunks: chunk_id, score, rank, source metadata and text
    prompt_tokens: int  # prompt tokens the model saw
    truncated_tokens: int  # prompt tokens dropped from the left to fit the model's positions

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class BatchRunnable(Runnable):
    """A Runnable whose ``batch`` calls one function on the whole list (a model wants whole batches)."""

    def __init__(self, fn: Callable[[list[Any]], list[Any]], name: str) -> None:
        self.fn = fn
        self.name = name

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.fn([input])[0]

    def batch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        return self.fn(list(inputs)) if inputs else []


def order_passages(docs: Sequence[Document]) -> list[str]:
    """Best passage last, nearest the question: left truncation then drops the weakest first."""
    return [d.page_content for d in sorted(docs, key=lambda d: d.metadata.get("rank", 0), reverse=True)]


def _prompter(lm: LM) -> BatchRunnable:
    """The prompt step: passages then the question, through the model's chat template when it has one."""
    def with_prompts(items: list[dict]) -> list[dict]:
        return [{**item, "prompt": render_prompt(item["question"], order_passages(item["docs"]),
                                                 tokenizer=lm.tokenizer)} for item in items]

    return BatchRunnable(with_prompts, "prompt")


def _generator(lm: LM, decode: DecodeConfig, *, span_constrained: bool, streamer: Any = None) -> BatchRunnable:
    def generate(items: list[dict]) -> list[dict]:
        spans = [[d.page_content for d in item["docs"]] for item in items] if span_constrained else None
        outputs = lm.generate_detailed([item["prompt"] for item in items], decode, allowed_spans=spans,
                                       streamer=streamer)
        return [{**item, "generation": out} for item, out in zip(items, outputs, strict=True)]

    return BatchRunnable(generate, "generate")


def _no_context(questions: list[str]) -> list[dict]:
    return [{"question": q, "docs": []} for q in questions]


def _retrieved_context(retriever: Any, k: int) -> BatchRunnable:
    def retrieve(questions: list[str]) -> list[dict]:
        if hasattr(retriever, "batch_search"):
            found = retriever.batch_search(questions, k=k)
        else:  # any LangChain retriever
            found = [docs[:k] for docs in retriever.batch(questions)]
        return [{"question": q, "docs": docs} for q, docs in zip(questions, found, strict=True)]

    return BatchRunnable(retrieve, "retrieve")


def answer_chain(lm: LM, *, retriever: Any = None, k: int = 3, decode: DecodeConfig | None = None,
                 span_constrained: bool = False, streamer: Any = None) -> Runnable:
    """The LCEL chain ``context | prompt | generate``; without a retriever it is closed-book.

    ``streamer`` (a transformers streamer, e.g. ``TextIteratorStreamer``) receives the new tokens of a
    single question as they are generated.
    """
    if span_constrained and retriever is None:
        raise ValueError("span-constrained decoding needs a retriever: the answer must be a span of its passages")
    context = BatchRunnable(_no_context, "no_context") if retriever is None else _retrieved_context(retriever, k)
    return context | _prompter(lm) | _generator(
        lm, decode or DecodeConfig(), span_constrained=span_constrained, streamer=streamer)


def grounded_chain(lm: LM, retriever: Any, *, k: int = 3, decode: DecodeConfig | None = None,
                   span_constrained: bool = False) -> Runnable:
    return answer_chain(lm, retriever=retriever, k=k, decode=decode, span_constrained=span_constrained)


def _answers(outputs: list[dict], mode: str) -> list[Answer]:
    return [Answer(question=o["question"], mode=mode, text=o["generation"].text.strip(), prompt=o["prompt"],
                   sources=[source_of(d) for d in o["docs"]], prompt_tokens=o["generation"].prompt_tokens,
                   truncated_tokens=o["generation"].truncated_tokens) for o in outputs]


def source_of(doc: Document) -> dict[str, Any]:
    meta = doc.metadata
    return {**{key: meta[key] for key in SOURCE_FIELDS if key in meta}, "text": doc.page_content}


def closed_book(lm: LM, questions: Sequence[str], *, decode: DecodeConfig | None = None,
                streamer: Any = None) -> list[Answer]:
    """Answer from the weights alone: the prompt is the question (through an instruct model's chat template)."""
    questions = _as_list(questions)
    return _answers(answer_chain(lm, decode=decode, streamer=streamer).batch(questions), "closed")


def grounded(lm: LM, retriever: Any, questions: Sequence[str], *, k: int = 3, decode: DecodeConfig | None = None,
             span_constrained: bool = False, streamer: Any = None) -> list[Answer]:
    """Answer with the top-k retrieved passages before the question; the sources come back too."""
    questions = _as_list(questions)
    chain = answer_chain(lm, retriever=retriever, k=k, decode=decode, span_constrained=span_constrained,
                         streamer=streamer)
    return _answers(chain.batch(questions), "grounded_span" if span_constrained else "grounded")


def answer(lm: LM, questions: Sequence[str], mode: str, *, retriever: Any = None, k: int = 3,
           decode: DecodeConfig | None = None) -> list[Answer]:
    """Dispatch on a mode name (closed | grounded | grounded_span)."""
    if mode not in MODES:
        raise ValueError(f"unknown answer mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "closed":
        return closed_book(lm, questions, decode=decode)
    if retriever is None:
        raise ValueError(f"mode {mode!r} needs a retriever")
    return grounded(lm, retriever, questions, k=k, decode=decode, span_constrained=mode == "grounded_span")


def answer_modes(lm: LM, questions: Sequence[str], modes: Sequence[str], *, retriever: Any = None, k: int = 3,
                 decode: DecodeConfig | None = None) -> dict[str, list[Answer]]:
    """Every mode's answers from one pass: all prompts of the free modes in one length-sorted ``generate``.

    The same answers as ``answer`` mode by mode (each prompt is decoded alone in its batch's rows), in fewer,
    fuller batches: a closed-book prompt no longer waits in a batch padded to a grounded one's length, and the
    batches of one mode do not end half empty. ``grounded_span`` (a constraint per prompt) keeps its own call.
    """
    questions = _as_list(questions)
    decode = decode or DecodeConfig()
    out: dict[str, list[Answer]] = {}
    prepared: list[tuple[str, list[dict]]] = []
    for mode in modes:
        if mode == "grounded_span" or mode not in MODES:
            out[mode] = answer(lm, questions, mode, retriever=retriever, k=k, decode=decode)
            continue
        if mode != "closed" and retriever is None:
            raise ValueError(f"mode {mode!r} needs a retriever")
        context = BatchRunnable(_no_context, "no_context") if mode == "closed" else _retrieved_context(retriever, k)
        prepared.append((mode, (context | _prompter(lm)).batch(questions)))
    items = [item for _, mode_items in prepared for item in mode_items]
    generations = lm.generate_detailed([item["prompt"] for item in items], decode) if items else []
    start = 0
    for mode, mode_items in prepared:
        done = [{**item, "generation": g} for item, g in zip(mode_items, generations[start:], strict=False)]
        out[mode] = _answers(done, mode)
        start += len(mode_items)
    return {mode: out[mode] for mode in modes}


def _as_list(questions: Sequence[str]) -> list[str]:
    if isinstance(questions, str):
        return [questions]
    return list(questions)
