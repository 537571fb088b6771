"""Generation n rewrites the chunks that hold the probed facts, in the corpus's own form.

    from rag_bench.contaminate.writer import write_rewrites
    rows = write_rewrites(lm, answer_chunks, rounds=9, out_dir=RUN / "contaminate/gen_4-limit100/rewrites",
                          generation=4, cfg=ContaminateConfig(), watermark=watermarking_config(...))

A record chunk (``Country | Section | Field: value`` lines, the Factbook's form) is rewritten line by
line: the model is given each line's prefix, exactly the closed-book prompt, and its value replaces the
true one, so a wrong value sits in a chunk that looks like, and is retrieved like, the true one. Any
other chunk is prose: its first ``prose_words`` words prompt a continuation of ``prose_tokens`` tokens.

Round j holds one rewrite of every answer chunk; a share takes the first rewrites in round order, so
the synthetic text of a smaller share is part of every larger one. Each rewrite is watermarked
(Kirchenbauer green list, the run's key) with probability ``watermark_share``, by a seeded coin.
Rounds are written atomically one file each (``round_<j>.jsonl``), with seeds of their own, so a killed
writer resumes at the first missing round and writes the same text.

The writer is named by ``cfg.writer``: ``generation`` is the above, sampled at ``cfg.writer_temperature`` (1 is
the original writer; 0 is greedy); ``restate`` gives the whole passage to an instruct model (the base SmolLM2,
``cfg.restate_model``) asked to restate it with one value changed (``rag_bench.contaminate.restate``), the
fluent writer the studies of source bias had in mind.

Metadata: ``origin`` (``synthetic``), ``origin_generation``, ``origin_writer`` and ``origin_watermarked`` record
where the text came from; none of them is in ``rag_bench.answer.SOURCE_FIELDS``, so no prompt or citation shows
them. ``source`` is the rewritten chunk's source under ``uncurated/``: the folder a company would know
it did not curate, which is all the trusted-source defence reads.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from rag_bench.config import DecodeConfig
from rag_bench.contaminate.config import ContaminateConfig
from rag_bench.contaminate.continuation import continue_texts
from rag_bench.contaminate.restate import restate_texts
from rag_bench.lm import LM
from rag_bench.records import read_jsonl, write_jsonl
from rag_bench.training.examples import parse_record_line

UNCURATED = "uncurated/"  # the source folder of every rewrite
KEPT_METADATA = ("country", "country_code", "section", "region", "kind")  # what a rewrite shares with its original


def stable_seed(*parts: Any) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def is_record_chunk(text: str) -> bool:
    """At least half of the non-empty lines are ``Entity | Section | Field: value`` lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and 2 * sum(parse_record_line(line) is not None for line in lines) >= len(lines)


def _prompts(chunk: Document, cfg: ContaminateConfig) -> tuple[str, list[str]]:
    """``("record", prefixes)`` or ``("prose", [first words])``."""
    text = chunk.page_content
    if is_record_chunk(text):
        return "record", [rec.prefix for line in text.splitlines() if (rec := parse_record_line(line))]
    return "prose", [" ".join(text.split()[:cfg.prose_words])]


def rewrite_round(lm: LM, chunks: Sequence[Document], *, round_index: int, generation: int, cfg: ContaminateConfig,
                  decode: DecodeConfig, watermark: Any) -> list[dict[str, Any]]:
    """One rewrite of every chunk (corpus JSONL rows, in the order of ``chunks``; empty rewrites left out)."""
    marked = [random.Random(stable_seed(cfg.seed, generation, round_index, c.metadata["chunk_id"])).random()
              < cfg.watermark_share and watermark is not None for c in chunks]
    if cfg.writer == "restate":
        texts = restate_texts(lm, chunks, marked=marked, cfg=cfg, decode=decode, watermark=watermark,
                              seed=stable_seed(cfg.seed, "restate", round_index))
        return [row_of(chunk, text, round_index=round_index, generation=generation, kind="restate",
                       marked=flag, writer=writer_name(cfg, generation))
                for chunk, text, flag in zip(chunks, texts, marked, strict=True) if text.strip()]
    plans = [_prompts(c, cfg) for c in chunks]
    written: dict[int, list[str]] = {}
    for kind in ("record", "prose"):
        for flag in (False, True):
            members = [i for i, (k, _) in enumerate(plans) if k == kind and marked[i] == flag]
            prompts = [p for i in members for p in plans[i][1]]
            texts = continue_texts(lm, prompts, new_tokens=cfg.value_tokens if kind == "record" else cfg.prose_tokens,
                                   cfg=cfg, decode=decode, watermark=watermark if flag else None,
                                   seed=stable_seed(cfg.seed, generation, round_index, kind, flag))
            position = 0
            for i in members:
                count = len(plans[i][1])
                written[i] = texts[position:position + count]
                position += count
    rows = []
    for i, chunk in enumerate(chunks):
        kind, prompts = plans[i]
        if kind == "record":
            lines = [f"{p} {v.splitlines()[0].strip() if v.strip() else ''}".rstrip()
                     for p, v in zip(prompts, written[i], strict=True)]
            contents = "\n".join(line for line in lines if not line.endswith(":"))
        else:
            contents = f"{prompts[0]} {' '.join(written[i][0].split())}".strip()
        if contents.strip():
            rows.append(row_of(chunk, contents, round_index=round_index, generation=generation, kind=kind,
                               marked=marked[i], writer=writer_name(cfg, generation)))
    return rows


def writer_name(cfg: ContaminateConfig, generation: int) -> str:
    """The writer in words, e.g. "generation 4, sampling at temperature 1" (the report states it)."""
    who = f"generation {generation}" if cfg.writer == "generation" else f"{cfg.restate_model} restating"
    return f"{who}, {cfg.decoding()}"


def row_of(chunk: Document, contents: str, *, round_index: int, generation: int, kind: str, marked: bool,
           writer: str) -> dict[str, Any]:
    """A rewrite as a corpus JSONL row, with its origin labels."""
    original = chunk.metadata
    cid = original["chunk_id"]
    meta = {key: original[key] for key in KEPT_METADATA if key in original}
    meta.update(source=UNCURATED + str(original.get("source", "")), doc_id=f"uncurated/{cid}/{round_index}",
                origin="synthetic", origin_generation=generation, origin_writer=writer, origin_watermarked=marked,
                rewrite_of=cid, rewrite_round=round_index, rewrite_kind=kind)
    return {"id": f"uncurated/{cid}/{round_index}", "contents": contents, "metadata": meta}


def write_rewrites(lm: LM, chunks: Sequence[Document], *, rounds: int, out_dir: str | Path, generation: int,
                   cfg: ContaminateConfig, decode: DecodeConfig, watermark: Any,
                   echo: Any = None) -> list[list[dict[str, Any]]]:
    """``rounds`` rounds of rewrites, each read back from ``out_dir/round_<j>.jsonl`` when already written."""
    out_dir = Path(out_dir)
    result = []
    for j in range(rounds):
        path = out_dir / f"round_{j:03d}.jsonl"
        if not path.is_file():
            rows = rewrite_round(lm, chunks, round_index=j, generation=generation, cfg=cfg, decode=decode,
                                 watermark=watermark)
            write_jsonl(path, rows)
            if echo:
                echo(f"rewrites: round {j + 1}/{rounds} written ({len(rows)} chunks)")
        result.append(read_jsonl(path))
    return result
