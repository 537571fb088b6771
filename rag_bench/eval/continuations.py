"""Diversity and distribution of what a model writes: continuations of fixed human prompts, in each mode.

    from rag_bench.eval.continuations import human_prompts, generation_eval
    prompts = human_prompts(heldout_texts, count=64, words=32, tokenizer=lm.tokenizer, max_new_tokens=64)
    out = generation_eval(lm, prompts, modes=("closed", "grounded"), contexts=contexts, cfg=EvalConfig(),
                          embedder=minilm, rare=rare_ngrams(train_texts), reference_lm=gen0_lm)
    out["diversity"]["closed"]["distinct_2"]      # {"value": ..., "higher_is_better": True, "n": 64}
    out["distribution"]["closed"]["histogram"]    # fixed log-spaced edges: generations overlay

A prompt is the first ``words`` words of a held-out human text (original whitespace kept), chosen by a
seeded sample, so every generation continues the same prompts. Closed-book continues the prompt alone;
grounded continues the retrieved passages followed by the prompt (a passage that contains the prompt,
i.e. its own source, is never retrieved for it). Continuations are sampled at temperature 1 with no top-p
or top-k (``EvalConfig.continuation_decode``): the model's own distribution, which is what collapses.
The human text that followed each prompt, cut to the same number of tokens, is scored alongside as the
``human`` baseline. Span-constrained decoding only copies passages, so it has no continuation of its own.

Distribution (Shumailov et al. 2024, Fig. 1): the perplexity of each continuation given its human prompt
under a reference model (generation 0). Without a reference the model scores itself, and the output says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from langchain_core.documents import Document
from tqdm.auto import tqdm

from rag_bench.answer import order_passages
from rag_bench.config import EvalConfig
from rag_bench.eval.diversity import RareNgrams, diversity_report
from rag_bench.eval.metrics import get_metric, perplexity_histogram
from rag_bench.lm import LM
from rag_bench.prompt import render_prompt
from rag_bench.records import RecordError, read_json, sha256_text, write_json

CONTINUATION_MODES = ("closed", "grounded")  # modes that write free text; grounded_span only copies
HUMAN = "human"  # the series of human continuations, the baseline every generation is compared with
_WORD_SPAN = re.compile(r"\S+")


@dataclasses.dataclass(frozen=True, kw_only=True)
class HumanPrompt:
    """The start of a held-out human text and what followed it."""

    prompt: str  # the first words of the text, whitespace as written
    continuation: str  # the human text after the prompt, cut to the continuation's token budget


def human_prompts(texts: Sequence[str], *, count: int, words: int, tokenizer: Any, max_new_tokens: int,
                  seed: int = 0) -> list[HumanPrompt]:
    """``count`` prompts from a seeded sample of ``texts``; a short text gives at most half its words."""
    candidates = [i for i, text in enumerate(texts) if len(text.split()) >= 4]
    chosen = sorted(random.Random(seed).sample(candidates, min(count, len(candidates))))
    prompts = []
    for i in chosen:
        spans = list(_WORD_SPAN.finditer(texts[i]))
        cut = spans[min(words, len(spans) // 2) - 1].end()
        rest = tokenizer(texts[i][cut:], add_special_tokens=False)["input_ids"][:max_new_tokens]
        prompts.append(HumanPrompt(prompt=texts[i][:cut], continuation=tokenizer.decode(rest)))
    return prompts


def continuation_prompts(prompts: Sequence[HumanPrompt], mode: str,
                         contexts: Sequence[Sequence[Document]] | None = None) -> list[str]:
    """What the model is given: the prompt alone (closed) or passages then the prompt (grounded)."""
    if mode == "closed":
        return [p.prompt for p in prompts]
    if contexts is None:
        raise ValueError(f"mode {mode!r} needs retrieved contexts for its prompts")
    return [render_prompt(p.prompt, order_passages(docs)) for p, docs in zip(prompts, contexts, strict=True)]


def continuations(lm: LM, prompts: Sequence[str], cfg: EvalConfig, *, desc: str = "continuations",
                  progress: bool = True) -> list[str]:
    """Sampled continuations in batches; a seed per batch keeps them repeatable at any batch size."""
    decode = cfg.continuation_decode.replace(batch_size=cfg.batch_size)
    texts: list[str] = []
    with tqdm(total=len(prompts), desc=desc, unit="prompt", disable=not progress) as bar:
        for start in range(0, len(prompts), cfg.batch_size):
            batch = list(prompts[start:start + cfg.batch_size])
            texts += lm.generate(batch, decode.replace(seed=decode.seed + start))
            bar.update(len(batch))
    return texts


def conditional_perplexities(lm: LM, prompts: Sequence[str], texts: Sequence[str], *,
                             batch_size: int = 16) -> list[float]:
    """Perplexity of each text given its prompt under ``lm`` (nan for an empty text)."""
    logprobs = lm.score(list(prompts), list(texts), batch_size=batch_size)
    lengths = [min(len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]), lm.max_positions - 1) for t in texts]
    return [math.exp(-lp / n) if n else float("nan") for lp, n in zip(logprobs, lengths, strict=True)]


def fixed_histogram(values: Sequence[float], cfg: EvalConfig) -> dict[str, Any]:
    """Histogram over ``cfg.histogram_bins`` log-spaced bins of ``cfg.histogram_range``; outliers go to the end bins.

    ``n_below`` / ``n_above`` count the values clipped into the first / last bin; mean and median are of the
    unclipped finite values.
    """
    low, high = cfg.histogram_range
    edges = np.geomspace(low, high, cfg.histogram_bins + 1)
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    hist = perplexity_histogram(np.clip(finite, low, high).tolist(), bins=edges.tolist())
    hist.update(scale="log", n_below=int((finite < low).sum()), n_above=int((finite > high).sum()),
                n_nonfinite=int(array.size - finite.size),
                mean=float(finite.mean()) if finite.size else None,
                median=float(np.median(finite)) if finite.size else None)
    return hist


def model_fingerprint(lm: LM) -> str:
    """sha256 of the weights (names and bytes), so cached scores are keyed by the model that made them."""
    digest = hashlib.sha256()
    for name, tensor in sorted(lm.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _leaves(report: dict[str, float], n: int) -> dict[str, dict[str, Any]]:
    return {name: {"value": value, "higher_is_better": get_metric(name).higher_is_better, "n": n}
            for name, value in sorted(report.items())}


def _human_reference_scores(reference: LM, prompts: Sequence[HumanPrompt], cfg: EvalConfig,
                            cache_dir: Path | None, cacheable: bool) -> tuple[list[float], str]:
    """Reference perplexities of the human continuations: the same for every generation, so cached."""
    path = None
    if cache_dir is not None and cacheable:
        key = sha256_text(model_fingerprint(reference) + "\x00".join(p.prompt + "\x01" + p.continuation
                                                                     for p in prompts))[:24]
        path = cache_dir / f"refscores-{key}.json"
        if path.is_file():
            try:
                values = read_json(path)["perplexities"]
                if len(values) == len(prompts):
                    return [float("nan") if v is None else float(v) for v in values], "hit"
            except (RecordError, KeyError, TypeError):
                pass
    values = conditional_perplexities(reference, [p.prompt for p in prompts], [p.continuation for p in prompts],
                                      batch_size=cfg.batch_size)
    if path is not None:
        write_json(path, {"perplexities": [v if math.isfinite(v) else None for v in values]})
    return values, "miss" if path is not None else "off"


def generation_eval(lm: LM, prompts: Sequence[HumanPrompt], *, modes: Sequence[str], cfg: EvalConfig,
                    contexts: Sequence[Sequence[Document]] | None = None, embedder: Any = None,
                    rare: RareNgrams | None = None, reference_lm: LM | None = None,
                    cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Continue ``prompts`` in each free-text mode and score diversity and reference perplexity.

    Returns ``diversity[series][metric]`` and ``distribution[series]`` for each mode and for ``human``,
    ``samples`` (one row per prompt and series) and ``notes``.
    """
    modes = [m for m in modes if m in CONTINUATION_MODES]
    reference = reference_lm or lm
    notes = []
    if reference_lm is None:
        notes.append("no reference model given: continuations are scored by the evaluated model itself, "
                     "so the perplexity distribution is not comparable across generations")
    series: dict[str, list[str]] = {HUMAN: [p.continuation for p in prompts]}
    for mode in modes:
        given = continuation_prompts(prompts, mode, contexts if mode != "closed" else None)
        series[mode] = continuations(lm, given, cfg, desc=f"continuations ({mode})", progress=progress)
    vectors = {}
    if embedder is not None:
        for name, texts in series.items():
            vectors[name] = np.asarray(embedder.embed_documents([t if t.strip() else "." for t in texts]))
    human_values, cache_status = _human_reference_scores(
        reference, prompts, cfg, Path(cache_dir) if cache_dir else None, cacheable=reference_lm is not None)
    diversity, distribution, perplexities = {}, {}, {HUMAN: human_values}
    for name, texts in series.items():
        if name != HUMAN:
            perplexities[name] = conditional_perplexities(reference, [p.prompt for p in prompts], texts,
                                                          batch_size=cfg.batch_size)
        diversity[name] = _leaves(diversity_report(texts, embeddings=vectors.get(name), rare=rare,
                                                   seed=cfg.seed), len(texts))
        distribution[name] = {
            "reference": "reference model" if reference_lm is not None else "self",
            "histogram": fixed_histogram(perplexities[name], cfg),
            "perplexities": [round(v, 4) if math.isfinite(v) else None for v in perplexities[name]],
            "empty": sum(not t.strip() for t in texts),
        }
    samples = [{"prompt_index": i, "series": name, "prompt": p.prompt, "text": series[name][i],
                "reference_perplexity": distribution[name]["perplexities"][i]}
               for name in series for i, p in enumerate(prompts)]
    return {"diversity": diversity, "distribution": distribution, "samples": samples, "notes": notes,
            "reference_cache": cache_status, "modes": modes}
