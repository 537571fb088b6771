"""Will a model fit: parameter counts read from weight headers, and a refusal naming the folder."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from rag_bench.config import ModelConfig
from rag_bench.lm import LM, ModelLoadError
from rag_bench.models.memory import available_bytes, check_folder_fits, folder_parameters
from rag_bench.models.scratch import train_tokenizer


def _save_tiny(path: Path) -> LM:
    tok = train_tokenizer(["Algeria | Government | Capital: Algiers"] * 20, vocab_size=300)
    lm = LM.build(ModelConfig.preset("tiny"), tok, device="cpu")
    lm.save(path)
    return lm


def test_the_header_count_matches_the_model(tmp_path: Path):
    lm = _save_tiny(tmp_path / "m")
    assert folder_parameters(tmp_path / "m") == lm.num_parameters
    assert check_folder_fits(tmp_path / "m") == lm.num_parameters
    assert available_bytes() > 0


def test_a_folder_declaring_more_than_memory_is_refused_before_loading(tmp_path: Path):
    _save_tiny(tmp_path / "m")
    with pytest.raises(ModelLoadError, match=r"^.*/m: too large for memory; needs about .* GiB to load, "):
        check_folder_fits(tmp_path / "m", available=1000)
    # a header that declares a 4 TiB tensor: refused from the header alone, with the machine's real memory
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 0]}}).encode()
    (tmp_path / "m" / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ModelLoadError, match=r"too large for memory; needs about 5120\.0 GiB"):
        check_folder_fits(tmp_path / "m")


def test_a_corrupt_weight_header_is_one_line(tmp_path: Path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: not a readable safetensors file"):
        folder_parameters(tmp_path / "m")
