"""The human-distractor control: held-out human chunks only, never an answer chunk, refused when too few."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document

from rag_bench.contaminate.control import ControlError, draw_distractors, heldout_human
from rag_bench.index.store import load_index
from rag_bench.records import read_json, read_jsonl


def chunk(cid: str, country: str, section: str, split: str, origin: str = "human") -> Document:
    return Document(page_content=f"{country} | {section} | Field: value of {cid}", id=cid,
                    metadata={"chunk_id": cid, "country": country, "section": section, "split": split,
                              "origin": origin, "source": f"factbook/{country}.json"})


ANSWERS = [chunk("a1", "Algeria", "Government", "train"), chunk("a2", "Kenya", "Economy", "train")]
CORPUS = [*ANSWERS, chunk("h1", "Algeria", "Economy", "heldout"), chunk("h2", "Chad", "Government", "heldout"),
          chunk("h3", "Peru", "Energy", "heldout"), chunk("h4", "Kenya", "Geography", "heldout"),
          chunk("t1", "Algeria", "Geography", "train"), chunk("p1", "Chad", "Economy", "heldout"),
          chunk("s1", "Algeria", "Economy", "heldout", origin="synthetic")]


def test_only_held_out_human_chunks_that_no_probe_asks_about():
    pool = heldout_human(CORPUS, excluded={"a1", "a2", "p1"})
    assert [c.id for c in pool] == ["h1", "h2", "h3", "h4"]  # not t1 (trained on), p1 (probed), s1 (synthetic)


def test_distractors_prefer_the_same_country_then_the_same_section():
    pool = heldout_human(CORPUS, excluded={"a1", "a2", "p1"})
    rows = draw_distractors(ANSWERS, pool, count=4, seed=0)
    assert [r["metadata"]["distractor_of"] for r in rows] == ["a1", "a2", "a1", "a2"]  # the writer's round order
    assert [r["metadata"]["distractor_copy_of"] for r in rows[:2]] == ["h1", "h4"]  # same country, other section
    assert rows[2]["metadata"]["distractor_copy_of"] == "h2"  # then the same section of another country
    assert len({r["id"] for r in rows}) == 4 and all(r["metadata"]["origin"] == "human" for r in rows)
    assert all(r["id"].startswith("distractor/") for r in rows)


def test_more_distractors_than_held_out_chunks_is_refused_with_the_counts():
    pool = heldout_human(CORPUS, excluded={"a1", "a2", "p1"})
    with pytest.raises(ControlError, match="needs 5 held-out human chunks but only 4 exist"):
        draw_distractors(ANSWERS, pool, count=5)


def test_the_run_control_index_holds_only_held_out_human_copies(contaminated: Path):
    results = read_json(contaminated / "results.json")
    probes = read_jsonl(Path(results["run"]) / "data" / "probes.jsonl")
    probed = {p["metadata"]["source_chunk_id"] for p in probes}
    human = {c.id: c for c in load_index(Path(results["controls"][0]["human_index"])).chunks}
    for marker in results["controls"]:
        index_dir = Path(results["indexes"][0]["human_index"]).parent / marker_name(results, marker["share"])
        extra = [c for c in load_index(index_dir).chunks if c.id not in human]
        assert len(extra) == marker["synthetic_chunks"] > 0
        for c in extra:
            source = human[c.metadata["distractor_copy_of"]]
            assert c.metadata["origin"] == "human" and source.metadata["split"] == "heldout"
            assert source.id not in probed and c.page_content == source.page_content


def marker_name(results: dict, share: float) -> str:
    return results["index_names"][0].replace("-s0.00", f"-human-s{share:.2f}")
