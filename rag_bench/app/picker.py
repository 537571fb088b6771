"""Which model the Chat tab asks, and what the page says about that choice.

    from rag_bench.app.picker import model_choices, corpus_warning, hints
    model_choices(cfg)      # [("smollm2-135m · pretrained, the default", "smollm2-135m"), ...,
                            #  ("r · gen_0 · trained here", "runs/r/gen_0/model")]
    corpus_warning(model_dir, "acme", "What is the meal allowance?")   # why a model trained here cannot answer, or ""
    hints(model_dir)        # (placeholder, examples, examples label) that fit the model

The default is always the pretrained instruct model (rag_bench.models.DEFAULT_PRETRAINED): it reads the passages of
any corpus and answers natural questions. A generation trained here answers only when picked, for comparison: it
was trained on one corpus's record lines (the Factbook's ``Country | Section | Field: value``) and can continue
such a line, not answer a question about another corpus.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rag_bench.app.state import GEN_DIR, AppConfig, generations, list_runs, read_json_or_none

NATURAL_EXAMPLES = ["What is the capital of Tuvalu?", "What is the population of Liechtenstein?",
                    "What is the internet country code of France?"]
PREFIX_EXAMPLES = ["Algeria | Government | Capital:", "France | Communications | Internet country code:",
                   "Japan | People and Society | Population - total:"]
_RECORD_PREFIX = re.compile(r"^[^|]+\|[^|]+\|[^|]+:\s*$")  # "Country | Section | Field:"


def model_choices(cfg: AppConfig) -> list[tuple[str, str]]:
    """(label, value) for the model picker: the registry, GGUF files converted here, then every run's generations.

    A value is what rag_bench.app.chat.resolve_model takes as ``folder``: a registry name or a folder inside the
    data dir.
    """
    from rag_bench.models import DEFAULT_PRETRAINED, REGISTRY

    choices = [(f"{name} · pretrained{', the default' if name == DEFAULT_PRETRAINED else ''}", name)
               for name in sorted(REGISTRY, key=lambda n: n != DEFAULT_PRETRAINED)]
    converted = cfg.data_path / "models" / "converted"
    for folder in sorted(converted.iterdir()) if converted.is_dir() else []:
        if (folder / "config.json").is_file() and not folder.name.startswith("."):
            choices.append((f"{folder.name} · your GGUF, converted", f"models/converted/{folder.name}"))
    for run in list_runs(cfg.runs_path):
        for label, model_dir in generations(cfg.runs_path / run).items():
            choices.append((f"{run} · {label} · trained here", model_dir.relative_to(cfg.data_path).as_posix()))
    return choices


def first_key(mapping: Any, *keys: str) -> Any:
    """The first of ``keys`` found anywhere in a nested dict (manifests and configs differ in depth)."""
    if not isinstance(mapping, dict):
        return None
    for key in keys:
        if mapping.get(key) not in (None, "", {}, []):
            return mapping[key]
    for value in mapping.values():
        found = first_key(value, *keys)
        if found is not None:
            return found
    return None


def trained_corpus(model_dir: Path) -> str | None:
    """The corpus a generation trained here learned from (its manifest or run config), None for other models."""
    gen_dir = model_dir.parent
    if GEN_DIR.match(gen_dir.name) is None:
        return None
    run_dir = next((p for p in gen_dir.parents if (p / "config.json").is_file()), gen_dir.parent)
    for source in (read_json_or_none(gen_dir / "manifest.json"), read_json_or_none(run_dir / "config.json")):
        corpus = first_key(source or {}, "corpus_name", "corpus")
        if isinstance(corpus, str):
            return corpus
    return "factbook"


def is_trained_here(model_dir: Path) -> bool:
    return GEN_DIR.match(model_dir.parent.name) is not None


def corpus_warning(model_dir: Path, corpus: str, question: str = "") -> str:
    """Why a generation trained here cannot serve ``corpus`` or this question ("" when it can, or is pretrained)."""
    trained = trained_corpus(model_dir) if is_trained_here(model_dir) else None
    if trained is None:
        return ""
    if trained != corpus:
        return (f"⚠ This model was trained here on the `{trained}` corpus only; it never saw `{corpus}` and cannot "
                f"answer questions about it. Pick the default model (pretrained) to ask about `{corpus}`.")
    if question and not _RECORD_PREFIX.match(question.strip()):
        return (f"⚠ This model was trained here on `{trained}` record lines only; it continues a record prefix "
                f"such as “{PREFIX_EXAMPLES[0]}” and cannot read a natural question. Pick the default model "
                f"(pretrained) for questions.")
    return ""


def why_line(model_dir: Path) -> str:
    """Why this model answers: the default, or the user's pick."""
    from rag_bench.models import DEFAULT_PRETRAINED

    if is_trained_here(model_dir):
        return (f"**Why this model:** you picked it, to compare with the default `{DEFAULT_PRETRAINED}` (a run's "
                f"generation answers only when picked).")
    if model_dir.name == DEFAULT_PRETRAINED:
        return ("**Why this model:** it is the default, a pretrained instruct model that reads the passages of any "
                "corpus and answers natural questions.")
    return "**Why this model:** you picked it."


def hints(model_dir: Path) -> tuple[str, list[str], str]:
    """(placeholder, examples, examples label) that fit the model: natural questions, or record prefixes."""
    if is_trained_here(model_dir):
        return (PREFIX_EXAMPLES[0], PREFIX_EXAMPLES,
                "Examples: this model was trained here on record lines, so a record prefix works best")
    return NATURAL_EXAMPLES[0], NATURAL_EXAMPLES, "Examples: ask natural questions"
