"""The Chat tab's model picker: the default answers, a run's generation only when picked, and the page says
when a picked model cannot serve the active corpus."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_rwkv_gguf

from rag_bench.app.picker import NATURAL_EXAMPLES, PREFIX_EXAMPLES, corpus_warning, hints, model_choices, why_line
from rag_bench.app.state import AppConfig


def make_data(root: Path) -> Path:
    data = root / "data"
    for run, corpus in (("quick-factbook", None), ("quick-acme", "acme")):
        model = data / "runs" / run / "gen_0" / "model"
        model.mkdir(parents=True)
        (model / "config.json").write_text("{}")
        if corpus:
            (data / "runs" / run / "config.json").write_text(json.dumps({"name": "quick", "corpus": "acme"}))
    converted = data / "models" / "converted" / "my-model-0123456789ab"
    converted.mkdir(parents=True)
    (converted / "config.json").write_text("{}")
    return data


def test_the_picker_lists_the_default_first_then_converted_models_then_generations(tmp_path: Path):
    data = make_data(tmp_path)
    choices = model_choices(AppConfig(data_dir=str(data)))
    assert choices[0] == ("smollm2-135m · pretrained, the default", "smollm2-135m")
    values = [value for _, value in choices]
    assert values[1:] == ["models/converted/my-model-0123456789ab", "runs/quick-acme/gen_0/model",
                          "runs/quick-factbook/gen_0/model"]
    assert "trained here" in choices[-1][0] and "your GGUF" in choices[1][0]


def test_a_generation_trained_on_factbook_lines_says_it_cannot_serve_another_corpus_or_a_question(tmp_path: Path):
    data = make_data(tmp_path)
    factbook_gen = data / "runs" / "quick-factbook" / "gen_0" / "model"
    other = corpus_warning(factbook_gen, "acme", "What is the daily meal allowance?")
    assert "trained here on the `factbook` corpus only" in other and "never saw `acme`" in other
    natural = corpus_warning(factbook_gen, "factbook", "What is the capital of Tuvalu?")
    assert "record lines only" in natural and "cannot read a natural question" in natural
    assert corpus_warning(factbook_gen, "factbook", "Tuvalu | Government | Capital:") == ""
    acme_gen = data / "runs" / "quick-acme" / "gen_0" / "model"
    assert corpus_warning(acme_gen, "acme") == "" and "`acme` corpus only" in corpus_warning(acme_gen, "factbook")
    pretrained = data / "models" / "pretrained" / "smollm2-135m"
    assert corpus_warning(pretrained, "acme", "What is the daily meal allowance?") == ""
    assert "you picked it" in why_line(factbook_gen) and "it is the default" in why_line(pretrained)


def test_hints_fit_the_model(tmp_path: Path):
    data = make_data(tmp_path)
    placeholder, examples, label = hints(data / "models" / "pretrained" / "smollm2-135m")
    assert placeholder == NATURAL_EXAMPLES[0] and examples == NATURAL_EXAMPLES and "natural questions" in label
    placeholder, examples, label = hints(data / "runs" / "quick-factbook" / "gen_0" / "model")
    assert placeholder == PREFIX_EXAMPLES[0] and examples == PREFIX_EXAMPLES and "record prefix" in label


def test_a_gguf_given_to_the_chat_goes_through_the_same_conversion_and_one_line_errors(tmp_path: Path):
    import pytest

    from rag_bench.app.chat import resolve_model
    from rag_bench.app.state import UserError

    data = make_data(tmp_path)
    path = data / "uploads" / "rwkv.gguf"  # an architecture transformers cannot load: one line naming it
    path.parent.mkdir(parents=True)
    write_rwkv_gguf(path)
    cfg = AppConfig(data_dir=str(data), default_model="uploads/rwkv.gguf")
    with pytest.raises(UserError, match=r"rwkv\.gguf: GGUF architecture 'rwkv6' cannot be loaded by transformers"):
        resolve_model(cfg, None, None)  # the server's --model is the chat's default
    with pytest.raises(UserError, match=r"not a model folder .* nor a \.gguf file"):
        resolve_model(cfg, None, None, "runs")
