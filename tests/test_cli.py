"""The rag-bench command: help for every subcommand, clear errors, and no network at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rag_bench.cli import build_parser, main
from rag_bench.cli.train import index_neighbours
from tests.conftest import PLANTED_FACT

REPO = Path(__file__).resolve().parents[1]


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("name", subcommands())
def test_every_subcommand_has_help_with_an_example(name: str, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"rag-bench {name}" in out and "--data-dir" in out


def test_missing_path_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["ingest", str(tmp_path / "missing"), "--data-dir", str(tmp_path)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_search_without_index_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["search", "anything", "--data-dir", str(tmp_path)]) == 2
    assert "no index here" in capsys.readouterr().err


NO_NETWORK = """
import socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network blocked by the test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from rag_bench.cli import main
code = main(sys.argv[1:])
print("ATTEMPTS", len(attempts))
sys.exit(code)
"""


def test_ingest_and_search_make_no_network_call(mixed_corpus: Path, tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no HF_HUB_OFFLINE: the package must set it
    data = tmp_path / "data"
    runs = [["ingest", str(mixed_corpus), "--name", "docs"], ["search", "Quillmark lighthouse", "--name", "docs"]]
    outputs = []
    for args in runs:
        done = subprocess.run([sys.executable, "-c", NO_NETWORK, *args, "--data-dir", str(data)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "ATTEMPTS 0" in done.stdout, done.stdout
        outputs.append(done.stdout)
    assert PLANTED_FACT[:40] in " ".join(outputs[1].split())
    report = json.loads((data / "indexes" / "docs" / "ingest_report.json").read_text())
    assert report["skipped"] == [] and report["chunks"]["total"] > 0


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "rag_bench", "--help"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and "ingest" in done.stdout


# ---------------------------------------------------------------------------------------
# rag-bench train

EXPORTS = ["barley", "timber", "copper", "wool", "salt"]
TRAIN_LINES = [f"Town{i} | Economy | Exports: {w}" for i, w in enumerate(EXPORTS)]
HELDOUT_LINE = "Zanzibar | Economy | Exports: cloves"


def tiny_corpus(path: Path) -> Path:
    """Six record documents in the project's corpus format, one of them held out by metadata.split."""
    rows = [{"id": f"doc{i}", "contents": "\n".join(TRAIN_LINES[i:] + TRAIN_LINES[:i]), "metadata": {"split": "train"}}
            for i in range(5)]
    rows.append({"id": "doc5", "contents": HELDOUT_LINE, "metadata": {"split": "heldout"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TRAIN_FLAGS = ["--model-size", "tiny", "--max-steps", "4", "--arch", "gpt2"]


def test_train_writes_a_checkpoint_folder_and_resumes(tmp_path: Path, capsys):
    torch.set_num_threads(1)
    corpus, out = tiny_corpus(tmp_path / "corpus.jsonl"), tmp_path / "gen0"
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *TRAIN_FLAGS, "--data-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    model = out / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_config.json", "train_log.jsonl",
                 "timings.json"):
        assert (model / name).is_file(), name
    timings = json.loads((model / "timings.json").read_text())
    assert f"{timings['parameters']:,} parameters" in printed and str(model) in printed
    assert "5 training and 1 held-out documents" in printed
    cfg = json.loads((model / "train_config.json").read_text())
    assert cfg["max_steps"] == 4 and cfg["model"]["name"] == "tiny" and cfg["model"]["arch"] == "gpt2"
    assert json.loads((model / "config.json").read_text())["model_type"] == "gpt2"
    # the same command again resumes from OUT/last at its last step instead of starting over
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *TRAIN_FLAGS, "--data-dir", str(tmp_path)]) == 0
    assert "resuming from" in capsys.readouterr().out


def test_train_kinds_keeps_only_those_documents(tmp_path: Path):
    from rag_bench.cli.common import CliError
    from rag_bench.cli.train import split_corpus

    rows = [{"id": "r1", "contents": TRAIN_LINES[0], "metadata": {"split": "train", "kind": "record"}},
            {"id": "p1", "contents": "Town0 trades in barley.", "metadata": {"split": "train", "kind": "prose"}},
            {"id": "r2", "contents": HELDOUT_LINE, "metadata": {"split": "heldout", "kind": "record"}},
            {"id": "p2", "contents": "Zanzibar trades in cloves.", "metadata": {"split": "heldout", "kind": "prose"}}]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert split_corpus(corpus)[:2] == ([TRAIN_LINES[0], "Town0 trades in barley."],
                                        [HELDOUT_LINE, "Zanzibar trades in cloves."])
    assert split_corpus(corpus, kinds=("record",))[:2] == ([TRAIN_LINES[0]], [HELDOUT_LINE])
    with pytest.raises(CliError, match=r"corpus.jsonl: no document has metadata.kind in \['table'\].*'prose'"):
        split_corpus(corpus, kinds=("table",))


def test_train_with_a_wrong_base_model_path_is_a_clear_error(tmp_path: Path, capsys):
    corpus = tiny_corpus(tmp_path / "corpus.jsonl")
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hello")
    assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "ft"), "--base-model", str(not_a_model),
                 "--max-steps", "2", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(not_a_model) in err and "not a causal-LM model folder" in err
    assert not (tmp_path / "ft" / "model").exists()
    assert main(["train", "--corpus", str(corpus), "--base-model", "smollm2-1b", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("error: smollm2-1b: not a model folder (no such directory) nor a known model "
                                       "name (known: smollm2-135m)\n")


def test_train_with_a_missing_corpus_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["train", "--data-dir", str(tmp_path), *TRAIN_FLAGS]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "corpora" / "factbook" / "corpus.jsonl") in err and "not found" in err


def test_train_with_an_index_takes_neighbour_passages_from_it(tmp_path: Path, capsys):
    torch.set_num_threads(1)
    corpus = tiny_corpus(tmp_path / "corpus.jsonl")
    assert main(["ingest", str(corpus), "--name", "towns", "--data-dir", str(tmp_path)]) == 0
    out = tmp_path / "rag"
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *TRAIN_FLAGS, "--index", "towns",
                 "--retrieval-share", "0.5", "--data-dir", str(tmp_path)]) == 0
    assert "passages from the index towns" in capsys.readouterr().out
    # the held-out document is the best match of its own text, and is never offered as a neighbour
    (passages,) = index_neighbours(tmp_path / "indexes" / "towns", k=2)([HELDOUT_LINE])
    assert len(passages) == 2 and not any("Zanzibar" in p for p in passages)
    assert json.loads((out / "model" / "train_config.json").read_text())["retrieval_share"] == 0.5


def test_prepare_builds_the_probes_that_the_quick_experiment_needs(tmp_path: Path, capsys):
    """A fresh data dir after `rag-bench prepare` holds the probes a collapse run on the Factbook reads."""
    from rag_bench.cli.corpus import default_probes, ingest
    from rag_bench.collapse.data import probes_source
    from rag_bench.config import CollapseConfig
    from tests.test_probes_build import COUNTRIES, factbook_builder

    data = tmp_path / "data"
    factbook_builder().build(data / "corpora" / "factbook", countries=COUNTRIES, progress=False)
    ingest(str(data / "corpora" / "factbook" / "corpus.jsonl"), data_dir=data, name="factbook", progress=False)
    assert not default_probes(data).exists()
    main(["prepare", "--data-dir", str(data)])
    out = capsys.readouterr().out
    assert "probes: built" in out
    probes = default_probes(data)
    assert probes == probes_source(CollapseConfig(), data) and probes.is_file()
    assert sum(1 for _ in probes.open()) > 10
    main(["prepare", "--data-dir", str(data)])
    assert "corpus: present, index: present, probes: present" in capsys.readouterr().out


def test_ingest_reports_every_file_encoding_and_bad_lines(tmp_path: Path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    french = "Le caf\u00e9 co\u00fbte 5 \u20ac \u2013 cr\u00e8me br\u00fbl\u00e9e.\n"
    (docs / "notes.txt").write_bytes(french.encode("cp1252") * 5)
    (docs / "rows.jsonl").write_text('{"id": "a", "contents": "Tarsil mines copper."}\n{broken\n')
    (docs / "..odd.md").write_text("a dot-dot name")
    assert main(["ingest", str(docs), "--name", "docs", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "ingested 2 file(s), skipped 1" in out
    assert "read notes.txt as cp1252 (detected; not UTF-8)" in out
    assert "kept rows.jsonl but skipped 1 bad line(s): line 2: not JSON" in out
    assert "skipped ..odd.md: hidden file" in out
    report = json.loads((tmp_path / "data" / "indexes" / "docs" / "ingest_report.json").read_text())
    assert {f["path"] for f in report["ingested"]} | {f["path"] for f in report["skipped"]} == {
        "notes.txt", "rows.jsonl", "..odd.md"}


def test_prepare_reseals_an_index_built_before_manifests_were_sealed(tmp_path: Path, capsys):
    import os

    from rag_bench.cli.corpus import ingest
    from rag_bench.index.store import current_version, load_index
    from tests.test_probes_build import COUNTRIES, factbook_builder

    data = tmp_path / "data"
    factbook_builder().build(data / "corpora" / "factbook", countries=COUNTRIES, progress=False)
    ingest(str(data / "corpora" / "factbook" / "corpus.jsonl"), data_dir=data, name="factbook", progress=False)
    index = data / "indexes" / "factbook"
    version = current_version(index)
    legacy = version.with_name(version.name.split("-manifest-")[0])  # as rag-bench named versions before
    os.replace(version, legacy)
    (index / "CURRENT").write_text(legacy.name + "\n")
    main(["prepare", "--data-dir", str(data)])
    out = capsys.readouterr().out
    assert "index: re-sealed" in out
    report = json.loads((index / "ingest_report.json").read_text())
    assert report["chunks"]["embedded"] == 0 and report["chunks"]["kept"] == report["chunks"]["total"]
    assert load_index(index).manifest["count"] == report["chunks"]["total"]
