"""What generation n writes for generation n+1: human prompts continued by the model, optionally watermarked.

    from rag_bench.collapse.synthetic import prompt_blocks, write_synthetic
    prompts = prompt_blocks(human_train_texts, lm.tokenizer, prompt_tokens=64, new_tokens=64)
    stats = write_synthetic(lm, prompts, decode, out="runs/r1/gen_0/synthetic.jsonl", generation=0, seed=0)

The human training split is one BOS-separated token stream (as in training). It is cut into blocks of
``new_tokens`` tokens; each block's first ``prompt_tokens`` tokens (running into the next block when
k > m) prompt the model, which writes exactly ``new_tokens`` more, so the synthetic corpus holds as many
tokens as the human one (Shumailov et al. 2024: k = m = 64). End-of-document tokens the model writes are
kept as document boundaries: a continuation is split there into several records. Only the continuation
is written, never the prompt, so a pool of synthetic records holds no human text.

The corpus is written in parts (``.<name>.parts/part_<i>.jsonl``), each atomically and with its own seed,
so a killed writer resumes at the first missing part and writes the same text it would have written. Within
a part every generation batch is seeded by itself and saved when done (``part_<i>.batches/batch_<j>.json``),
so a kill loses at most the batch in flight, not the part.

With a token budget (``pool_tokens``; ``budget_prompts`` sizes the prompts to it) the writer keeps writing until
the budget is met, in further rounds of the same prompts under new seeds when the first falls short, and then cuts
the corpus to exactly the budget at a token, so every seed's pool holds the same number of tokens (issue 20).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import WatermarkDetector, WatermarkingConfig

from rag_bench.collapse.budget import take_budget, token_cutter
from rag_bench.collapse.overlap import word_ngrams
from rag_bench.config import DecodeConfig
from rag_bench.lm import LM, autocast
from rag_bench.models.decode_loop import generate_fast
from rag_bench.prompt import render_prompt
from rag_bench.records import read_json, read_jsonl, write_json, write_jsonl
from rag_bench.training.examples import corpus_stream, document_separator

PART_PROMPTS = 512  # prompts per part file: the unit of resumption
PROMPT_MARGIN = 1.03  # prompts for 3% more tokens than the budget: separators written are dropped, the rest is cut
CONTINUATION_NGRAM = 8  # a passage sharing a word n-gram this long with a prompt's true continuation is not shown


@dataclasses.dataclass(frozen=True, kw_only=True)
class PromptBlock:
    """One writer prompt: the first k tokens of a human training block, and passages for the grounded writer."""

    index: int  # position of the block in the human token stream
    ids: list[int]  # the prompt's token ids
    passages: tuple[str, ...] = ()  # human passages placed before the prompt (grounded writer)
    continuation: tuple[int, ...] = ()  # the human text's next tokens: the grounded writer must not be shown them


def prompt_blocks(texts: Sequence[str], tokenizer: Any, *, prompt_tokens: int, new_tokens: int) -> list[PromptBlock]:
    """One prompt per ``new_tokens``-token block of the human stream, so the continuations match its size."""
    stream = corpus_stream(texts, tokenizer)
    starts = range(0, max(0, len(stream) - prompt_tokens) + 1, new_tokens)
    return [PromptBlock(index=i, ids=stream[s:s + prompt_tokens],
                        continuation=tuple(stream[s + prompt_tokens:s + prompt_tokens + new_tokens]))
            for i, s in enumerate(starts) if len(stream[s:s + prompt_tokens]) == prompt_tokens]


def budget_prompts(blocks: Sequence[PromptBlock], count: int, *, first_index: int = 0) -> list[PromptBlock]:
    """``count`` prompts from ``blocks``: all of them in order as often as they fit, then an evenly spaced share of
    them, numbered from ``first_index`` (a record's id holds its prompt's number, so ids stay unique)."""
    n = len(blocks)
    if not n:
        raise ValueError("no human block to prompt the writer with: the human training text is too short")
    rest = count % n
    picks = [i for _ in range(count // n) for i in range(n)] + [j * n // rest for j in range(rest)]
    return [dataclasses.replace(blocks[i], index=first_index + j) for j, i in enumerate(picks)]


def prompts_for(budget: int, new_tokens: int) -> int:
    """Prompts that write a little more than ``budget`` tokens at ``new_tokens`` each."""
    return math.ceil(budget * PROMPT_MARGIN / new_tokens) + 1


def watermarking_config(*, bias: float, greenlist: float, key: int) -> WatermarkingConfig:
    """Kirchenbauer et al.'s green-list watermark, seeded by the previous token (transformers' "lefthash")."""
    return WatermarkingConfig(greenlist_ratio=greenlist, bias=bias, hashing_key=key, seeding_scheme="lefthash",
                              context_width=1)


def continue_prompts(lm: LM, prompts: Sequence[PromptBlock], decode: DecodeConfig, *, seed: int,
                     watermark: WatermarkingConfig | None = None, saved: Path | None = None,
                     reference: bool = False) -> list[list[int]]:
    """``decode.max_new_tokens`` new token ids per prompt, in order; end-of-document does not stop a row.

    Decoding runs rag_bench.models.decode_loop (``reference=True``: transformers' own loop, the same tokens).

    Each batch draws from its own seed (``seed`` and its number), so with ``saved`` (a folder) a finished batch
    is written there and read back on the next call instead of generated again, with the same result.
    """
    tok = lm.tokenizer
    room = lm.max_positions - decode.max_new_tokens
    if room < 1:
        raise ValueError(f"max_new_tokens={decode.max_new_tokens} leaves no room for a prompt in "
                         f"{lm.max_positions} positions")
    inputs = []
    for block in prompts:
        ids = list(block.ids)
        if block.passages:  # same layout as retrieval-augmented training: passages, blank line, then the text
            ids = tok(render_prompt("", block.passages))["input_ids"] + ids
        if len(ids) > room:  # keep the prompt's end; the passages go first
            ids = ids[-room:]
        inputs.append(ids)
    kwargs: dict[str, Any] = {"max_new_tokens": decode.max_new_tokens,
                              "do_sample": decode.do_sample, "num_beams": decode.num_beams,
                              "repetition_penalty": decode.repetition_penalty, "pad_token_id": tok.pad_token_id,
                              "eos_token_id": []}  # BOS = EOS separates documents; keep writing past it
    if decode.do_sample:
        kwargs.update(temperature=decode.temperature, top_p=decode.top_p, top_k=decode.top_k or None)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if watermark is not None:
        kwargs["watermarking_config"] = watermark
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    out: list[list[int]] = [[] for _ in inputs]
    with torch.random.fork_rng(devices=[lm.device] if lm.device.type == "cuda" else []):
        for number, start in enumerate(range(0, len(order), decode.batch_size)):
            idx = order[start:start + decode.batch_size]
            path = saved / f"batch_{number:05d}.json" if saved is not None else None
            stored = read_json(path) if path is not None and path.is_file() else {}
            if stored.get("prompts") == [prompts[i].index for i in idx]:
                rows = stored["new_ids"]
            else:
                torch.manual_seed(seed if number == 0 else (seed * 100_003 + number) % 2**63)  # one batch: as before
                padded = tok.pad({"input_ids": [inputs[i] for i in idx]}, padding=True,
                                 return_tensors="pt").to(lm.device)
                width = padded["input_ids"].shape[1]
                with torch.inference_mode(), autocast(lm.device):
                    run = lm.model.generate if reference else partial(generate_fast, lm.model)
                    rows = run(**padded, **kwargs)[:, width:].tolist()
                if path is not None:
                    write_json(path, {"prompts": [prompts[i].index for i in idx], "new_ids": rows})
            for i, row in zip(idx, rows, strict=True):
                out[i] = row
    return out


def split_documents(ids: Sequence[int], separator: int) -> list[list[int]]:
    """Token ids cut at the document separator (BOS/EOS); empty pieces dropped."""
    pieces, current = [], []
    for t in ids:
        if t == separator:
            if current:
                pieces.append(current)
            current = []
        else:
            current.append(t)
    if current:
        pieces.append(current)
    return pieces


def part_count(prompts: Sequence[PromptBlock]) -> int:
    """Part files a writer of ``prompts`` writes (PART_PROMPTS prompts each)."""
    return max(1, -(-len(prompts) // PART_PROMPTS))


def part_path(out: str | Path, part: int) -> Path:
    """``.<name>.parts/part_<i>.jsonl`` beside ``out``: one part of a synthetic corpus, written atomically."""
    out = Path(out)
    return out.with_name(f".{out.name}.parts") / f"part_{part:05d}.jsonl"


def write_part(lm: LM, prompts: Sequence[PromptBlock], decode: DecodeConfig, *, out: str | Path, part: int,
               generation: int, seed: int, writer: str = "plain", watermark: WatermarkingConfig | None = None,
               scorer: LM | None = None) -> int:
    """Write part ``part`` of ``out`` unless it exists; returns the prompts it continued (0 when it existed).

    A part is a pure function of the model, its prompts and ``seed``: any process (a Ray Data actor
    included, rag_bench.distributed.generate) writes the same text for it.
    """
    path = part_path(out, part)
    if path.is_file():
        return 0
    tok = lm.tokenizer
    separator = document_separator(tok)
    chunk = prompts[part * PART_PROMPTS:(part + 1) * PART_PROMPTS]
    batches = path.with_name(f"{path.stem}.batches")  # finished batches of this part, until the part is written
    new_ids = continue_prompts(lm, chunk, decode, seed=seed * 1_000_003 + part, watermark=watermark, saved=batches)
    rows = []
    for block, ids in zip(chunk, new_ids, strict=True):
        for j, piece in enumerate(split_documents(ids, separator)):
            text = tok.decode(piece, skip_special_tokens=True)
            if text.strip():
                rows.append({"id": f"gen{generation}/{writer}/{block.index}/{j}", "contents": text,
                             "metadata": {"source": "synthetic", "generation": generation, "writer": writer,
                                          "prompt_block": block.index, "tokens": len(piece),
                                          "grounded_passages": len(block.passages),
                                          "watermarked": watermark is not None}})
    if scorer is not None and rows:
        for row, ppl in zip(rows, scorer.sequence_perplexities([r["contents"] for r in rows], batch_size=64),
                            strict=True):
            row["metadata"]["gen0_ppl"] = round(ppl, 4)
    write_jsonl(path, rows)
    shutil.rmtree(batches, ignore_errors=True)
    return len(chunk)


def write_synthetic(lm: LM, prompts: Sequence[PromptBlock], decode: DecodeConfig, *, out: str | Path,
                    generation: int, seed: int, writer: str = "plain", watermark: WatermarkingConfig | None = None,
                    scorer: LM | None = None, on_part: Callable[[int, int], None] | None = None,
                    budget_tokens: int = 0) -> dict[str, Any]:
    """Write the continuations of ``prompts`` to ``out`` (corpus JSONL); resumable part by part.

    ``scorer`` (generation 0) adds each record's perplexity under it as ``metadata.gen0_ppl``. ``on_part(done,
    total)`` is called after every part of the first round. ``budget_tokens`` > 0: keep writing (further rounds of
    ``prompts``, ``<out>.more<r>``) until that many tokens are written, then cut to exactly that many. Returns
    counts and timings.
    """
    out = Path(out)
    started, written_now, rounds = time.perf_counter(), 0, [(out, list(prompts), seed)]

    def write_round(target: Path, round_prompts: list[PromptBlock], round_seed: int) -> list[dict]:
        nonlocal written_now
        n_parts = part_count(round_prompts)
        for part in range(n_parts):
            written_now += write_part(lm, round_prompts, decode, out=target, part=part, generation=generation,
                                      seed=round_seed, writer=writer, watermark=watermark, scorer=scorer)
            if on_part is not None and target == out:
                on_part(part + 1, n_parts)
        return [row for part in range(n_parts) for row in read_jsonl(part_path(target, part))]

    rows = write_round(*rounds[0])
    while budget_tokens and sum(r["metadata"]["tokens"] for r in rows) < budget_tokens:  # short: write more
        missing = budget_tokens - sum(r["metadata"]["tokens"] for r in rows)
        first = max(p.index for _, round_prompts, _ in rounds for p in round_prompts) + 1
        rounds.append((out.with_name(f"{out.name}.more{len(rounds)}"),
                       budget_prompts(prompts, prompts_for(missing, decode.max_new_tokens), first_index=first),
                       seed + 7_919 * len(rounds)))
        rows += write_round(*rounds[-1])
    written = sum(r["metadata"]["tokens"] for r in rows)
    if budget_tokens:
        rows = take_budget(deque(rows), budget_tokens, token_cutter(lm.tokenizer))
    write_jsonl(out, rows)
    for target, _, _ in rounds:
        shutil.rmtree(part_path(target, 0).parent, ignore_errors=True)
    return {"records": len(rows), "prompts": sum(len(p) for _, p, _ in rounds),
            "tokens": sum(r["metadata"]["tokens"] for r in rows), "budget_tokens": budget_tokens or None,
            "tokens_written": written, "rounds": len(rounds), "new_tokens_per_prompt": decode.max_new_tokens,
            "writer": writer, "seconds": time.perf_counter() - started, "prompts_written_this_session": written_now}


def grounded_blocks(prompts: Sequence[PromptBlock], tokenizer: Any, retriever: Any, docstore: Any, *, k: int,
                    heldout_ids: set[str], cache: Path) -> list[PromptBlock]:
    """``prompts`` with k human passages each: never a held-out chunk, nor the chunk that holds the prompt itself,
    nor one that holds any word 8-gram of the prompt's true continuation (the neighbouring chunk it runs on into),
    so the writer cannot copy the human text it is meant to replace.

    The chosen chunk ids are cached in ``cache`` (JSON) under a hash of the prompts, since every
    generation of a run continues the same prompts.
    """
    key = hashlib.sha256(repr([(p.index, p.ids, p.continuation, CONTINUATION_NGRAM) for p in prompts])
                         .encode()).hexdigest()[:16]
    stored = read_json(cache) if cache.is_file() else {}
    if stored.get("key") != key or stored.get("k") != k:
        texts = [tokenizer.decode(p.ids, skip_special_tokens=True) for p in prompts]
        chosen = []
        for start in range(0, len(texts), 256):
            batch = texts[start:start + 256]
            following = [set(word_ngrams(tokenizer.decode(list(p.continuation), skip_special_tokens=True),
                                         CONTINUATION_NGRAM)) for p in prompts[start:start + 256]]
            for text, after, docs in zip(batch, following, retriever.batch_search(batch, k=k + 8), strict=True):
                folded = " ".join(text.split())
                keep = [d for d in docs if d.metadata.get("split") != "heldout"
                        and d.metadata.get("doc_id") not in heldout_ids
                        and d.metadata.get("chunk_id") not in heldout_ids
                        and folded not in " ".join(d.page_content.split())
                        and not after & set(word_ngrams(d.page_content, CONTINUATION_NGRAM))]
                chosen.append([d.metadata["chunk_id"] for d in keep[:k]])
        stored = {"key": key, "k": k, "chunk_ids": chosen}
        write_json(cache, stored)
    return [dataclasses.replace(p, passages=tuple(docstore.search(c).page_content for c in ids))
            for p, ids in zip(prompts, stored["chunk_ids"], strict=True)]


def watermark_z_scores(lm: LM, texts: Sequence[str], watermark: WatermarkingConfig) -> list[float]:
    """The detector's z-score of each text (re-tokenised with the writer's tokenizer); 0 for a text too short."""
    detector = WatermarkDetector(model_config=lm.model.config, device=str(lm.device), watermarking_config=watermark,
                                 max_cache_size=4096)
    scores = []
    for text in texts:
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < 2:
            scores.append(0.0)
            continue
        result = detector(torch.tensor([ids], device=lm.device), z_threshold=0.0, return_dict=True)
        scores.append(float(result.z_score[0]))
    return scores
