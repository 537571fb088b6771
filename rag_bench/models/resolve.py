"""One way in for every command that takes a model: a registry name or a model folder, checked before loading.

    rag-bench train --base-model smollm2-135m       rag-bench eval --model smollm2-135m ...
    rag-bench ask "What is the capital of Kenya?" --model smollm2-135m
    rag-bench ask "What is the capital of Kenya?" --model path/to/model.gguf    # converted once into the data dir

    from rag_bench.models import load_model, resolve_model
    folder = resolve_model("smollm2-135m", data_dir="data")    # data/models/pretrained/smollm2-135m, converted once
    lm = load_model("smollm2-135m", data_dir="data")            # an LM; any local HF folder works the same
    lm = load_model("data/runs/quick/gen_0/model")              # models trained here are unchanged

A registry name is converted on first use into ``DATA_DIR/models/pretrained/<name>/`` (a folder of that name in
the working directory is reached as ``./name``). A ``.gguf`` file is converted once into
``DATA_DIR/models/converted/<stem>-<sha256[:12]>/`` (any architecture this transformers reads from GGUF; another
is one line naming it). Bad input is one ModelLoadError line naming the file.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rag_bench.lm import LM, ModelLoadError
from rag_bench.models.convert import PRETRAINED_INFO_FILE, Progress, convert_gguf, convert_gguf_file
from rag_bench.models.memory import check_folder_fits
from rag_bench.models.registry import REGISTRY, known_names
from rag_bench.records import read_json, sha256_file

PRETRAINED_SUBDIR = Path("models") / "pretrained"  # under the data dir
CONVERTED_SUBDIR = Path("models") / "converted"  # GGUF files given by path, one folder per file content
_convert_lock = threading.Lock()  # the chat's threads convert once, not once each


def pretrained_dir(data_dir: str | Path, name: str) -> Path:
    return Path(data_dir) / PRETRAINED_SUBDIR / name


def converted_dir(data_dir: str | Path, gguf_file: Path) -> Path:
    """Where a GGUF file given by path is converted: its name and the start of its sha256 (a new file, a new folder)."""
    return Path(data_dir) / CONVERTED_SUBDIR / f"{gguf_file.stem}-{sha256_file(gguf_file)[:12]}"


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
    if path.is_file() and path.suffix.lower() == ".gguf":
        folder = converted_dir(data_dir, path)
        with _convert_lock:
            if not is_converted(folder):
                convert_gguf_file(path, folder, info={"name": path.stem, "source": str(path.resolve())},
                                  progress=progress)
        return folder
    if path.exists():
        raise ModelLoadError(f"{path}: not a model folder (a file; give a folder, a .gguf file or one of: "
                             f"{known_names()})")
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
