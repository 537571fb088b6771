"""The fluent writer: the real SmolLM2-135M-Instruct restates a record through its chat template."""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import Document

from rag_bench.config import DecodeConfig
from rag_bench.contaminate.config import ContaminateConfig
from rag_bench.contaminate.restate import INSTRUCTION, clean_reply, restate_prompt
from rag_bench.contaminate.writer import write_rewrites

RECORD = Document(page_content="Pitcairn Islands | Government | Capital: Adamstown\n"
                               "Pitcairn Islands | Geography | Area - total: 47 sq km",
                  metadata={"chunk_id": "rec", "source": "factbook/pc.json", "country": "Pitcairn Islands"})


def test_the_reply_loses_its_framing():
    assert clean_reply("Here is the restated passage:\n```\nA | B | C: 1\n```") == "A | B | C: 1"
    assert clean_reply("A | B | C: 1\nA | B | D: 2") == "A | B | C: 1\nA | B | D: 2"


def test_smollm2_restates_the_passage(smollm2, tmp_path: Path):
    prompt = restate_prompt(RECORD.page_content, smollm2.tokenizer)
    assert RECORD.page_content in prompt and INSTRUCTION in prompt and prompt.startswith("<|im_start|>")
    cfg = ContaminateConfig(writer="restate", writer_temperature=0, restate_tokens=48, watermark_share=0.0)
    [[row]] = write_rewrites(smollm2, [RECORD], rounds=1, out_dir=tmp_path / "rw", generation=3, cfg=cfg,
                             decode=DecodeConfig(), watermark=None)
    meta = row["metadata"]
    assert meta["rewrite_kind"] == "restate" and meta["origin"] == "synthetic" and meta["rewrite_of"] == "rec"
    assert meta["origin_writer"] == "smollm2-135m restating, greedy"
    assert row["contents"].strip() and "<|im_end|>" not in row["contents"] and "assistant" not in row["contents"]
    again = write_rewrites(smollm2, [RECORD], rounds=1, out_dir=tmp_path / "again", generation=3, cfg=cfg,
                           decode=DecodeConfig(), watermark=None)
    assert again[0][0]["contents"] == row["contents"]  # greedy: the same restatement every time
