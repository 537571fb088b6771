"""Evaluate one model (one generation): factual probes in each mode, held-out fit, diversity, distribution.

    rag-bench eval --model runs/r1/gen_0/model --name factbook --probes data/probes/factbook-factbook.jsonl

    from rag_bench.eval.run import evaluate
    results = evaluate(lm, "probes.jsonl", retriever=retriever, cfg=EvalConfig(), heldout_texts=texts,
                       out_dir="runs/r1/gen_0/eval", reference_lm=gen0_lm, human_texts_for_rare=train_texts)
    results["metrics"]["grounded"]["tail"]["exact_match"]   # {"value": 0.41, "higher_is_better": True, "n": 337}

It writes ``results.json`` (schema ``rag_bench.results/1``) and ``samples_<mode>.jsonl`` (one line per probe),
plus ``continuations.jsonl`` when diversity is measured. The metrics of each probe and their averages by mode and
by the probes' own ``metadata.bucket`` are those of ``rag_bench.eval.scoring``.

``results["gap"]["grounded-closed"][bucket]`` is grounded minus closed-book exact match. The oracle modes answer
the probes whose gold chunk (``metadata.source_chunk_id``) is in the index, with that chunk as the one passage;
``results["retrieval_loss"]["grounded-oracle"]`` is grounded minus oracle on those probes, per accuracy metric.
``results["reader"]`` names the template (``EvalConfig.template``, ``auto`` resolved), k and retriever;
``results["primary"][mode]`` averages the probes whose golden answer is not in the question, and
``results["echo_excluded"]`` counts and names those left out. Fit
(``results["fit"]``), diversity and distribution (``results["diversity"|"distribution"][mode|"human"]``) are
described in ``rag_bench.eval.continuations``; ``results["timings"]`` splits the time into retrieval, generation
and scoring per mode.

Retrieved contexts and reference scores are cached (see ``rag_bench.eval.inputs``); the cache defaults to
``<run>/cache`` when ``out_dir`` is ``<run>/gen_<k>/eval``, so every generation of a run shares it, and to
``<out_dir>/../cache`` otherwise.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rag_bench.answer import ORACLE_MODES, Answer, answer, resolve_template
from rag_bench.config import EvalConfig
from rag_bench.eval.continuations import generation_eval, human_prompts
from rag_bench.eval.diversity import rare_ngrams
from rag_bench.eval.inputs import ContextRetriever, load_eval_probes, oracle_inputs, retrieve_contexts
from rag_bench.eval.metrics import get_metric, perplexity_from_nll
from rag_bench.eval.one_pass import ANSWER_CHUNK_BATCHES, answer_all_modes
from rag_bench.eval.paths import default_cache_dir
from rag_bench.eval.scoring import (
    ACCURACY,
    BUCKETS,
    aggregate,
    exact_match_gaps,
    is_echo,
    primary,
    retrieval_loss,
    sample_row,
    score_answer,
)
from rag_bench.eval.tables import exact_match_by_field, most_frequent_answers
from rag_bench.lm import LM
from rag_bench.records import Probe, write_json, write_jsonl

SCHEMA = "rag_bench.results/1"
REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rag-bench", "torch", "transformers", "tokenizers", "sentence-transformers", "faiss-cpu", "langchain-core",
            "langchain-community", "langchain-huggingface", "numpy", "sacrebleu", "scipy")


def capped(name: str, requested: int, got: int, what: str) -> str:
    """The note (also printed as a warning) that a requested count was cut to what the data holds."""
    note = f"{name}={requested} requested, {got} used: only {got} {what}"
    warnings.warn(note, stacklevel=2)
    return note


def answer_probes(lm: LM, probes: Sequence[Probe], mode: str, cfg: EvalConfig, *, retriever: Any = None,
                  progress: bool = True) -> list[Answer]:
    """Answers in the order of ``probes``, in chunks of a few batches so the bar moves."""
    decode = cfg.decode.replace(batch_size=cfg.batch_size)
    step = cfg.batch_size * ANSWER_CHUNK_BATCHES
    template = resolve_template(cfg.template, lm.tokenizer)
    k = 1 if mode in ORACLE_MODES else cfg.k
    answers: list[Answer] = []
    with tqdm(total=len(probes), desc=f"answering ({mode})", unit="probe", disable=not progress) as bar:
        for start in range(0, len(probes), step):
            questions = [p.prompt for p in probes[start:start + step]]
            answers += answer(lm, questions, mode, retriever=retriever, k=k, decode=decode, template=template)
            bar.update(len(questions))
    return answers


def heldout_fit(lm: LM, texts: Sequence[str], cfg: EvalConfig, *, progress: bool = True) -> dict[str, Any]:
    """Token-weighted held-out perplexity over sliding windows (``LM.token_nll``, a few texts per call)."""
    texts = [t for t in texts if t.strip()]
    if cfg.heldout_max_texts:
        texts = texts[: cfg.heldout_max_texts]
    pairs = []
    for start in tqdm(range(0, len(texts), cfg.batch_size), desc="held-out perplexity", unit="batch",
                      disable=not progress):
        pairs += lm.token_nll(texts[start:start + cfg.batch_size], batch_size=cfg.batch_size)
    tokens = sum(n for _, n in pairs)
    value = perplexity_from_nll([nll for nll, _ in pairs], [n for _, n in pairs]) if tokens else None
    # per text (summed NLL in nats, tokens): a bootstrap over texts gives its interval (rag_bench.eval.bootstrap)
    per_text = [[round(nll, 4), n] for nll, n in pairs]
    return {"heldout_perplexity": {"value": value, "higher_is_better": False, "n": tokens, "texts": len(texts),
                                   "per_text_nll": per_text}}


def provenance() -> dict[str, Any]:
    """Package versions and the git commit of the checkout (None outside one)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=30, check=True).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"versions": versions, "git_commit": commit, "git_dirty": dirty}


def evaluate(lm: LM | str | Path, probes: str | Path | Sequence[Probe], *, retriever: Any = None,
             cfg: EvalConfig = EvalConfig(), heldout_texts: Sequence[str] = (), out_dir: str | Path,
             reference_lm: LM | str | Path | None = None, human_texts_for_rare: Sequence[str] | None = None,
             embedder: Any = None, model_path: str | Path | None = None, index_info: dict[str, Any] | None = None,
             notes: Sequence[str] = (), progress: bool = True,
             answer_with: Callable[[list[Probe], EvalConfig, Any], dict[str, list[Answer]]] | None = None
             ) -> dict[str, Any]:
    """Evaluate one model in ``cfg.modes`` and write results.json and samples_<mode>.jsonl into ``out_dir``.

    ``lm`` and ``reference_lm`` may be model folders. ``embedder`` defaults to the retriever's own MiniLM.
    Diversity needs ``heldout_texts`` and ``cfg.diversity_prompts > 0``; tail survival needs
    ``human_texts_for_rare``. ``answer_with(probes, cfg, retriever)`` answers the probes elsewhere in every mode
    but the oracle ones (``rag_bench.distributed.answer.ray_answerer``: Ray Data actors); the oracle modes are
    always answered here, on the probes whose gold chunk is in the index. Returns the results dict.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if isinstance(lm, (str, Path)):
        model_path, lm = model_path or lm, LM.load(lm)
    reference_path = None
    if isinstance(reference_lm, (str, Path)):
        reference_path, reference_lm = str(reference_lm), LM.load(reference_lm)
    needs_index = [m for m in cfg.modes if m != "closed"]
    if needs_index and retriever is None:
        raise ValueError(f"modes {needs_index} need a retriever")
    grounded_modes = [m for m in needs_index if m not in ORACLE_MODES]
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(out_dir)
    embedder = embedder or getattr(getattr(retriever, "store", None), "embedding_function", None)
    notes = list(notes)
    timings: dict[str, Any] = {"retrieval_s": 0.0, "modes": {}}
    cache: dict[str, str] = {}

    selected, probe_info = load_eval_probes(probes, limit=cfg.limit, seed=cfg.seed, split=cfg.split)
    if cfg.limit is not None and len(selected) < cfg.limit:
        notes.append(capped("limit", cfg.limit, len(selected), "probes in the file" if cfg.split == "all"
                            else f"probes on the {cfg.split} side"))
    prompts = [p.prompt for p in selected]
    context_retriever = None
    index_ids: set[str] = set()
    if grounded_modes:
        tick = time.perf_counter()
        contexts, cache["probe_contexts"] = retrieve_contexts(retriever, prompts, k=cfg.k, cache_dir=cache_dir,
                                                              progress=progress)
        timings["retrieval_s"] = time.perf_counter() - tick
        context_retriever = ContextRetriever(prompts, contexts)
        store_ids = getattr(getattr(retriever, "store", None), "index_to_docstore_id", None)
        index_ids = set(store_ids.values()) if store_ids is not None else set()

    metrics: dict[str, Any] = {}
    by_field: dict[str, Any] = {}
    answered: dict[str, list[Answer]] = {}
    oracle_probes, oracle_context = oracle_inputs(retriever, selected, notes) if set(cfg.modes) & set(ORACLE_MODES) \
        else ([], None)
    # every mode at once, so each mode's generation_s is ~0: in one length-sorted pass over this model, the oracle
    # modes on their gold passages too (rag_bench.eval.one_pass), or every mode but the oracle ones elsewhere
    # (answer_with: one model load per actor; the gold chunks only this function has)
    tick = time.perf_counter()
    if answer_with is None:
        answered = answer_all_modes(lm, selected, cfg, context_retriever, progress=progress,
                                    oracle=(oracle_probes, oracle_context) if oracle_context is not None else None)
    else:
        answered = answer_with(selected, cfg, context_retriever)
    timings["answering_s" if answer_with is None else "answered_elsewhere_s"] = time.perf_counter() - tick
    primary_metrics: dict[str, Any] = {}
    scores_by_id: dict[str, dict[str, dict[str, float]]] = {}
    for mode in cfg.modes:
        tick = time.perf_counter()
        mode_probes = oracle_probes if mode in ORACLE_MODES else selected
        if not mode_probes:
            continue
        answers = answered[mode] if mode in answered else answer_probes(
            lm, mode_probes, mode, cfg, retriever=oracle_context if mode in ORACLE_MODES else context_retriever,
            progress=progress)
        generated = time.perf_counter()
        scores = [score_answer(a, p, gold_in_index=p.metadata.get("source_chunk_id") in index_ids,
                               rel_tol=cfg.numeric_rel_tol)
                  for a, p in zip(answers, mode_probes, strict=True)]
        metrics[mode] = aggregate(mode_probes, scores)
        primary_metrics[mode] = primary(mode_probes, scores)
        scores_by_id[mode] = {p.id: s for p, s in zip(mode_probes, scores, strict=True)}
        by_field[mode] = exact_match_by_field(mode_probes, scores)
        write_jsonl(out_dir / f"samples_{mode}.jsonl",
                    (sample_row(p, a, s) for p, a, s in zip(mode_probes, answers, scores, strict=True)))
        timings["modes"][mode] = {"generation_s": generated - tick, "scoring_s": time.perf_counter() - generated,
                                  "probes": len(mode_probes)}
    echoes = [p.id for p in selected if is_echo(p)]

    baseline = [{name: get_metric(name).fn(prediction, list(p.golden_answers)) for name in ACCURACY}
                for prediction, p in zip(most_frequent_answers(selected), selected, strict=True)]
    by_field["most_frequent_answer"] = exact_match_by_field(selected, baseline)

    tick = time.perf_counter()
    fit = heldout_fit(lm, heldout_texts, cfg, progress=progress) if heldout_texts else {}
    if not heldout_texts:
        notes.append("no held-out texts: perplexity, diversity and distribution were not measured")
    timings["fit_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    generation: dict[str, Any] = {"diversity": {}, "distribution": {}}
    if heldout_texts and cfg.diversity_prompts:
        chosen = human_prompts(heldout_texts, count=cfg.diversity_prompts, words=cfg.diversity_prompt_words,
                               tokenizer=lm.tokenizer, max_new_tokens=cfg.continuation_decode.max_new_tokens,
                               seed=cfg.seed)
        if len(chosen) < cfg.diversity_prompts:
            notes.append(capped("diversity_prompts", cfg.diversity_prompts, len(chosen), "held-out texts of 4+ words"))
        prompt_contexts = None
        if "grounded" in cfg.modes:
            prompt_contexts, cache["prompt_contexts"] = retrieve_contexts(
                retriever, [p.prompt for p in chosen], k=cfg.k, cache_dir=cache_dir, exclude_containing=True,
                progress=progress)
        rare = rare_ngrams(human_texts_for_rare, max_count=cfg.rare_max_count) if human_texts_for_rare else None
        if rare is None:
            notes.append("no human training texts given: tail survival was not measured")
        generation = generation_eval(lm, chosen, modes=cfg.modes, cfg=cfg, contexts=prompt_contexts,
                                     embedder=embedder, rare=rare, reference_lm=reference_lm, cache_dir=cache_dir,
                                     progress=progress)
        cache["reference_scores"] = generation.pop("reference_cache")
        notes += generation.pop("notes")
        write_jsonl(out_dir / "continuations.jsonl", generation.pop("samples"))
    timings["diversity_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - started

    results = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": {"eval": cfg.to_dict(),
                   "answer_decode": cfg.decode.replace(batch_size=cfg.batch_size).to_dict(),
                   "continuation_decode": cfg.continuation_decode.replace(batch_size=cfg.batch_size).to_dict()},
        **provenance(),
        "model": {"path": str(model_path) if model_path else None, "parameters": lm.num_parameters,
                  "max_positions": lm.max_positions, "class": type(lm.model).__name__,
                  "config": lm.config.to_dict() if lm.config is not None else None},
        "reference_model": {"path": reference_path, "given": reference_lm is not None},
        "probes": probe_info,
        "index": {**(index_info or {}), "retrieval": getattr(retriever, "mode", cfg.retrieval), "k": cfg.k}
        if grounded_modes else None,
        "reader": {"template": resolve_template(cfg.template, lm.tokenizer), "k": cfg.k, "retrieval": cfg.retrieval,
                   "oracle_probes": len(oracle_probes) if oracle_context is not None else None},
        "buckets": [b for b in BUCKETS if any(b in by_bucket for by_bucket in metrics.values())],
        "metrics": metrics,
        "primary": primary_metrics,  # the probes whose golden answer is not in the question (no echo credit)
        "echo_excluded": {"n": len(echoes), "of": len(selected), "ids": echoes},
        "gap": exact_match_gaps(metrics),
        "retrieval_loss": retrieval_loss(scores_by_id),
        "baselines": {"most_frequent_answer": aggregate(selected, baseline)},
        "by_field": by_field,
        "fit": fit,
        "diversity": generation["diversity"],
        "distribution": generation["distribution"],
        "cache": {"dir": str(cache_dir), **cache},
        "timings": timings,
        "notes": notes,
    }
    write_json(out_dir / "results.json", results)
    return results
