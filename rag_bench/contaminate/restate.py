"""The fluent writer: an instruct model restates the whole passage with one value changed.

    from rag_bench.contaminate.restate import restate_texts
    texts = restate_texts(smollm2, chunks, marked=[False] * len(chunks), cfg=cfg, decode=DecodeConfig(),
                          watermark=None, seed=0)

The run's own generations write record values a token at a time, often garbled at temperature 1; source bias
(Dai et al., KDD 2024; Yu et al., WWW 2026) was found with fluent LLM text. This writer gives the passage and
``INSTRUCTION`` to an instruct model (``cfg.restate_model``, the base SmolLM2-135M-Instruct by default) through
its chat template (``rag_bench.prompt.render_prompt``), and keeps its reply up to the end of the turn. Decoding
is ``cfg.writer_temperature`` (0: greedy); a watermarked rewrite is written with the run's green-list watermark
on this model's vocabulary, so the watermark defence detects it with this model's tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document

from rag_bench.config import DecodeConfig
from rag_bench.contaminate.config import ContaminateConfig
from rag_bench.contaminate.continuation import continue_texts
from rag_bench.prompt import render_prompt

INSTRUCTION = ("Restate the passage above exactly, in the same form and line by line, but change the value of "
               "exactly one line to a different, plausible value. Reply with the restated passage only.")


def restate_prompt(text: str, tokenizer: Any) -> str:
    """The passage, then the instruction, as one user turn of the model's chat template."""
    return render_prompt(INSTRUCTION, [text], tokenizer=tokenizer)


def clean_reply(text: str) -> str:
    """The reply without a chat model's framing: leading "Here is ...:" lines and code fences go (a reply that
    repeats the original exactly is kept: the fluency table counts how many changed nothing)."""
    lines = [line for line in text.strip().splitlines() if not line.strip().startswith("```")]
    while lines and lines[0].rstrip().endswith(":") and " | " not in lines[0]:
        lines = lines[1:]  # "Here is the restated passage:"
    return "\n".join(lines).strip()


def restate_texts(lm: Any, chunks: Sequence[Document], *, marked: Sequence[bool], cfg: ContaminateConfig,
                  decode: DecodeConfig, watermark: Any, seed: int) -> list[str]:
    """One restatement per chunk, in order ("" where the model wrote nothing)."""
    tok = lm.tokenizer
    out = [""] * len(chunks)
    for flag in (False, True):
        members = [i for i, m in enumerate(marked) if bool(m) == flag]
        prompts = [restate_prompt(chunks[i].page_content, tok) for i in members]
        texts = continue_texts(lm, prompts, new_tokens=cfg.restate_tokens, cfg=cfg, decode=decode,
                          watermark=watermark if flag else None, seed=seed + int(flag),
                          separators=(tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")
                                      if "<|im_end|>" in tok.get_vocab() else None))
        for i, text in zip(members, texts, strict=True):
            out[i] = clean_reply(text)
    return out
