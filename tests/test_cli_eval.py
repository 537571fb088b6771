"""`rag-bench ask`: the chat's default model, many questions on one load, and empty questions refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_bench.cli import main
from rag_bench.corpus.load import load_corpus
from rag_bench.index.store import update_index


@pytest.mark.parametrize("argv, what", [(["ask", ""], "question"), (["ask", "   \t "], "question"),
                                        (["search", " "], "query"), (["search", ""], "query")])
def test_an_empty_question_or_query_is_one_line(tmp_path: Path, capsys, argv: list[str], what: str):
    assert main([*argv, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the {what} is empty") and err.count("\n") == 1
    assert not (tmp_path / "models").exists()  # refused before any model or index is touched


def test_questions_file_that_is_blank_is_refused(tmp_path: Path, capsys):
    (tmp_path / "qs.txt").write_text("\n  \n")
    assert main(["ask", "--questions", str(tmp_path / "qs.txt"), "--data-dir", str(tmp_path)]) == 2
    assert "qs.txt: no questions in it" in capsys.readouterr().err


def test_ask_defaults_to_the_chats_model_and_answers_a_file_of_questions_on_one_load(
        smollm2_data_dir: Path, tmp_path: Path, capsys, monkeypatch, embeddings):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in [("tuvalu", "Tuvalu | Government | Capital: Funafuti"),
                       ("kenya", "Kenya | Government | Capital: Nairobi"),
                       ("peru", "Peru | Geography | Area - total: 1,285,216 sq km"),
                       ("oman", "Oman | People and Society | Languages: Arabic (official), English")]:
        (docs / f"{name}.txt").write_text(text)
    update_index(tmp_path / "idx", load_corpus(docs, progress=False), embeddings=embeddings, progress=False)
    (tmp_path / "qs.txt").write_text("What is the capital of Tuvalu?\n\n   \nWhat is the capital of Kenya?\n")
    from rag_bench.models import resolve as resolve_module

    loads = []
    real = resolve_module.LM.load
    monkeypatch.setattr(resolve_module.LM, "load", lambda *a, **kw: loads.append(a) or real(*a, **kw))
    code = main(["ask", "--questions", str(tmp_path / "qs.txt"), "--mode", "grounded", "--index",
                 str(tmp_path / "idx"), "-k", "1", "--data-dir", str(smollm2_data_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert len(loads) == 1  # one model load for both questions
    assert out.count("question: ") == 2 and out.count("grounded:") == 2 and out.count("(smollm2-135m · ") == 2
    assert out.count("sources of the grounded answer") == 2 and "Funafuti" in out, out
    # --mode both (the default): closed-book and the dev-chosen reader of an instruct model, a scored passage span
    code = main(["ask", "What is the capital of Tuvalu?", "--index", str(tmp_path / "idx"), "-k", "2",
                 "--data-dir", str(smollm2_data_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "closed-book:" in out and "grounded (scored): Funafuti\n" in out, out
