"""Evaluate one model (one generation): factual probes in each mode, held-out fit, diversity, distribution.

    rag-bench eval --model runs/r1/gen_0/model --name factbook --probes data/probes/factbook-factbook.jsonl

    from rag_bench.eval.run import evaluate
    results = evaluate(lm, "probes.jsonl", retriever=retriever, cfg=EvalConfig(), heldout_texts=texts,
                       out_dir="runs/r1/gen_0/eval", reference_lm=gen0_lm, human_texts_for_rare=train_texts)
    results["metrics"]["grounded"]["tail"]["exact_match"]   # {"value": 0.41, "higher_is_better": True, "n": 337}

It writes ``results.json`` (schema ``rag_bench.results/1``) and ``samples_<mode>.jsonl`` (one line per probe),
plus ``continuations.jsonl`` when diversity is measured. Metrics per probe, averaged by mode and by the
probes' own ``metadata.bucket`` (``tail``/``torso``/``head``; ``all`` holds every probe):

* accuracy: exact_match, token_f1, contains over every probe; numeric_match over ``answer_type == "number"``
  probes only (its ``n`` says how many), since a first-number match means nothing for a capital;
* grounding (grounded modes): retrieval_recall (the probe's ``source_chunk_id`` was retrieved; a probe without
  one, or whose chunk is not in the index, counts a retrieved chunk holding a golden answer), answer_recall
  (a retrieved chunk holds a golden answer: the ceiling for copying), supported (the answer occurs in a
  retrieved chunk), exact match when retrieval hit and when it missed;
* prompt_truncated: share of prompts cut from the left to fit the model's positions (lower is better).

``results["gap"]["grounded-closed"][bucket]`` is grounded minus closed-book exact match. Fit
(``results["fit"]``), diversity and distribution (``results["diversity"|"distribution"][mode|"human"]``) are
described in ``rag_bench.eval.continuations``; ``results["timings"]`` splits the time into retrieval, generation
and scoring per mode.

Retrieved contexts and reference scores are cached (see ``rag_bench.eval.inputs``); the cache defaults to
``<run>/cache`` when ``out_dir`` is ``<run>/gen_<k>/eval``, so every generation of a run shares it, and to
``<out_dir>/../cache`` otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rag_bench.answer import Answer, answer
from rag_bench.config import EvalConfig
from rag_bench.eval.continuations import generation_eval, human_prompts
from rag_bench.eval.diversity import rare_ngrams
from rag_bench.eval.inputs import ContextRetriever, load_eval_probes, retrieve_contexts
from rag_bench.eval.metrics import accuracy_by_retrieval, get_metric, perplexity_from_nll, retrieval_recall, supported
from rag_bench.eval.tables import exact_match_by_field, most_frequent_answers
from rag_bench.lm import LM
from rag_bench.records import Probe, write_json, write_jsonl

SCHEMA = "rag_bench.results/1"
BUCKETS = ("tail", "torso", "head", "all")
ACCURACY = ("exact_match", "token_f1", "contains")
LOCAL_METRICS = {"answer_recall": True, "prompt_truncated": False}  # name: higher_is_better, for unregistered ones
ANSWER_CHUNK_BATCHES = 4  # batches per answer() call; rag_bench.distributed.answer shards by the same chunks
REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rag-bench", "torch", "transformers", "tokenizers", "sentence-transformers", "faiss-cpu", "langchain-core",
            "langchain-community", "langchain-huggingface", "numpy", "sacrebleu", "scipy")


def score_answer(ans: Answer, probe: Probe, *, gold_in_index: bool, rel_tol: float = 0.01) -> dict[str, float]:
    """Per-probe scores of one answer (see the module docstring for which apply when)."""
    golden = list(probe.golden_answers)
    scores = {name: get_metric(name).fn(ans.text, golden) for name in ACCURACY}
    if probe.metadata.get("answer_type") == "number":
        scores["numeric_match"] = get_metric("numeric_match").fn(ans.text, golden, rel_tol=rel_tol)
    scores["prompt_truncated"] = float(ans.truncated_tokens > 0)
    if ans.mode != "closed":
        ids = [s.get("chunk_id", "") for s in ans.sources]
        texts = [s.get("text", "") for s in ans.sources]
        gold = probe.metadata.get("source_chunk_id")
        gold_ids = [gold] if gold and gold_in_index else None
        scores["retrieval_recall"] = retrieval_recall(ids, gold_ids, texts, golden)
        scores["answer_recall"] = retrieval_recall(ids, None, texts, golden)
        scores["supported"] = supported(ans.text, texts)
    return scores


def aggregate(probes: Sequence[Probe], scores: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """``{bucket: {metric: {"value", "higher_is_better", "n"}}}`` for tail, torso, head (when present) and all."""
    out: dict[str, dict[str, Any]] = {}
    for bucket in BUCKETS:
        rows = [s for p, s in zip(probes, scores, strict=True) if bucket == "all" or p.metadata.get("bucket") == bucket]
        if not rows:
            continue
        metrics: dict[str, Any] = {}
        for name in sorted({k for row in rows for k in row}):
            values = [row[name] for row in rows if name in row]
            higher = LOCAL_METRICS[name] if name in LOCAL_METRICS else get_metric(name).higher_is_better
            metrics[name] = {"value": sum(values) / len(values), "higher_is_better": higher, "n": len(values)}
        if "retrieval_recall" in metrics:
            split = accuracy_by_retrieval([r["exact_match"] for r in rows], [r["retrieval_recall"] for r in rows])
            for side in ("hit", "miss"):
                metrics[f"exact_match_retrieval_{side}"] = {
                    "value": split[f"accuracy_retrieval_{side}"], "higher_is_better": True,
                    "n": split[f"n_retrieval_{side}"]}
        out[bucket] = metrics
    return out


def exact_match_gaps(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Exact match of each grounded mode minus closed-book, by bucket (Kandpal et al.: widest on the tail)."""
    if "closed" not in metrics:
        return {}
    return {f"{mode}-closed": {bucket: by_bucket[bucket]["exact_match"]["value"]
                               - metrics["closed"][bucket]["exact_match"]["value"]
                               for bucket in by_bucket if bucket in metrics["closed"]}
            for mode, by_bucket in metrics.items() if mode != "closed"}


def capped(name: str, requested: int, got: int, what: str) -> str:
    """The note (also printed as a warning) that a requested count was cut to what the data holds."""
    note = f"{name}={requested} requested, {got} used: only {got} {what}"
    warnings.warn(note, stacklevel=2)
    return note


def _sample_row(probe: Probe, ans: Answer, scores: dict[str, float]) -> dict[str, Any]:
    meta = probe.metadata
    return {"id": probe.id, "prompt": probe.prompt, "prediction": ans.text,
            "golden_answers": list(probe.golden_answers), "scores": scores, "bucket": meta.get("bucket"),
            "frequency": meta.get("frequency"), "field": meta.get("field"), "answer_type": meta.get("answer_type"),
            "mode": ans.mode, "prompt_tokens": ans.prompt_tokens, "truncated_tokens": ans.truncated_tokens,
            "sources": [{k: s[k] for k in ("chunk_id", "score", "rank", "source", "doc_id") if k in s}
                        for s in ans.sources]}


def answer_probes(lm: LM, probes: Sequence[Probe], mode: str, cfg: EvalConfig, *, retriever: Any = None,
                  progress: bool = True) -> list[Answer]:
    """Answers in the order of ``probes``, in chunks of a few batches so the bar moves."""
    decode = cfg.decode.replace(batch_size=cfg.batch_size)
    step = cfg.batch_size * ANSWER_CHUNK_BATCHES
    answers: list[Answer] = []
    with tqdm(total=len(probes), desc=f"answering ({mode})", unit="probe", disable=not progress) as bar:
        for start in range(0, len(probes), step):
            questions = [p.prompt for p in probes[start:start + step]]
            answers += answer(lm, questions, mode, retriever=retriever, k=cfg.k, decode=decode)
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


def default_cache_dir(out_dir: Path) -> Path:
    parent = out_dir.resolve().parent
    return parent.parent / "cache" if re.fullmatch(r"gen_\d+", parent.name) else parent / "cache"


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
    ``human_texts_for_rare``. ``answer_with(probes, cfg, retriever)`` answers the probes in every mode
    elsewhere (``rag_bench.distributed.answer.ray_answerer``: Ray Data actors). Returns the results dict.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if isinstance(lm, (str, Path)):
        model_path, lm = model_path or lm, LM.load(lm)
    reference_path = None
    if isinstance(reference_lm, (str, Path)):
        reference_path, reference_lm = str(reference_lm), LM.load(reference_lm)
    grounded_modes = [m for m in cfg.modes if m != "closed"]
    if grounded_modes and retriever is None:
        raise ValueError(f"modes {grounded_modes} need a retriever")
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(out_dir)
    embedder = embedder or getattr(getattr(retriever, "store", None), "embedding_function", None)
    notes = list(notes)
    timings: dict[str, Any] = {"retrieval_s": 0.0, "modes": {}}
    cache: dict[str, str] = {}

    selected, probe_info = load_eval_probes(probes, limit=cfg.limit, seed=cfg.seed)
    if cfg.limit is not None and len(selected) < cfg.limit:
        notes.append(capped("limit", cfg.limit, len(selected), "probes in the file"))
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
    if answer_with is not None:  # every mode at once (one model load per actor); each mode's generation_s is then ~0
        tick = time.perf_counter()
        answered = answer_with(selected, cfg, context_retriever)
        timings["answered_elsewhere_s"] = time.perf_counter() - tick
    for mode in cfg.modes:
        tick = time.perf_counter()
        answers = answered[mode] if mode in answered else answer_probes(lm, selected, mode, cfg,
                                                                         retriever=context_retriever, progress=progress)
        generated = time.perf_counter()
        scores = [score_answer(a, p, gold_in_index=p.metadata.get("source_chunk_id") in index_ids,
                               rel_tol=cfg.numeric_rel_tol)
                  for a, p in zip(answers, selected, strict=True)]
        metrics[mode] = aggregate(selected, scores)
        by_field[mode] = exact_match_by_field(selected, scores)
        write_jsonl(out_dir / f"samples_{mode}.jsonl",
                    (_sample_row(p, a, s) for p, a, s in zip(selected, answers, scores, strict=True)))
        timings["modes"][mode] = {"generation_s": generated - tick, "scoring_s": time.perf_counter() - generated,
                                  "probes": len(selected)}

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
        "buckets": [b for b in BUCKETS if any(b in by_bucket for by_bucket in metrics.values())],
        "metrics": metrics,
        "gap": exact_match_gaps(metrics),
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


# ---------------------------------------------------------------------------------------
# Paths the command line derives (runs/<id>/gen_<k>/model, data/indexes/<name>, data/corpora/<name>)


def run_generation(model_path: str | Path) -> tuple[Path, int] | None:
    """``runs/r1/gen_3/model`` -> ``(runs/r1, 3)``; None for a model outside a run."""
    path = Path(model_path).resolve()
    match = re.fullmatch(r"gen_(\d+)", path.parent.name)
    return (path.parent.parent, int(match[1])) if match else None


def default_out_dir(model_path: str | Path, probes_path: str | Path, data_dir: str | Path) -> Path:
    """``<run>/gen_<k>/eval`` for a run's model, else ``DATA_DIR/evals/<model>-<probes>``."""
    located = run_generation(model_path)
    if located is not None:
        return located[0] / f"gen_{located[1]}" / "eval"
    return Path(data_dir) / "evals" / f"{Path(model_path).resolve().name}-{Path(probes_path).stem}"


def reference_model_path(model_path: str | Path) -> Path | None:
    """Generation 0 of the model's run, when the model belongs to a run that has one."""
    located = run_generation(model_path)
    if located is None:
        return None
    gen0 = located[0] / "gen_0" / "model"
    return gen0 if gen0.is_dir() else None


def corpus_jsonl_for(index_path: str | Path) -> Path | None:
    """The corpus JSONL an index was built from: ``DATA_DIR/corpora/<name>/corpus.jsonl``, or the ingested file."""
    index_path = Path(index_path).resolve()
    beside = index_path.parent.parent / "corpora" / index_path.name / "corpus.jsonl"
    if beside.is_file():
        return beside
    report = index_path / "ingest_report.json"
    if report.is_file():
        ingested = Path(json.loads(report.read_text(encoding="utf-8")).get("path", ""))
        if ingested.suffix == ".jsonl" and ingested.is_file():
            return ingested
    return None
