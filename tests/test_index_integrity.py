"""Tamper cases: the integrity check never takes the manifest's word for itself; each refusal is one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rag_bench.corpus.load import load_corpus
from rag_bench.index.integrity import IndexStoreError
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import current_version, load_index, update_index
from rag_bench.records import sha256_file
from tests.conftest import PLANTED_FACT


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    (root / "notes.txt").write_text("The Orrin valley grows barley and rye.\n\nIts river floods each spring.")
    (root / "guide.md").write_text(f"# Lighthouses\n\n{PLANTED_FACT}\n")
    (root / "records.jsonl").write_text('{"id": "r1", "contents": "Tarsil is a copper mining town."}\n')
    return root


@pytest.fixture(scope="module")
def built(docs: Path, tmp_path_factory, embeddings) -> Path:
    """One index, built once; each test tampers with its own copy."""
    folder = tmp_path_factory.mktemp("built") / "idx"
    update_index(folder, load_corpus(docs, progress=False), embeddings=embeddings, progress=False)
    return folder


@pytest.fixture
def index(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built, tmp_path / "idx")
    return tmp_path / "idx"


def edit_manifest(index: Path, change, *, reseal: bool) -> None:
    """Edit the live manifest; with ``reseal`` also rename the version to the new digest and repoint CURRENT,
    as a tamperer who read this code would."""
    version = current_version(index)
    manifest = json.loads((version / "manifest.json").read_text())
    change(manifest)
    (version / "manifest.json").write_text(json.dumps(manifest))
    if reseal:
        reseal_version(index)


def reseal_version(index: Path) -> None:
    version = current_version(index)
    stamp = version.name.split("-manifest-")[0]
    sealed = version.with_name(f"{stamp}-manifest-{sha256_file(version / 'manifest.json')}")
    os.replace(version, sealed)
    (index / "CURRENT").write_text(sealed.name + "\n")


def refused(index: Path, embeddings, match: str) -> str:
    with pytest.raises(IndexStoreError, match=match) as caught:
        load_index(index, embeddings=embeddings)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_sealed_index_loads_and_names_its_manifest_digest(index: Path, embeddings):
    version = current_version(index)
    assert version.name.endswith(sha256_file(version / "manifest.json"))
    loaded = load_index(index, embeddings=embeddings)
    assert PLANTED_FACT in make_retriever(loaded.store, k=1).invoke("Quillmark lighthouse first lit")[0].page_content


def test_deleted_sha256_section_and_edited_docstore_are_refused(index: Path, embeddings):
    docstore = current_version(index) / "docstore.jsonl"
    docstore.write_text(docstore.read_text().replace("1873", "INJECTED 1999"))
    edit_manifest(index, lambda m: m.pop("sha256"), reseal=False)
    refused(index, embeddings, "manifest.json: altered since the build")
    reseal_version(index)  # even with the digest recomputed, a manifest without the section is refused
    refused(index, embeddings, "sha256 section must list exactly index.faiss, docstore.jsonl")


def test_partial_sha256_section_is_refused(index: Path, embeddings):
    edit_manifest(index, lambda m: m["sha256"].pop("docstore.jsonl"), reseal=True)
    refused(index, embeddings, r"sha256 section must list exactly .* \(it lists \['bm25.npz', 'index.faiss'\]\)")


@pytest.mark.parametrize("field, value", [("count", 99), ("chunker", {"chunk_size": 9}), ("corpus_hash", "0" * 64)])
def test_changed_manifest_fields_are_refused(index: Path, embeddings, field: str, value):
    edit_manifest(index, lambda m: m.__setitem__(field, value), reseal=False)
    refused(index, embeddings, "manifest.json: altered since the build")


@pytest.mark.parametrize("field, value, match", [("count", 99, "the manifest says 99"),
                                                 ("corpus_hash", "0" * 64, "corpus_hash")])
def test_resealed_manifest_fields_are_checked_against_the_data(index: Path, embeddings, field, value, match):
    edit_manifest(index, lambda m: m.__setitem__(field, value), reseal=True)
    refused(index, embeddings, match)


@pytest.mark.parametrize("pointer", ["../../other/versions/x", "/etc", "..", "a/../../b"])
def test_current_that_leaves_the_index_folder_is_refused(index: Path, tmp_path: Path, embeddings, pointer: str):
    other = tmp_path / "other" / "versions" / "x"
    other.mkdir(parents=True)
    (index / "CURRENT").write_text(pointer + "\n")
    refused(index, embeddings, "CURRENT: .* is not a version name")


def test_current_naming_a_link_out_of_the_folder_is_refused(index: Path, tmp_path: Path, embeddings):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    name = current_version(index).name
    (index / "versions" / "linked").symlink_to(outside)
    (index / "CURRENT").write_text("linked\n")
    refused(index, embeddings, "resolves outside")
    (index / "CURRENT").write_text(name + "\n")
    load_index(index, embeddings=embeddings)


def test_garbage_faiss_file_is_one_clear_line(index: Path, embeddings):
    version = current_version(index)
    (version / "index.faiss").write_bytes(b"this is not a FAISS index at all" * 8)
    edit_manifest(index, lambda m: m["sha256"].update({"index.faiss": sha256_file(version / "index.faiss")}),
                  reseal=True)
    message = refused(index, embeddings, "index.faiss: not a readable FAISS index")
    assert len(message) < 400
    # one plain sentence: none of FAISS's C++ internals (source file, function, assertion text)
    assert not any(word in message for word in ("faiss::", ".cpp", "Error in", "assertion", "fourcc"))


@pytest.mark.parametrize("where", ["folder", "version"])
def test_langchain_layout_is_refused_without_unpickling(index: Path, tmp_path: Path, embeddings, where: str):
    """FAISS.save_local's index.faiss + index.pkl: refused for the pickle, with how to rebuild; never opened."""
    marker = tmp_path / "pickle-ran"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."  # a pickle that runs a command
    if where == "folder":
        folder = tmp_path / "langchain_index"
        folder.mkdir()
        shutil.copy(current_version(index) / "index.faiss", folder / "index.faiss")
    else:  # copied into a version folder that CURRENT names
        folder = current_version(index)
    (folder / "index.pkl").write_bytes(payload)
    message = refused(folder if where == "folder" else index, embeddings, "LangChain FAISS folder")
    assert "could run any code" in message or "can run any code" in message
    assert "rag-bench ingest SOURCE_FOLDER" in message and "re-seal" not in message
    assert not marker.exists()


def test_unsealed_index_is_refused_then_resealed_by_ingest(index: Path, docs: Path, embeddings):
    version = current_version(index)
    legacy = version.with_name(version.name.split("-manifest-")[0])
    os.replace(version, legacy)
    (index / "CURRENT").write_text(legacy.name + "\n")
    refused(index, embeddings, "no manifest digest .* run `rag-bench ingest`")
    stats = update_index(index, load_corpus(docs, progress=False), embeddings=embeddings, progress=False)
    assert stats.embedded == 0 and stats.kept == stats.total
    assert "-manifest-" in current_version(index).name
    load_index(index, embeddings=embeddings)
