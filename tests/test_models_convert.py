"""GGUF to safetensors: the real SmolLM2 converted once, its weights equal to the GGUF's, and bad files refused."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors import safe_open

from rag_bench.lm import LM, ModelLoadError
from rag_bench.models.convert import PRETRAINED_INFO_FILE, convert_gguf, gguf_parameters
from rag_bench.models.registry import PretrainedSpec, gguf_path, lookup
from rag_bench.models.resolve import pretrained_dir
from rag_bench.records import read_json

SMOL = lookup("smollm2-135m")


def _package_with(tmp_path: Path, monkeypatch, content: bytes) -> PretrainedSpec:
    """A real importable package folder holding ``content`` as its GGUF file, and a registry entry for it."""
    package = tmp_path / "pkgs" / "broken_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.gguf").write_bytes(content)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    return dataclasses.replace(SMOL, name="broken", module="broken_gguf_pkg", filename="model.gguf")


@pytest.mark.parametrize("content, problem", [
    (b"not a gguf file at all", r"corrupt GGUF file \(starts with b'not ', not b'GGUF'\)"),
    (None, r"corrupt GGUF file \("),  # the real file cut at 1 MB
])
def test_a_corrupt_gguf_is_one_line_and_the_data_dir_stays_as_it_was(tmp_path: Path, monkeypatch, content, problem):
    content = gguf_path(SMOL).read_bytes()[:1_000_000] if content is None else content
    spec = _package_with(tmp_path, monkeypatch, content)
    data = tmp_path / "data"
    (data / "models" / "pretrained").mkdir(parents=True)
    with pytest.raises(ModelLoadError) as err:
        convert_gguf(spec, pretrained_dir(data, "broken"))
    message = str(err.value)
    assert message.startswith(str(tmp_path / "pkgs" / "broken_gguf_pkg" / "model.gguf") + ": ") and "\n" not in message
    assert re.search(problem, message), message
    assert list((data / "models" / "pretrained").iterdir()) == []


def test_a_model_too_large_for_memory_is_refused_before_converting(tmp_path: Path):
    with pytest.raises(ModelLoadError, match=r"SmolLM2-135M-Instruct\.Q4_1\.gguf: too large for memory; needs "
                                             r"about 1\.5 GiB to convert, 0\.0 GiB available"):
        convert_gguf(SMOL, tmp_path / "smol", available=1000)
    assert list(tmp_path.iterdir()) == []


def test_the_converted_folder_holds_the_gguf_weights_tokenizer_and_chat_template(smollm2_data_dir: Path):
    folder = pretrained_dir(smollm2_data_dir, "smollm2-135m")
    info = read_json(folder / PRETRAINED_INFO_FILE)
    assert (info["name"], info["licence"], info["chat"], info["parameters"]) == (
        "smollm2-135m", "Apache-2.0", True, gguf_parameters(gguf_path(SMOL)))
    assert {"model.safetensors", "tokenizer.json", "chat_template.jinja", "config.json"} <= {
        p.name for p in folder.iterdir()}
    assert "quantization_config" not in read_json(folder / "config.json")
    tensors = {t.name: t for t in gguf.GGUFReader(gguf_path(SMOL)).tensors}
    with safe_open(folder / "model.safetensors", "np") as saved:
        for gguf_name, name in [("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
                                ("blk.29.ffn_up.weight", "model.layers.29.mlp.up_proj.weight")]:
            t = tensors[gguf_name]
            assert np.array_equal(saved.get_tensor(name), gguf.quants.dequantize(t.data, t.tensor_type))


def test_the_converted_model_round_trips_through_save_and_load(smollm2, tmp_path: Path):
    smollm2.save(tmp_path / "again")
    again = LM.load(tmp_path / "again", device="cpu")
    assert again.tokenizer.get_vocab() == smollm2.tokenizer.get_vocab()
    assert again.tokenizer.chat_template == smollm2.tokenizer.chat_template
    assert (again.tokenizer.eos_token, again.tokenizer.bos_token) == ("<|im_end|>", "<|im_start|>")
    saved, reloaded = smollm2.model.state_dict(), again.model.state_dict()
    assert saved.keys() == reloaded.keys() and all(torch.equal(saved[k], reloaded[k]) for k in saved)
