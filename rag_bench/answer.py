"""Closed-book, grounded and oracle answers: one prompt template, one generator, three ways in.

    rag-bench ask "Algeria | Government | Capital:" --mode both --model runs/r1/gen_0/model

    from rag_bench.answer import closed_book, grounded, oracle
    closed_book(lm, ["Algeria | Government | Capital:"])
    grounded(lm, retriever, ["Algeria | Government | Capital:"], k=3)          # free generation
    grounded(lm, retriever, questions, k=3, span_constrained=True)            # answer must be a context span
    grounded(lm, retriever, questions, k=3, scored=True)                      # the best-scoring passage span
    grounded(lm, retriever, questions, template="short")                      # a registered prompt template
    oracle(lm, questions, gold_passages)                                      # the gold chunk as the one passage

All are the same LCEL chain, ``context | prompt | generate``, and differ only in the context step: closed-book
gives no passages, grounded asks the retriever, oracle is handed the chunk each probe was made from (grounded
minus oracle is what retrieval loses). The chain is a LangChain ``Runnable``, so a user can compose it
(``grounded_chain(lm, retriever) | my_parser``) and ``.batch()`` reaches the model as one batched ``generate``
call rather than one call per question.

The template (``rag_bench.prompt``) is ``plain`` for models trained here; ``template="auto"`` picks
``rag_bench.config.DEFAULT_READER.template`` for an instruct model (one with a chat template) and ``plain``
otherwise. A span-constrained (extractive) answer that finds no span says ``NO_SPAN`` instead of inventing one;
an answer that runs into ``max_new_tokens`` ends on its last whole word and says so in ``hit_cap``. A scored
answer (``grounded_scored``, ``oracle_scored``: rag_bench.extract) is the passage span the model scores best,
chosen whole rather than decoded token by token; it says ``NO_SPAN`` when no span scores ``min_score``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableConfig

from rag_bench.config import DEFAULT_READER, DecodeConfig, ReaderConfig
from rag_bench.extract import SPAN_ROOM, choose_span
from rag_bench.lm import LM
from rag_bench.models.decoding import Generation, drop_partial_word
from rag_bench.prompt import DEFAULT_TEMPLATE, render_prompt, uses_chat_template

Mode = Literal["closed", "grounded", "grounded_span", "grounded_scored", "oracle", "oracle_span", "oracle_scored"]
MODES: tuple[str, ...] = ("closed", "grounded", "grounded_span", "grounded_scored", "oracle", "oracle_span",
                          "oracle_scored")
ORACLE_MODES = ("oracle", "oracle_span", "oracle_scored")  # the context is the probe's gold chunk, not a retrieval
EXTRACTIVE_SUFFIXES = ("_span", "_scored")  # modes whose answer is a span of the passages
NO_SPAN = "not found in the passages"  # an extractive answer for which no span of the passages was chosen
SOURCE_FIELDS = ("chunk_id", "score", "rank", "source", "page", "country", "section", "doc_id", "retriever")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Answer:
    """One answer with everything needed to check it."""

    question: str  # as asked
    mode: str  # closed | grounded | grounded_span | grounded_scored | oracle | oracle_span | oracle_scored
    text: str  # the answer, cut at the stop string (NO_SPAN: an extractive answer found no span)
    prompt: str  # the full prompt given to the model
    sources: list[dict[str, Any]]  # retrieved chunks: chunk_id, score, rank, source metadata and text
    prompt_tokens: int  # prompt tokens the model saw
    truncated_tokens: int  # prompt tokens dropped from the left to fit the model's positions
    template: str = DEFAULT_TEMPLATE  # the registered prompt template that wrote the prompt
    hit_cap: bool = False  # the answer ran into max_new_tokens; its last partial word was dropped
    span: dict[str, Any] | None = None  # a scored answer's passage (index into sources), start, end and score

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


def resolve_template(template: str, tokenizer: Any) -> str:
    """``auto``: the dev-chosen reader's template for an instruct model, ``plain`` for a model trained here."""
    if template != "auto":
        return template
    return DEFAULT_READER.template if uses_chat_template(tokenizer) else DEFAULT_TEMPLATE


def reader_mode(tokenizer: Any) -> str:
    """The grounded mode of the dev-chosen reader for an instruct model; ``grounded`` (free) for one trained here."""
    return DEFAULT_READER.grounded_mode if uses_chat_template(tokenizer) else "grounded"


def _prompter(lm: LM, template: str) -> BatchRunnable:
    """The prompt step: passages then the question, through the model's chat template when it has one."""
    def with_prompts(items: list[dict]) -> list[dict]:
        return [{**item, "prompt": render_prompt(item["question"], order_passages(item["docs"]),
                                                 tokenizer=lm.tokenizer, template=template),
                 "template": template} for item in items]

    return BatchRunnable(with_prompts, "prompt")


def _generator(lm: LM, decode: DecodeConfig, *, span_constrained: bool, streamer: Any = None) -> BatchRunnable:
    def generate(items: list[dict]) -> list[dict]:
        spans = [[d.page_content for d in item["docs"]] for item in items] if span_constrained else None
        outputs = lm.generate_detailed([item["prompt"] for item in items], decode, allowed_spans=spans,
                                       streamer=streamer)
        return [{**item, "generation": out} for item, out in zip(items, outputs, strict=True)]

    return BatchRunnable(generate, "generate")


def _span_scorer(lm: LM, reader: ReaderConfig, streamer: Any = None) -> BatchRunnable:
    """Each question's answer: the best-scoring span of its passages (rag_bench.extract), one prompt at a time."""
    end = lm.tokenizer.eos_token if uses_chat_template(lm.tokenizer) else "\n"  # where an answer ends

    def score(items: list[dict]) -> list[dict]:
        out = []
        for item in items:
            with getattr(lm, "lock", None) or contextlib.nullcontext():  # the chat's BatchedLM: its model's lock
                chosen = choose_span(lm, item["prompt"], [d.page_content for d in item["docs"]], item["question"],
                                     end=end, weights=reader.match_weights, min_score=reader.min_score,
                                     max_words=reader.span_words)
            tokens = len(lm.tokenizer(item["prompt"])["input_ids"])
            text = chosen.text if chosen else ""
            generation = Generation(text=text, prompt_tokens=tokens, new_tokens=0, hit_cap=False,
                                    truncated_tokens=max(0, tokens - (lm.max_positions - SPAN_ROOM)))
            span = None if chosen is None else {"passage": chosen.passage, "start": chosen.start, "end": chosen.end,
                                                "score": round(chosen.score, 4), "candidates": chosen.candidates}
            if streamer is not None:  # the chat waits on its streamer: the whole answer comes at once
                streamer.on_finalized_text(text or NO_SPAN, stream_end=True)
            out.append({**item, "generation": generation, "span": span})
        return out

    return BatchRunnable(score, "score_spans")


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
                 span_constrained: bool = False, streamer: Any = None, template: str = DEFAULT_TEMPLATE,
                 scored: bool = False, reader: ReaderConfig = DEFAULT_READER) -> Runnable:
    """The LCEL chain ``context | prompt | generate`` (``| score_spans`` when ``scored``); without a retriever it
    is closed-book.

    ``streamer`` (a transformers streamer, e.g. ``TextIteratorStreamer``) receives the new tokens of a
    single question as they are generated. ``template`` names a registered prompt template, or ``auto``.
    ``reader`` gives a scored answer its settings (field_weight, min_score, span_words).
    """
    if (span_constrained or scored) and retriever is None:
        raise ValueError("an extractive answer needs a retriever: the answer must be a span of its passages")
    context = BatchRunnable(_no_context, "no_context") if retriever is None else _retrieved_context(retriever, k)
    answer_step = _span_scorer(lm, reader, streamer) if scored else _generator(
        lm, decode or DecodeConfig(), span_constrained=span_constrained, streamer=streamer)
    return context | _prompter(lm, resolve_template(template, lm.tokenizer)) | answer_step


def grounded_chain(lm: LM, retriever: Any, *, k: int = 3, decode: DecodeConfig | None = None,
                   span_constrained: bool = False, template: str = DEFAULT_TEMPLATE, scored: bool = False) -> Runnable:
    return answer_chain(lm, retriever=retriever, k=k, decode=decode, span_constrained=span_constrained,
                        template=template, scored=scored)


def _answer_text(generation: Any, extractive: bool) -> str:
    text = generation.text if extractive else generation.text.strip()  # a scored span is already trimmed
    if generation.hit_cap:
        text = drop_partial_word(text)
    if extractive and not text.strip():
        return NO_SPAN
    return text


def _answers(outputs: list[dict], mode: str) -> list[Answer]:
    extractive = mode.endswith(EXTRACTIVE_SUFFIXES)
    return [Answer(question=o["question"], mode=mode, text=_answer_text(o["generation"], extractive),
                   prompt=o["prompt"], sources=[source_of(d) for d in o["docs"]],
                   prompt_tokens=o["generation"].prompt_tokens, truncated_tokens=o["generation"].truncated_tokens,
                   template=o["template"], hit_cap=o["generation"].hit_cap, span=o.get("span")) for o in outputs]


def source_of(doc: Document) -> dict[str, Any]:
    meta = doc.metadata
    return {**{key: meta[key] for key in SOURCE_FIELDS if key in meta}, "text": doc.page_content}


def closed_book(lm: LM, questions: Sequence[str], *, decode: DecodeConfig | None = None,
                streamer: Any = None, template: str = DEFAULT_TEMPLATE) -> list[Answer]:
    """Answer from the weights alone: the prompt is the question (through an instruct model's chat template)."""
    questions = _as_list(questions)
    return _answers(answer_chain(lm, decode=decode, streamer=streamer, template=template).batch(questions),
                    "closed")


def grounded(lm: LM, retriever: Any, questions: Sequence[str], *, k: int = 3, decode: DecodeConfig | None = None,
             span_constrained: bool = False, streamer: Any = None, template: str = DEFAULT_TEMPLATE,
             mode: str | None = None, scored: bool = False, reader: ReaderConfig = DEFAULT_READER) -> list[Answer]:
    """Answer with the top-k retrieved passages before the question; the sources come back too.

    ``scored``: the answer is the passage span the model scores best (``reader``'s settings), not generated."""
    questions = _as_list(questions)
    chain = answer_chain(lm, retriever=retriever, k=k, decode=decode, span_constrained=span_constrained,
                         streamer=streamer, template=template, scored=scored, reader=reader)
    mode = mode or ("grounded_scored" if scored else "grounded_span" if span_constrained else "grounded")
    return _answers(chain.batch(questions), mode)


class PassagesGiven:
    """A retriever that serves each question the passages it was given (the oracle's gold chunk)."""

    def __init__(self, questions: Sequence[str], passages: Sequence[Sequence[Document]]) -> None:
        self._by_question = {q: list(docs) for q, docs in zip(questions, passages, strict=True)}

    def batch_search(self, queries: list[str], *, k: int | None = None) -> list[list[Document]]:
        return [self._by_question[q][:k] if k else self._by_question[q] for q in queries]


def oracle(lm: LM, questions: Sequence[str], passages: Sequence[Sequence[Document] | Document], *,
           decode: DecodeConfig | None = None, span_constrained: bool = False,
           template: str = DEFAULT_TEMPLATE, scored: bool = False) -> list[Answer]:
    """Answer each question with its gold passage(s) as the context: reading measured apart from retrieval."""
    questions = _as_list(questions)
    given = [[p] if isinstance(p, Document) else list(p) for p in passages]
    return grounded(lm, PassagesGiven(questions, given), questions, k=max((len(g) for g in given), default=1),
                    decode=decode, span_constrained=span_constrained, template=template, scored=scored,
                    mode="oracle_scored" if scored else "oracle_span" if span_constrained else "oracle")


def answer(lm: LM, questions: Sequence[str], mode: str, *, retriever: Any = None, k: int = 3,
           decode: DecodeConfig | None = None, template: str = DEFAULT_TEMPLATE) -> list[Answer]:
    """Dispatch on a mode name (``MODES``: closed, grounded, their _span and _scored kinds, oracle ...).

    For the oracle modes ``retriever`` serves each question its gold passage (``PassagesGiven``).
    """
    if mode not in MODES:
        raise ValueError(f"unknown answer mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "closed":
        return closed_book(lm, questions, decode=decode, template=template)
    if retriever is None:
        raise ValueError(f"mode {mode!r} needs a retriever")
    return grounded(lm, retriever, questions, k=k, decode=decode, span_constrained=mode.endswith("_span"),
                    scored=mode.endswith("_scored"), template=template, mode=mode)


def answer_modes(lm: LM, questions: Sequence[str], modes: Sequence[str], *, retriever: Any = None, k: int = 3,
                 decode: DecodeConfig | None = None, template: str = DEFAULT_TEMPLATE,
                 per_mode: dict[str, tuple[Sequence[str], Any]] | None = None) -> dict[str, list[Answer]]:
    """Every mode's answers from one pass: all prompts of the free modes in one length-sorted ``generate``.

    The same answers as ``answer`` mode by mode in fp32 (each prompt is decoded alone in its batch's rows; under bf16
    autocast a greedy answer can change with its batch's other prompts, docs/scale.md), in fewer, fuller batches:
    a closed-book prompt no longer waits in a batch padded to a grounded one's length, and the batches of one mode
    do not end half empty. The extractive modes (a constraint per prompt, or scored spans) keep their own call; an
    oracle mode's retriever must serve the gold passages (``PassagesGiven``). ``per_mode`` gives a mode its own
    ``(questions, retriever)`` in place of the shared ones: evaluation's oracle modes join the pass that way, with
    the probes that have a gold chunk and those chunks.
    """
    decode = decode or DecodeConfig()
    template = resolve_template(template, lm.tokenizer)
    out: dict[str, list[Answer]] = {}
    prepared: list[tuple[str, list[dict]]] = []
    for mode in modes:
        mode_questions, mode_retriever = (per_mode or {}).get(mode, (questions, retriever))
        mode_questions = _as_list(mode_questions)
        if not mode_questions and mode in MODES:
            out[mode] = []
        elif mode.endswith(EXTRACTIVE_SUFFIXES) or mode not in MODES:
            out[mode] = answer(lm, mode_questions, mode, retriever=mode_retriever, k=k, decode=decode,
                               template=template)
        elif mode != "closed" and mode_retriever is None:
            raise ValueError(f"mode {mode!r} needs a retriever")
        else:
            context = BatchRunnable(_no_context, "no_context") if mode == "closed" \
                else _retrieved_context(mode_retriever, k)
            prepared.append((mode, (context | _prompter(lm, template)).batch(mode_questions)))
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
