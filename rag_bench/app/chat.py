"""The Chat tab: one question, the parametric (closed-book) and the grounded answer side by side.

    python ui.py    # then the Chat tab; or call the handlers directly:

    from rag_bench.app.chat import ask
    for left, right in ask(app, "Algeria | Government | Capital:", run="quick-factbook", generation="gen_0"):
        ...                                   # gradio messages: closed-book left, grounded + citations right

Each answer is a gradio 6 message dict; every retrieved passage follows the grounded answer as a collapsed
"thought" message titled with its source, page and score, whose text marks the answer where it occurs.
"""

from __future__ import annotations

import html
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag_bench.app.citations import (  # noqa: F401  citation, highlight, source_title: the tests import them here
    citation,
    citations,
    highlight,
    markdown_text,
    origin_notes,
    source_title,
    support_line,
)
from rag_bench.app.picker import NATURAL_EXAMPLES, PREFIX_EXAMPLES, corpus_warning, first_key, why_line
from rag_bench.app.state import (
    GEN_DIR,
    App,
    AppConfig,
    UserError,
    check_name,
    generations,
    read_json_or_none,
    resolve_inside,
)
from rag_bench.config import READER_K, DecodeConfig
from rag_bench.eval.support import find_support, support_at

EXAMPLES = NATURAL_EXAMPLES + PREFIX_EXAMPLES  # questions for the default model, prefixes for models trained here
MODE_TITLES = {"closed": "Parametric (closed-book)", "grounded": "Grounded (retrieval)"}

Messages = list[dict[str, Any]]


# ---------------------------------------------------------------------------------------
# Which model


def resolve_model(cfg: AppConfig, run: str | None, generation: str | None, folder: str = "") -> tuple[Path, str]:
    """(model folder, short label) from a run and generation, or from a folder under the data or upload root.

    Without a run and generation (or with a registry name as the folder) it is the pretrained model of
    ``rag_bench.models`` (SmolLM2-135M-Instruct), whose folder ``ensure_converted`` fills on first use.
    """
    from rag_bench.models import DEFAULT_PRETRAINED, REGISTRY, pretrained_dir

    if not (folder or "").strip() and not (run and generation):
        folder = cfg.default_model  # the model the server was started with (ui.py --model), else the registry's
    name = (folder or "").strip() or ("" if run and generation else DEFAULT_PRETRAINED)
    if name in REGISTRY:
        return pretrained_dir(cfg.data_path, name), name
    if folder and folder.strip():
        for root in (cfg.data_path, cfg.upload_path):
            try:
                path = resolve_inside(root, folder, "model folder")
            except UserError:
                continue
            if path.is_file() and path.suffix.lower() == ".gguf":  # your own GGUF: converted once into the data dir
                return converted_gguf(cfg, path), path.stem
            if not (path / "config.json").is_file():
                raise UserError(f"{folder}: not a model folder (no config.json) nor a .gguf file; name a folder "
                                "saved by LM.save or a Hugging Face model folder")
            return path, path.name if not GEN_DIR.match(path.parent.name) else path.parent.name
        raise UserError(f"{folder}: model folders must lie inside {cfg.data_path} or {cfg.upload_path}")
    gens = generations(cfg.runs_path / check_name(run, "run"))
    if not gens:
        raise UserError(f"Run {run!r} has no trained generation yet; generation 0 appears when its training ends.")
    if generation not in gens:
        raise UserError(f"Run {run!r} has no generation {generation!r}; pick one of {', '.join(gens)}.")
    return gens[generation], generation


def converted_gguf(cfg: AppConfig, path: Path) -> Path:
    """The folder a GGUF file inside the allowed roots converts into (once: rag_bench.models.resolve_model), with
    the same memory check and one-line errors as the CLI's ``--model path.gguf``."""
    from rag_bench.lm import ModelLoadError
    from rag_bench.models import resolve_model as resolve_spec

    try:
        return resolve_spec(path, cfg.data_path, progress=lambda line: None)
    except ModelLoadError as exc:
        raise UserError(str(exc)) from None


def trained_on(model_dir: Path) -> str:
    """What a generation was trained on, from its manifest and its run's config, said plainly."""
    gen_dir = model_dir.parent
    match = GEN_DIR.match(gen_dir.name)
    if match is None:
        return "unknown (a model folder outside a run: no manifest says what it was trained on)"
    number = int(match.group(1))
    run_dir = next((p for p in gen_dir.parents if (p / "config.json").is_file() or (p / "status.json").is_file()),
                   gen_dir.parent)
    manifest = read_json_or_none(gen_dir / "manifest.json") or {}
    run_cfg = read_json_or_none(run_dir / "config.json") or {}
    corpus = first_key(manifest, "corpus_name", "corpus") or first_key(run_cfg, "corpus_name", "corpus") or "factbook"
    corpus = corpus if isinstance(corpus, str) else "factbook"
    strategy = first_key(manifest, "strategy") or "/".join(gen_dir.relative_to(run_dir).parts[:-1]) or \
        first_key(run_cfg, "strategy")
    pool = manifest.get("pool") if isinstance(manifest.get("pool"), dict) else {}
    tokens = pool.get("tokens") or first_key(manifest, "train_tokens", "tokens")
    share = pool.get("human_share")
    if number == 0:
        text = f"the human training split of the `{corpus}` corpus"
    elif isinstance(share, int | float) and share > 0:  # mix, accumulate: human text stays in the pool
        writers = (f"generations 0 to {number - 1}" if number > 1 and str(strategy).startswith("accumulate")
                   else f"generation {number - 1}")  # accumulate keeps every generation's text, mix the last
        text = f"a pool of {share:.0%} human `{corpus}` text and {1 - share:.0%} text written by {writers}"
    else:
        text = f"text written by generation {number - 1}"
    if number and strategy:
        text += f" under the `{strategy}` strategy"
    if isinstance(tokens, int):
        text += f", {tokens / 1e6:.2f}M tokens"
    return text


def ensure_converted(app: App, model_dir: Path) -> Iterator[str]:
    """Convert a pretrained model's folder on first use, yielding a line to show before the wait; else nothing."""
    from rag_bench.lm import ModelLoadError
    from rag_bench.models import REGISTRY, is_converted, resolve_model

    name = model_dir.name
    if model_dir.parent != app.cfg.data_path / "models" / "pretrained" or name not in REGISTRY or \
            is_converted(model_dir):
        return
    yield (f"_Preparing {REGISTRY[name].description.split(' (')[0]} for its first answer: converting its packaged "
           "weights once (20-45 s on 2 cores)…_")
    try:
        resolve_model(name, app.cfg.data_path)
    except ModelLoadError as exc:
        raise UserError(str(exc)) from None


def describe_pretrained(model_dir: Path, corpus: str) -> str:
    """The notice for a pretrained model (no run yet): what it is, where it came from, that it was not trained here."""
    from rag_bench.models import REGISTRY

    spec = REGISTRY[model_dir.name]
    return (f"**Model:** `{spec.name}`, {spec.description}, licence {spec.licence}, from the pip package "
            f"`{spec.package}=={spec.version}`. **Trained on:** its makers' pretraining data, "
            f"nothing here (ask natural questions). "
            f"Closed-book answers come from its weights alone; grounded answers put the top-k passages of the "
            f"`{corpus}` index before the question, through its chat template.")


def describe_model(app: App, model_dir: Path, label: str, corpus: str) -> str:
    """The notice above the chat: which model answers and why, its size and training data, and whether it can
    serve the active corpus."""
    warning = corpus_warning(model_dir, corpus)
    return f"{describe_what(app, model_dir, label, corpus)}\n\n{why_line(model_dir)}" + \
        (f"\n\n{warning}" if warning else "")


def describe_what(app: App, model_dir: Path, label: str, corpus: str) -> str:
    from rag_bench.models import REGISTRY, pretrained_info

    if model_dir.name in REGISTRY and model_dir.parent == app.cfg.data_path / "models" / "pretrained":
        return describe_pretrained(model_dir, corpus)
    info = pretrained_info(model_dir) if (model_dir / "rag_bench_pretrained.json").is_file() else None
    if info:  # a GGUF given by path, converted into the data dir
        source = info.get("source") or info.get("gguf_file")
        return (f"**Model:** `{info.get('name')}`, converted from your GGUF file `{source}` "
                f"({int(info.get('parameters') or 0) / 1e6:.1f}M parameters). **Trained on:** its makers' data, "
                f"nothing here. Grounded answers put the top-k passages of the `{corpus}` index before the question"
                + (", through its chat template." if info.get("chat") else "."))
    lm, _ = app.lm(model_dir)
    arch = lm.config.arch if lm.config else type(lm.model).__name__
    size = f"`{lm.config.name}` {arch}" if lm.config else arch
    match = GEN_DIR.match(model_dir.parent.name)
    gen = f"generation {match.group(1)}" if match else "a model folder"
    return (f"**Model:** {gen} (`{label}`), {size} with {lm.num_parameters / 1e6:.2f}M parameters and "
            f"{lm.max_positions} positions. **Trained on:** {trained_on(model_dir)}. "
            f"Closed-book answers come from its weights alone; grounded answers put the top-k passages of "
            f"the `{corpus}` index before the question.")


# ---------------------------------------------------------------------------------------
# Answers as messages


def check_question(cfg: AppConfig, question: str) -> str:
    question = (question or "").strip()
    if not question:
        raise UserError("Type a question first, e.g. 'What is the capital of Tuvalu?' (or, for a model trained "
                        "here, a record prefix such as 'Algeria | Government | Capital:').")
    if len(question) > cfg.max_question_chars:
        raise UserError(f"The question has {len(question)} characters; the limit is {cfg.max_question_chars}.")
    return question


def decode_config(temperature: float, max_new_tokens: int) -> DecodeConfig:
    """Greedy at temperature 0, else sampling with a fresh seed (the same question may then differ)."""
    if not 1 <= int(max_new_tokens) <= 1024:
        raise UserError(f"max new tokens must be between 1 and 1024, got {max_new_tokens}")
    if float(temperature) <= 0:
        return DecodeConfig(max_new_tokens=int(max_new_tokens))
    return DecodeConfig(max_new_tokens=int(max_new_tokens), do_sample=True, temperature=float(temperature),
                        seed=random.randrange(1 << 31))


def answer_message(text: str, footer: str, notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The answer in bold, then ``notes`` (support, a model that cannot serve the corpus), then the footer."""
    body = f"**{markdown_text(text)}**" if text.strip() else "_(no answer: the model stopped at once)_"
    lines = "".join(f"\n\n{note}" for note in notes if note)
    return {"role": "assistant", "content": f"{body}{lines}\n\n<sub>{html.escape(footer)}</sub>"}


def check_room(lm: Any, decode: DecodeConfig) -> None:
    if decode.max_new_tokens >= lm.max_positions:
        raise UserError(f"max new tokens ({decode.max_new_tokens}) must be below the model's "
                        f"{lm.max_positions} positions")


def answer_messages(app: App, question: str, model_dir: Path, label: str, mode: str, *, corpus: str, k: int,
                    retrieval: str, decode: DecodeConfig) -> Iterator[Messages]:
    """One answer as gradio messages, streamed: the text so far as tokens arrive, then the answer and citations."""
    from transformers import TextIteratorStreamer

    from rag_bench.answer import closed_book, grounded, reader_mode
    from rag_bench.app.batching import batched

    lm, lock = app.lm(model_dir)
    check_room(lm, decode)
    started = time.perf_counter()
    retriever = None
    if mode != "closed":
        try:
            retriever = app.retriever(corpus, retrieval)
        except UserError as exc:
            yield [{"role": "assistant", "content": f"⚠️ No grounded answer: {exc}"}]
            return
    streamer = TextIteratorStreamer(lm.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    outcome: dict[str, Any] = {}

    def generate() -> None:  # in a thread, so this generator can yield the streamer's text meanwhile
        try:
            # questions asked at once share a batch; the model's lock is taken there (rag_bench.app.batching).
            # The reader is the project's one default (rag_bench.config.DEFAULT_READER, chosen on the dev split):
            # "auto" gives an instruct model its template and a model trained here the record-prefix prompt.
            shared = batched(lm, lock)
            reader = {"decode": decode, "streamer": streamer, "template": "auto"}
            mode = reader_mode(lm.tokenizer)  # a model trained here answers free, as it was trained
            outcome["answer"] = (closed_book(shared, [question], **reader) if retriever is None
                                 else grounded(shared, retriever, [question], k=int(k), **reader, mode=mode,
                                               span_constrained=mode.endswith("_span"),
                                               scored=mode.endswith("_scored")))[0]
        except Exception as exc:  # re-raised below, in the handler's thread
            outcome["error"] = exc
            streamer.end()

    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        text += piece
        yield [answer_message(text.split("\n")[0], f"{label} · {mode} · answering…")]
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["answer"]
    warning = corpus_warning(model_dir, corpus, question)
    if retriever is None:
        yield [answer_message(result.text, f"{label} · closed-book · {time.perf_counter() - started:.1f} s",
                              (warning,))]
        return
    footer = (f"{label} · grounded on {corpus} ({retrieval}, k={int(k)}) · {result.prompt_tokens} prompt tokens"
              + (f", {result.truncated_tokens} cut" if result.truncated_tokens else "")
              + f" · {time.perf_counter() - started:.1f} s")
    texts = [str(s.get("text", "")) for s in result.sources]  # a scored answer says where it was cut from
    support = support_at(result.span, texts) or find_support(result.text, texts, question=question)
    notes = (support_line(support, result.sources) if result.sources else "", warning)
    passages = citations(result.sources, support, origin_notes(retriever, result.sources))
    yield [answer_message(result.text, footer, notes), *passages]


def check_ask(app: App, question: str, run: str | None = None, generation: str | None = None, folder: str = "",
              temperature: float = 0.0, max_new_tokens: int = 32, compare: bool = False,
              generation_b: str | None = None, compare_mode: str = "closed"
              ) -> tuple[str, DecodeConfig, list[tuple[Path, str, str]]]:
    """What ``ask`` checks before answering (cheap: nothing is loaded): the question, the decoding settings and
    the models; returns (question, decoding, [(model folder, label, mode) for the left and right panel])."""
    question = check_question(app.cfg, question)
    decode = decode_config(temperature, max_new_tokens)
    if compare:  # two generations of the picked run
        model_a, label_a = resolve_model(app.cfg, run, generation)
        model_b, label_b = resolve_model(app.cfg, run, generation_b)
        return question, decode, [(model_a, label_a, compare_mode), (model_b, label_b, compare_mode)]
    model_a, label_a = resolve_model(app.cfg, run, generation, folder)  # the page always passes its picked model
    return question, decode, [(model_a, label_a, "closed"), (model_a, label_a, "grounded")]


def ask(app: App, question: str, run: str | None = None, generation: str | None = None, folder: str = "",
        corpus: str = "factbook", k: int = READER_K, retrieval: str = "bm25", temperature: float = 0.0,
        max_new_tokens: int = 32, compare: bool = False, generation_b: str | None = None,
        compare_mode: str = "closed", left: Messages | None = None,
        right: Messages | None = None) -> Iterator[tuple[Messages, Messages]]:
    """Yield (left, right) chat histories: the question, then each answer token by token, then its sources.

    Normally left is closed-book and right grounded, of one model; with ``compare`` both sides answer in
    ``compare_mode``, left from ``generation`` and right from ``generation_b``.
    """
    question, decode, sides = check_ask(app, question, run, generation, folder, temperature, max_new_tokens,
                                        compare, generation_b, compare_mode)
    histories = [list(left or []), list(right or [])]
    for history in histories:
        history += [{"role": "user", "content": markdown_text(question)},
                    {"role": "assistant", "content": "_answering…_"}]
    yield list(histories[0]), list(histories[1])  # copies: each step is a snapshot
    try:
        for note in ensure_converted(app, sides[0][0]):  # the pretrained model's first use: say why it waits
            for history in histories:
                history[-1] = {"role": "assistant", "content": note}
            yield list(histories[0]), list(histories[1])
        for model_dir, _, _ in sides:  # loads the models (seconds, the first time)
            check_room(app.lm(model_dir)[0], decode)
    except Exception as exc:  # said in the panels too, then as the toast
        for history in histories:
            history[-1] = {"role": "assistant", "content": f"⚠️ {markdown_text(str(exc))}"}
        yield list(histories[0]), list(histories[1])
        raise
    for history, (model_dir, label, mode) in zip(histories, sides, strict=True):
        start = len(history) - 1
        for messages in answer_messages(app, question, model_dir, label, mode, corpus=corpus, k=k,
                                        retrieval=retrieval, decode=decode):
            history[start:] = messages
            yield list(histories[0]), list(histories[1])
