"""The rag-bench command: help for every subcommand, clear errors, and no network at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag_bench.cli import build_parser, main
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
