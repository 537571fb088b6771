"""One way in for every command that takes a model: a registry name or a model folder, checked before loading.

    rag-bench train --base-model smollm2-135m       rag-bench eval --model smollm2-135m ...
    rag-bench ask "What is the capital of Kenya?" --model smollm2-135m

    from rag_bench.models import load_model, resolve_model
    folder = resolve_model("smollm2-135m", data_dir="data")    # data/models/pretrained/smollm2-135m, converted once
    lm = load_model("smollm2-135m", data_dir="data")            # an LM; any local HF folder works the same
    lm = load_model("data/runs/quick/gen_0/model")              # models trained here are unchanged

A registry name is converted on first use into ``DATA_DIR/models/pretrained/<name>/`` (a folder of that name in
the working directory is reached as ``./name``). Bad input is one ModelLoadError line naming the file.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rag_bench.lm import LM, ModelLoadError
from rag_bench.models.convert import PRETRAINED_INFO_FILE, Progress, convert_gguf
from rag_bench.models.memory import check_folder_fits
from rag_bench.models.registry import REGISTRY, known_names
from rag_bench.records import read_json

PRETRAINED_SUBDIR = Path("models") / "pretrained"  # under the data dir
_convert_lock = threading.Lock()  # the chat's threads convert once, not once each


def pretrained_dir(data_dir: str | Path, name: str) -> Path:
    return Path(data_dir) / PRETRAINED_SUBDIR / name


def is_converted(folder: Path) -> bool:
    return (folder / PRETRAINED_INFO_FILE).is_file() and (folder / "config.json").is_file()


def resolve_model(spec: str | Path, data_dir: str | Path = "data", *, progress: Progress = print) -> Path:
    """The model folder ``spec`` names: a registry name (converted on first use) or an existing folder."""
    text = str(spec).strip()
    if text in REGISTRY and not isinstance(spec, Path):
        folder = pretrained_dir(data_dir, text)
        with _convert_lock:
            if not is_converted(folder):
                convert_gguf(REGISTRY[text], folder, progress=progress)
        return folder
    path = Path(text)
    if path.is_dir():
        return path
    if path.exists():
        raise ModelLoadError(f"{path}: not a model folder (a file; give a folder or one of: {known_names()})")
    if text in REGISTRY:  # a Path that spells a registry name
        return resolve_model(text, data_dir, progress=progress)
    raise ModelLoadError(f"{text}: not a model folder (no such directory) nor a known model name "
                         f"(known: {known_names()})")


def load_model(spec: str | Path, data_dir: str | Path = "data", *, device=None, progress: Progress = print,
               available: int | None = None) -> LM:
    """``resolve_model``, a memory check from the weights' headers (``available`` overrides), then ``LM.load``."""
    folder = resolve_model(spec, data_dir, progress=progress)
    if not (folder / "config.json").is_file():
        return LM.load(folder, device=device)  # its one-line error names what is missing
    check_folder_fits(folder, available=available)
    return LM.load(folder, device=device)


def pretrained_info(folder: str | Path) -> dict | None:
    """What a converted folder came from (name, package, licence, chat), or None for other folders."""
    path = Path(folder) / PRETRAINED_INFO_FILE
    return read_json(path) if path.is_file() else None
