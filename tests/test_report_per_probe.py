"""Per-probe data of two real tiny seeds: gathered from the run files, written gzipped, read back unchanged."""

from __future__ import annotations

import gzip

import pytest

from rag_bench.records import read_json, read_jsonl
from rag_bench.report.per_probe import (
    ANSWER_CHARS,
    FILES,
    PerProbe,
    answer_cells,
    echo_probes,
    gather,
    nll_cells,
    read_per_probe,
    write_per_probe,
)
from rag_bench.report.results import ReportError, collect_runs


def test_the_rows_round_trip_and_keep_ids_not_prompts(tiny_seed_runs, tmp_path):
    entries, _ = collect_runs(tiny_seed_runs, seeds=True)
    data = gather(entries)
    expected = sum(len(read_jsonl(e.path.parent / f"samples_{m}.jsonl")) for e in entries for m in e.results["metrics"])
    assert len(data.samples) == expected and {r["seed"] for r in data.samples} == {0, 1}
    row = data.samples[0]
    assert set(row) == {"probe", "seed", "generation", "strategy", "mode", "bucket", "echo", "answer", "scores"}
    assert all(isinstance(r["echo"], bool) for r in data.samples)  # written by the eval since the reader fixes
    assert all(len(r["answer"]) <= ANSWER_CHARS for r in data.samples)
    written = write_per_probe(tmp_path / "a", data)
    assert [p.name for p in written] == list(FILES.values())
    assert read_per_probe(tmp_path / "a") == data
    write_per_probe(tmp_path / "b", data)  # the same data, the same bytes (a fixed gzip time stamp)
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in FILES.values())
    # the held-out NLL of one seed, generation and strategy is the results.json list, text by text
    e = next(e for e in entries if (e.strategy, e.seed, e.generation) == ("accumulate", 1, 1))
    per_text = read_json(e.path)["fit"]["heldout_perplexity"]["per_text_nll"]
    assert nll_cells(data)[("accumulate", 1)][1] == [[round(v, 4), t] for v, t in per_text]
    test = answer_cells(data, "contains", split="test")[("accumulate", 1, "closed")][1]
    every = answer_cells(data, "contains", split="all")[("accumulate", 1, "closed")][1]
    assert 0 < len(test) < len(every)


def test_a_broken_or_missing_file_names_itself(tiny_seed_runs, tmp_path):
    data = gather(collect_runs(tiny_seed_runs, seeds=True)[0])
    write_per_probe(tmp_path, data)
    (tmp_path / FILES["nll"]).write_bytes(gzip.compress(b"{not json\n"))
    with pytest.raises(ReportError, match=f"{tmp_path / FILES['nll']}: not gzipped JSONL"):
        read_per_probe(tmp_path)
    (tmp_path / FILES["samples"]).unlink()
    with pytest.raises(ReportError, match=f"{tmp_path / FILES['samples']}: per-probe file not found"):
        read_per_probe(tmp_path)


def test_two_runs_of_one_seed_are_refused(tiny_seed_runs):
    entries, _ = collect_runs([tiny_seed_runs[0], tiny_seed_runs[0]], seeds=True)
    with pytest.raises(ReportError, match="seed 0 of accumulate, generation 0, is given twice"):
        gather(entries)


def test_echo_probes_leave_the_accuracy_cells_when_asked():
    # two test-split probes (rag_bench.eval.splits decides by id); one echoes its golden answer in the question
    from rag_bench.eval.splits import probe_split

    ids = [i for i in (f"factbook/x{n}/f" for n in range(40)) if probe_split(i) == "test"][:2]
    rows = [{"probe": i, "seed": 0, "generation": 1, "strategy": "replace", "mode": "closed", "bucket": "tail",
             "echo": n == 0, "answer": "a", "scores": {"contains": 1.0}} for n, i in enumerate(ids)]
    data = PerProbe(samples=rows, nll=[], diversity=[])
    assert echo_probes(data) == {ids[0]}
    assert set(answer_cells(data, "contains")[("replace", 1, "closed")][0]) == set(ids)
    assert set(answer_cells(data, "contains", exclude_echo=True)[("replace", 1, "closed")][0]) == {ids[1]}
