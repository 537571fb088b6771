"""The fixed inputs of a collapse run (human texts, probes, the gen-0 cache key) and small helpers of its steps.

    from rag_bench.collapse.data import prepare_inputs
    inputs = prepare_inputs(cfg, run_dir="data/runs/quick-factbook", data_dir="data")
    inputs.train_texts, inputs.heldout_texts, inputs.probes_path

The human training and held-out texts come from ``DATA_DIR/corpora/<corpus>/corpus.jsonl`` (its
``metadata.split``; a corpus without one holds out 5% of documents by a hash of their id), or, for a
folder ingested with ``rag-bench ingest`` (no JSONL), from the index's chunks, restricted to
``countries`` and ``kinds``. They are written to ``RUN/data/human_{train,heldout}.jsonl`` on the first
start, and a resumed run reads those copies, so every generation sees the same human data. With
``eval_heldout_tokens`` the measurement text (perplexity, diversity prompts) is ``RUN/data/human_eval.jsonl``:
held-out documents of the run's kinds outside its countries; the run's own held-out documents then only choose
checkpoints (validation), so the text that picks a checkpoint never scores it. A run with the ``fresh`` control
also gets ``RUN/data/human_fresh.jsonl``: the human documents held aside for it (rag_bench.collapse.fresh).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any

from rag_bench.collapse.fresh import fresh_documents, held_out
from rag_bench.config import CollapseConfig, TrainConfig, parse_strategy
from rag_bench.index.store import current_version
from rag_bench.probes.frequency import recount_over_texts
from rag_bench.records import (
    CorpusRecord,
    read_corpus,
    read_json,
    read_jsonl,
    sha256_file,
    sha256_text,
    write_json,
    write_jsonl,
)
from rag_bench.training.examples import CopyTask, record_lines

GEN0_CACHE_FORMAT = "rag_bench.gen0/1"
CHARS_PER_TOKEN = 4.5  # Factbook text under an 8k BPE
# The probes.meta.json note on what the buckets count over. It names the function from the function itself, so a
# move cannot leave a stale path in new files (older files name rag_bench.frequency.recount_over_texts, as it was).
FREQUENCY_OVER = f"the run's human training text ({recount_over_texts.__module__}.{recount_over_texts.__qualname__})"


class InputError(ValueError):
    """A missing corpus, index, probe file or base model; the message names the path and the config key."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunInputs:
    """Human texts and probes of a run, with their files and hashes."""

    train_texts: list[str]  # human training split (what generation 0 trains on)
    heldout_texts: list[str]  # human held-out split of the run: checkpoint choice (validation; never trained on)
    train_path: Path  # RUN/data/human_train.jsonl
    heldout_path: Path  # RUN/data/human_heldout.jsonl
    eval_texts: list[str]  # human text the evaluation measures on (perplexity, diversity): human_eval.jsonl or heldout
    eval_path: Path  # RUN/data/human_eval.jsonl, or heldout_path when eval_heldout_tokens is 0
    probes_path: Path  # RUN/data/probes.jsonl (restricted to the run's countries)
    fresh_path: Path | None = None  # RUN/data/human_fresh.jsonl: text held aside for the fresh control (None: no fresh)
    index_path: Path  # DATA_DIR/indexes/<index>


def check_inputs(cfg: CollapseConfig, data_dir: Path) -> None:
    """Refuse before any work when something the run needs is missing, naming the config key."""
    index = data_dir / "indexes" / cfg.resolved_index()
    if not (index / "CURRENT").is_file():
        raise InputError(f"index: {index} holds no index; build it with `rag-bench prepare` or `rag-bench ingest`")
    probes = probes_source(cfg, data_dir)
    if not probes.is_file():
        raise InputError(f"probes: {probes} not found; build it with `rag-bench probes --kind {cfg.probe_kind}` "
                         "(--kind cloze for your own documents)")
    base_model_dir(cfg, data_dir)


def base_model_dir(cfg: CollapseConfig, data_dir: Path) -> Path | None:
    """``base_model`` as a folder: a registry name such as ``smollm2-135m`` (converted into DATA_DIR once) or a
    local Hugging Face folder; None when the run trains from scratch."""
    from rag_bench.lm import ModelLoadError
    from rag_bench.models import resolve_model

    if not cfg.base_model:
        return None
    try:
        return resolve_model(cfg.base_model, data_dir)
    except ModelLoadError as exc:
        raise InputError(f"base_model: {exc}") from None


def probes_source(cfg: CollapseConfig, data_dir: Path) -> Path:
    """``probes``, else DATA_DIR/probes/<index>-<probe_kind>.jsonl; for factbook, else <index>-cloze.jsonl (an
    ingested corpus)."""
    if cfg.probes:
        return Path(cfg.probes)
    if cfg.probe_kind != "factbook":
        return data_dir / "probes" / f"{cfg.resolved_index()}-{cfg.probe_kind}.jsonl"
    factbook = data_dir / "probes" / f"{cfg.resolved_index()}-factbook.jsonl"
    cloze = factbook.with_name(f"{cfg.resolved_index()}-cloze.jsonl")
    return cloze if cloze.is_file() and not factbook.is_file() else factbook


def human_records(cfg: CollapseConfig, data_dir: Path) -> tuple[list[CorpusRecord], str]:
    """The corpus JSONL's records, or, for a corpus ingested from a folder (no JSONL), the index's chunks."""
    corpus = data_dir / "corpora" / cfg.corpus / "corpus.jsonl"
    if corpus.is_file():
        return read_corpus(corpus), str(corpus)
    version = current_version(data_dir / "indexes" / cfg.resolved_index())
    rows = read_jsonl(version / "docstore.jsonl")
    return [CorpusRecord(id=r["id"], contents=r["text"], metadata=r.get("metadata") or {}) for r in rows], \
        f"{version}/docstore.jsonl"


def eval_heldout(records: list[CorpusRecord], cfg: CollapseConfig, corpus: str) -> list[CorpusRecord]:
    """Held-out documents of the run's kinds outside its countries, in corpus order, until ``eval_heldout_tokens``
    tokens (4.5 characters a token) are reached; an InputError when the corpus holds too few."""
    wanted = cfg.eval_heldout_tokens * CHARS_PER_TOKEN
    picked, chars = [], 0
    for r in records:
        meta = r.metadata
        if chars >= wanted:
            break
        if meta.get("split") == "heldout" and (not cfg.kinds or meta.get("kind") in cfg.kinds) \
                and (not cfg.countries or meta.get("country_code") not in cfg.countries):
            picked.append(r)
            chars += len(r.contents)
    if chars < wanted:
        raise InputError(f"eval_heldout_tokens: {corpus} holds about {chars / CHARS_PER_TOKEN:.0f} tokens of held-out "
                         f"documents of kinds {list(cfg.kinds)} outside the run's countries, fewer than "
                         f"{cfg.eval_heldout_tokens}")
    return picked


def _keep(record_meta: dict[str, Any], cfg: CollapseConfig) -> bool:
    if cfg.countries and record_meta.get("country_code") not in cfg.countries:
        return False
    return not (cfg.kinds and record_meta.get("kind") not in cfg.kinds)


def prepare_inputs(cfg: CollapseConfig, *, run_dir: Path, data_dir: Path) -> RunInputs:
    """Write RUN/data once (human splits and probes) and return the texts; later calls read the copies."""
    folder = run_dir / "data"
    train_path, heldout_path = folder / "human_train.jsonl", folder / "human_heldout.jsonl"
    probes_path = folder / "probes.jsonl"
    eval_path = folder / "human_eval.jsonl" if cfg.eval_heldout_tokens else heldout_path
    if cfg.eval_heldout_tokens and not eval_path.is_file():
        records, corpus = human_records(cfg, data_dir)
        write_jsonl(eval_path, eval_heldout(records, cfg, corpus))
    if not (train_path.is_file() and heldout_path.is_file()):
        records, corpus = human_records(cfg, data_dir)
        records = [r for r in records if _keep(r.metadata, cfg)]
        if not records:
            raise InputError(f"countries/kinds: no document of {corpus} has country_code in {list(cfg.countries)} "
                             f"and kind in {list(cfg.kinds)}")
        held = held_out(records)
        train = [r for r, h in zip(records, held, strict=True) if not h]
        if cfg.human_documents and cfg.human_documents < len(train):
            keep = set(random.Random(f"human:{cfg.seed}").sample(range(len(train)), cfg.human_documents))
            train = [r for i, r in enumerate(train) if i in keep]  # corpus order kept
        heldout = [r for r, h in zip(records, held, strict=True) if h]
        if not train or not heldout:
            raise InputError(f"corpus: {corpus} leaves {len(train)} training and {len(heldout)} held-out documents "
                             "for this run; both splits must be non-empty")
        write_jsonl(heldout_path, heldout)
        write_jsonl(train_path, train)  # written last: its presence means both are complete
    if not probes_path.is_file():
        source = probes_source(cfg, data_dir)
        rows = [r for r in read_jsonl(source) if not cfg.countries
                or (r.get("metadata") or {}).get("country_code") in cfg.countries]
        if not rows:
            raise InputError(f"probes: {source} holds no probe of the countries {list(cfg.countries)}")
        sidecar = source.with_name(source.stem + ".meta.json")
        meta = read_json(sidecar) if sidecar.is_file() else {}
        # the buckets say how often a fact occurs in what the run trains on, not in the whole index (issue 13)
        rows, thresholds = recount_over_texts(rows, [r["contents"] for r in read_jsonl(train_path)])
        write_json(probes_path.with_name("probes.meta.json"),
                   {**meta, "source": str(source), "source_sha256": sha256_file(source),
                    "countries": list(cfg.countries), "probes_in_run": len(rows),
                    "bucket_thresholds_index": meta.get("bucket_thresholds"), "bucket_thresholds": thresholds,
                    "frequency_over": FREQUENCY_OVER})
        write_jsonl(probes_path, rows)
    fresh_path = folder / "human_fresh.jsonl" if any(parse_strategy(s)[0] == "fresh" for s in cfg.strategies) \
        else None
    if fresh_path is not None and not fresh_path.is_file():
        records, _ = human_records(cfg, data_dir)
        probe_docs = {str((p.get("metadata") or {}).get("doc_id")) for p in read_jsonl(probes_path)}
        write_jsonl(fresh_path, fresh_documents(records, train_ids={r["id"] for r in read_jsonl(train_path)},
                                                probe_doc_ids=probe_docs, kinds=cfg.kinds))
    return RunInputs(train_texts=[r["contents"] for r in read_jsonl(train_path)], fresh_path=fresh_path,
                     heldout_texts=[r["contents"] for r in read_jsonl(heldout_path)], train_path=train_path,
                     heldout_path=heldout_path, probes_path=probes_path, eval_path=eval_path,
                     eval_texts=[r["contents"] for r in read_jsonl(eval_path)],
                     index_path=data_dir / "indexes" / cfg.resolved_index())


def gen0_cache_key(cfg: CollapseConfig, inputs: RunInputs, tcfg: TrainConfig,
                   base_dir: Path | None = None) -> tuple[str, dict[str, Any]]:
    """The hash naming ``DATA_DIR/gen0_cache/<key>``: everything that determines generation 0's weights.

    ``tcfg`` is the training config as generation 0 trains (the run's seed and the guards' changes applied);
    ``base_dir`` is the base model's folder (``base_model_dir``; default ``cfg.base_model`` as a path).
    """
    base_dir = base_dir or (Path(cfg.base_model) if cfg.base_model else None)
    base = str(base_dir.resolve()) if base_dir else ""
    base_sha = ""
    if base:
        weights = sorted(p for p in Path(base).iterdir() if p.suffix in (".safetensors", ".bin"))
        base_sha = sha256_text("".join(sha256_file(p) for p in weights))
    material = {"format": GEN0_CACHE_FORMAT, "train": tcfg.to_dict(),
                "base_model": base, "base_model_weights_sha256": base_sha, "neighbours_k": cfg.neighbours_k,
                "human_train_sha256": sha256_file(inputs.train_path),
                "human_heldout_sha256": sha256_file(inputs.heldout_path)}
    return sha256_text(json.dumps(material, sort_keys=True))[:16], material


# ---------------------------------------------------------------------------------------
# Small helpers of the steps (rag_bench.collapse.steps)


def stable_seed(*parts: Any) -> int:
    """A 31-bit seed from any parts (run seed, step, generation, strategy): the same on every resume."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def copy_model(src: Path, dst: Path) -> None:
    """Copy a model folder into place atomically (a temporary sibling, then a rename)."""
    for stale in dst.parent.glob(f".{dst.name}.copy-*"):  # left by a process killed while copying
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dst.with_name(f".{dst.name}.copy-{os.getpid()}")
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def next_steps(cfg: CollapseConfig, budget: int, block: int, scale: float = 1.0) -> int:
    """Optimizer steps of a generation >= 1: ``next_train.max_steps`` times ``scale`` (Strategy.compute_scale), or
    ``next_epochs`` passes over ``budget`` times ``scale`` tokens. ``budget`` is the configured pool budget, never a
    pool's measured length, so every seed of a config trains the same steps (issue 20)."""
    if cfg.next_epochs <= 0:
        return max(1, math.ceil(cfg.next_train.max_steps * scale - 1e-9))
    return max(1, math.ceil(cfg.next_epochs * budget * scale / (cfg.next_train.batch_size * block) - 1e-9))


def checkpoint_every(steps: int, cfg: CollapseConfig) -> int:
    """The checkpoint rule of a later generation: validation perplexity at ``next_checkpoints`` evenly spaced points,
    by default as many as generation 0 has (``train.max_steps / train.eval_every``), the best of them kept."""
    points = cfg.next_checkpoints or max(1, math.ceil(cfg.train.max_steps / cfg.train.eval_every))
    return max(1, math.ceil(steps / points))


def curriculum_off(tcfg: TrainConfig) -> TrainConfig:
    """A later generation's training config without fact, copy and retrieval rows: plain blocks of its pool."""
    return tcfg.replace(fact_share=0.0, copy_share=0.0, retrieval_share=0.0, copy_warmup_steps=0)


def copy_guard(tcfg: TrainConfig, texts: list[str]) -> tuple[TrainConfig, str]:
    """Turn the copy curriculum and its probes off when the texts hold too few record lines to build them."""
    if not (tcfg.copy_share > 0 or tcfg.probe_count > 0):
        return tcfg, "off"
    try:
        CopyTask(record_lines(texts), seed=0, min_lines=tcfg.copy_min_lines, max_lines=tcfg.copy_max_lines,
                 max_distractors=tcfg.copy_max_distractors, max_value_chars=tcfg.copy_max_value_chars)
    except ValueError:
        return tcfg.replace(copy_share=0.0, copy_warmup_steps=0, probe_count=0), "off: too few record lines in the pool"
    return tcfg, "on: built from the training texts" if tcfg.copy_share > 0 else "probes only"


def probed_fields(probes_path: Path) -> tuple[str, ...]:
    """The record fields a probe file asks about (``metadata.field``), sorted."""
    return tuple(sorted({str(p["metadata"]["field"]) for p in read_jsonl(probes_path)
                         if p.get("metadata", {}).get("field")}))


def fact_guard(tcfg: TrainConfig, texts: list[str], fields: tuple[str, ...] | None) -> tuple[TrainConfig, str]:
    """Limit the fact rows to ``fields`` (None: as configured) where the texts hold record lines of them."""
    if tcfg.fact_share <= 0:
        return tcfg, "off"
    if fields is None:
        return tcfg, f"fields {list(tcfg.fact_fields)}" if tcfg.fact_fields else "every field"
    present = {line.field for lines in record_lines(texts).values() for line in lines}
    kept = tuple(f for f in fields if f in present)
    if not kept:  # e.g. cloze probes of a user's corpus, or a pool whose writer wrote no such line
        return tcfg.replace(fact_fields=()), "every field: the texts hold no record line of a probed field"
    return tcfg.replace(fact_fields=kept), f"the probed fields {list(kept)}"
