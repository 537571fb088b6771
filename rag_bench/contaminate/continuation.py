"""The writers' decoding: continuations of prompts, cut at the end of the first document or turn.

    from rag_bench.contaminate.continuation import continue_texts
    texts = continue_texts(lm, ["Chad | Government | Capital:"], new_tokens=24, cfg=cfg, decode=decode, seed=0,
                           watermark=None)

Shared by the generation writer (``rag_bench.contaminate.writer``) and the restate writer
(``rag_bench.contaminate.restate``): sampling at ``cfg.writer_temperature`` (0: greedy) with
``cfg.writer_repetition_penalty``, through ``rag_bench.collapse.synthetic.continue_prompts`` (watermark, seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag_bench.collapse.synthetic import PromptBlock, continue_prompts
from rag_bench.config import DecodeConfig
from rag_bench.contaminate.config import ContaminateConfig
from rag_bench.lm import LM


def writer_decode(decode: DecodeConfig, cfg: ContaminateConfig, new_tokens: int) -> DecodeConfig:
    """The writer's decoding: sampling at ``cfg.writer_temperature``, or greedy at 0."""
    sample = cfg.writer_temperature > 0
    return decode.replace(max_new_tokens=new_tokens, batch_size=cfg.batch_size, do_sample=sample, num_beams=1,
                          temperature=cfg.writer_temperature if sample else 1.0,
                          repetition_penalty=cfg.writer_repetition_penalty)


def continue_texts(lm: LM, prompts: list[str], *, new_tokens: int, cfg: ContaminateConfig, decode: DecodeConfig,
                   seed: int, watermark: Any, separators: Sequence[int | None] = ()) -> list[str]:
    """The first document of each continuation, decoded (cut at the first separator: the tokenizer's BOS, else
    its EOS, unless ``separators`` are given)."""
    if not prompts:
        return []
    tok = lm.tokenizer
    cuts = {t for t in separators if t is not None} or {tok.bos_token_id if tok.bos_token_id is not None
                                                        else tok.eos_token_id}
    blocks = [PromptBlock(index=i, ids=tok(p)["input_ids"]) for i, p in enumerate(prompts)]
    out = continue_prompts(lm, blocks, writer_decode(decode, cfg, new_tokens), seed=seed, watermark=watermark)
    texts = []
    for ids in out:
        if not ids or ids[0] in cuts:
            texts.append("")
            continue
        end = next((i for i, t in enumerate(ids) if t in cuts), len(ids))
        texts.append(tok.decode(ids[:end], skip_special_tokens=True))
    return texts
