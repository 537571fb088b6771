"""Rewrites by a run's generation: the corpus's own form, origin labels, seeded rounds that resume."""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import Document

from rag_bench.collapse.synthetic import watermarking_config
from rag_bench.config import DecodeConfig
from rag_bench.contaminate.config import ContaminateConfig
from rag_bench.contaminate.writer import is_record_chunk, write_rewrites
from rag_bench.lm import LM
from rag_bench.records import read_jsonl
from rag_bench.training.examples import parse_record_line

RECORD = Document(page_content="Pitcairn Islands | Government | Capital: Adamstown\n"
                               "Pitcairn Islands | Geography | Area - total: 47 sq km",
                  metadata={"chunk_id": "rec", "source": "factbook/pc.json", "country": "Pitcairn Islands"})
PROSE = Document(page_content="The Quillmark lighthouse on Varnholt island was lit for the first time in 1873 "
                              "and still guides the ferries.", metadata={"chunk_id": "prose", "source": "notes.txt"})


def test_record_and_prose_chunks_are_told_apart():
    assert is_record_chunk(RECORD.page_content) and not is_record_chunk(PROSE.page_content)
    assert not is_record_chunk("")


def test_rewrites_keep_the_form_and_resume_round_by_round(contaminate_data: Path, tmp_path: Path):
    lm = LM.load(contaminate_data / "runs" / "tiny" / "gen_0" / "model")
    cfg = ContaminateConfig(watermark_share=0.5, value_tokens=8, prose_tokens=16)
    mark = watermarking_config(bias=4.0, greenlist=0.25, key=15485863)
    rounds = write_rewrites(lm, [RECORD, PROSE], rounds=3, out_dir=tmp_path / "rw", generation=0, cfg=cfg,
                            decode=DecodeConfig(), watermark=mark)
    rows = [r for rnd in rounds for r in rnd]
    assert {r["metadata"]["rewrite_round"] for r in rows} == {0, 1, 2}
    for row in rows:
        meta = row["metadata"]
        assert meta["origin"] == "synthetic" and meta["origin_generation"] == 0 and meta["source"].startswith(
            "uncurated/")
        if meta["rewrite_of"] == "rec":
            lines = [parse_record_line(line) for line in row["contents"].splitlines()]
            assert lines and all(rec is not None and rec.entity == "Pitcairn Islands" for rec in lines)
        else:
            assert row["contents"].startswith("The Quillmark lighthouse on Varnholt island was lit for the first")
    (tmp_path / "rw" / "round_001.jsonl").unlink()
    again = write_rewrites(lm, [RECORD, PROSE], rounds=3, out_dir=tmp_path / "rw", generation=0, cfg=cfg,
                           decode=DecodeConfig(), watermark=mark)
    assert again == rounds  # the missing round is written again with its own seeds, identically
    assert read_jsonl(tmp_path / "rw" / "round_001.jsonl") == rounds[1]
    unmarked = write_rewrites(lm, [RECORD], rounds=1, out_dir=tmp_path / "none", generation=0,
                              cfg=cfg.replace(watermark_share=0.0), decode=DecodeConfig(), watermark=mark)
    assert not unmarked[0][0]["metadata"]["origin_watermarked"]
