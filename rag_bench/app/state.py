"""What the web UI shares between its tabs: its config, safe paths, run discovery, model and index caches.

    from rag_bench.app.state import App, AppConfig
    app = App(AppConfig(data_dir="data"))
    lm = app.lm("data/runs/quick-factbook/gen_0/model")       # loaded once, then cached
    retriever = app.retriever("factbook", "hybrid")          # the index is loaded once per version

Every path a user names goes through ``resolve_inside``: it is resolved (symlinks followed) and must stay
inside an allowed root, so the page can never read a file outside the data dir or the upload root.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from rag_bench.config import ConfigBase, ConfigError, CorpusConfig

GEN_DIR = re.compile(r"^gen_(\d+)$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SCANNED_FILES = 100_000  # a folder to ingest with more entries than this is refused


class UserError(ValueError):
    """A problem the user can fix; the UI shows the message as it is (as a gr.Error)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AppConfig(ConfigBase):
    """How the web UI is served and what it may touch."""

    data_dir: str = "data"  # corpora, indexes, runs and the UI's own files live here
    corpus: str = "factbook"  # the index chat and new runs use until the user switches corpus
    upload_root: str = ""  # uploads are kept, and server folders may be named, only under here ("" = DATA_DIR/uploads)
    max_question_chars: int = 500  # longer questions are refused
    max_upload_mb: float = 50.0  # per uploaded file (also gradio's max_file_size)
    upload_extensions: tuple[str, ...] = CorpusConfig().extensions  # file types the Corpus tab accepts
    concurrency: int = 2  # model calls served at once; more requests wait in the queue
    max_models: int = 4  # generations kept loaded (least recently used leaves first)
    collapse_command: tuple[str, ...] = (sys.executable, "-m", "rag_bench", "collapse")  # runs an experiment
    prepare_command: tuple[str, ...] = (sys.executable, "-m", "rag_bench", "prepare")  # builds corpus and index
    autostart_preset: str = "quick"  # the experiment first start runs (tests run `tiny` through the same path)
    default_model: str = ""  # the chat's default (ui.py --model): a registry name, model folder or .gguf; "": smollm2

    def __post_init__(self) -> None:
        if self.max_question_chars < 1 or self.max_upload_mb <= 0 or self.concurrency < 1 or self.max_models < 1:
            raise ConfigError("max_question_chars, max_upload_mb, concurrency and max_models must be positive")
        if not NAME.match(self.corpus):
            raise ConfigError(f"corpus must be a plain name (letters, digits, _ . -), got {self.corpus!r}")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def runs_path(self) -> Path:
        return self.data_path / "runs"

    @property
    def indexes_path(self) -> Path:
        return self.data_path / "indexes"

    @property
    def ui_path(self) -> Path:
        """The UI's own files: console logs of the processes it starts, and how to resume them."""
        return self.data_path / "ui"

    @property
    def upload_path(self) -> Path:
        return Path(self.upload_root).resolve() if self.upload_root else self.data_path / "uploads"


# ---------------------------------------------------------------------------------------
# Paths a user names


def check_name(name: str, what: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise UserError(f"{what} {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
                        "starting with a letter or digit")
    return name


def resolve_inside(root: Path, user_path: str, what: str = "path") -> Path:
    """``user_path`` (absolute or relative to ``root``) with symlinks resolved; refused unless inside ``root``."""
    text = (user_path or "").strip()
    if not text:
        raise UserError(f"Name a {what} inside {root}.")
    root = root.resolve()
    raw = Path(text).expanduser()
    resolved = (raw if raw.is_absolute() else root / raw).resolve()
    if not resolved.is_relative_to(root):
        raise UserError(f"{text}: outside the allowed folder {root}; name a {what} inside it")
    return resolved


def check_tree_inside(folder: Path, root: Path) -> int:
    """Count the files under ``folder``; refuse a symlink anywhere in it that leads outside ``root``."""
    root = root.resolve()
    seen: set[str] = set()
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames.clear()
            continue
        seen.add(real)
        for name in dirnames + filenames:
            entry = Path(dirpath) / name
            if not entry.resolve().is_relative_to(root):
                raise UserError(f"{entry}: a link that leads outside {root}; remove it or copy the file in")
        count += len(filenames)
        if count > MAX_SCANNED_FILES:
            raise UserError(f"{folder}: more than {MAX_SCANNED_FILES} files; name a smaller folder")
    return count


# ---------------------------------------------------------------------------------------
# Runs and generations on disk


def read_json_or_none(path: Path) -> Any:
    """A JSON file, or None when it is missing or half-written by another process."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_runs(runs_path: Path) -> list[str]:
    """Run ids, newest first."""
    if not runs_path.is_dir():
        return []
    runs = [p for p in runs_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [p.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


def _gen_dirs(run_dir: Path, depth: int = 3) -> list[Path]:
    """gen_<k> folders at most ``depth`` levels down (a run may keep one subfolder per strategy)."""
    found, level = [], [run_dir]
    for _ in range(depth):
        nxt = []
        for folder in level:
            for child in sorted(folder.iterdir()) if folder.is_dir() else []:
                if not child.is_dir() or child.name.startswith("."):
                    continue
                if GEN_DIR.match(child.name):
                    found.append(child)
                elif child.name not in ("report", "model", "eval"):
                    nxt.append(child)
        level = nxt
    return found


def gen_label(run_dir: Path, gen_dir: Path) -> tuple[str, str, int]:
    """(label, strategy folder or "", generation) of a gen_<k> folder: ("replace/gen_2", "replace", 2)."""
    rel = gen_dir.relative_to(run_dir)
    strategy = "/".join(rel.parts[:-1])
    return rel.as_posix(), strategy, int(GEN_DIR.match(gen_dir.name).group(1))


def generations(run_dir: Path) -> dict[str, Path]:
    """Label -> model folder for each generation of a run whose model has been saved, in generation order."""
    rows = []
    for gen_dir in _gen_dirs(run_dir):
        if (gen_dir / "model" / "config.json").is_file():
            label, strategy, number = gen_label(run_dir, gen_dir)
            rows.append((strategy, number, label, gen_dir / "model"))
    return {label: path for _, _, label, path in sorted(rows)}


def results_files(run_dir: Path) -> list[tuple[str, int, Path]]:
    """(strategy folder, generation, results.json) for each evaluated generation of a run."""
    rows = []
    for gen_dir in _gen_dirs(run_dir):
        if (gen_dir / "eval" / "results.json").is_file():
            _, strategy, number = gen_label(run_dir, gen_dir)
            rows.append((strategy, number, gen_dir / "eval" / "results.json"))
    return sorted(rows)


def list_indexes(indexes_path: Path) -> list[str]:
    if not indexes_path.is_dir():
        return []
    return sorted(p.name for p in indexes_path.iterdir() if (p / "CURRENT").is_file())


# ---------------------------------------------------------------------------------------
# Loaded models and indexes


class App:
    """The caches behind the handlers: models by folder, indexes by version, one generation at a time per model."""

    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._stores: dict[str, Any] = {}
        self._retrievers: dict[tuple[str, str], Any] = {}
        self._embedders: dict[tuple[str, Any], Any] = {}  # by (backend, dtype) of an index
        self._corpus_bm25: tuple[tuple[str, int], Any] | None = None  # (corpus file and stamp, its bm25 retriever)
        self._load_lock = threading.Lock()

    def lm(self, model_dir: str | Path) -> tuple[Any, threading.Lock]:
        """(LM, its lock) for ``model_dir``, reloaded when the folder was rewritten since.

        Calls into one model are serialized by its lock: the cores are few, and a model's generate keeps
        per-call state.
        """
        from rag_bench.models import load_model  # LM.load after a memory check from the weights' headers

        model_dir = Path(model_dir)
        stamp = (model_dir / "config.json").stat().st_mtime_ns if (model_dir / "config.json").is_file() else 0
        key = f"{model_dir.resolve()}@{stamp}"
        with self._load_lock:
            if key not in self._models:
                self._models[key] = (load_model(model_dir), threading.Lock())
                while len(self._models) > self.cfg.max_models:
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return self._models[key]

    def index_dir(self, corpus: str) -> Path:
        return self.cfg.indexes_path / check_name(corpus, "corpus")

    def has_dense_index(self, corpus: str) -> bool:
        """Whether ``corpus`` has a live index version (FAISS beside bm25), not only its corpus file."""
        from rag_bench.index.store import current_version

        return current_version(self.index_dir(corpus)) is not None

    def retriever(self, corpus: str, mode: str):
        """A retriever over the live version of ``corpus``'s index; a new version is picked up on the next call."""
        from rag_bench.config import IndexConfig
        from rag_bench.index.embedding import load_embedder
        from rag_bench.index.retrieve import make_retriever
        from rag_bench.index.store import current_version, load_index

        index_dir = self.index_dir(corpus)
        version = current_version(index_dir)
        if version is None:
            return self._corpus_retriever(corpus, mode)
        with self._load_lock:
            key = (str(version), mode)
            if key not in self._retrievers:
                if str(version) not in self._stores:
                    stale = [v for v in self._stores if Path(v).parent == version.parent]
                    for v in stale:  # an older version of this index: free its memory
                        del self._stores[v]
                    self._retrievers = {k: r for k, r in self._retrievers.items() if k[0] not in stale}
                    manifest = read_json_or_none(version / "manifest.json") or {}
                    # queries are embedded as the index's chunks were: same backend, same precision
                    kind = (manifest.get("backend", "torch"), manifest.get("dtype"))
                    if kind not in self._embedders:
                        self._embedders[kind] = load_embedder(IndexConfig(embedder_cache=str(
                            self.cfg.data_path / "models" / "embedders")), backend=kind[0], dtype=kind[1])
                    self._stores[str(version)] = load_index(index_dir, embeddings=self._embedders[kind]).store
                self._retrievers[key] = make_retriever(self._stores[str(version)], mode=mode)
            return self._retrievers[key]

    def _corpus_retriever(self, corpus: str, mode: str):
        """bm25 over the corpus file while its dense index is being built (first start builds the Factbook's)."""
        from rag_bench.app.bm25 import corpus_bm25

        corpus_file = self.cfg.data_path / "corpora" / check_name(corpus, "corpus") / "corpus.jsonl"
        if not corpus_file.is_file():
            raise UserError(f"The corpus {corpus!r} has no index yet: build it in the Corpus tab "
                            "(the Factbook index is built at first start; see the banner)")
        if mode != "bm25":
            raise UserError(f"The dense index of {corpus!r} is still being built (see the banner); {mode} retrieval "
                            "switches on when it is ready. Choose bm25 meanwhile.")
        key = (str(corpus_file), corpus_file.stat().st_mtime_ns)
        with self._load_lock:
            if self._corpus_bm25 is None or self._corpus_bm25[0] != key:
                self._corpus_bm25 = (key, corpus_bm25(corpus_file))
            return self._corpus_bm25[1]
