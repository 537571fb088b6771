"""Shared fixtures: tiny corpora written on the fly, and the real MiniLM embedder loaded once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PLANTED_FACT = "The Quillmark lighthouse on Varnholt island was lit for the first time in 1873."

# `make test` runs the suite on pytest-xdist workers (`-n 2 --dist loadgroup`): a single process kept one of two
# cores busy (101% CPU over the whole suite: imports, servers, subprocesses). Each file goes whole to one worker,
# so its module fixtures are built once; files that share one of these costly session fixtures share a worker too.
SHARED_FIXTURE_GROUPS = {"contaminate_data": "contaminate", "ray_cluster": "ray"}


def pytest_configure(config):
    """On an xdist worker, torch (and every process the tests start) gets its share of the cores, so that two
    workers on two cores do not run four OpenMP threads: oversubscribed OpenMP threads spin against each other (a
    torch run beside the single-process suite slowed both more than 2x)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        import torch

        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("OMP_NUM_THREADS", threads)
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config, items):
    """Group each test for ``--dist loadgroup``: by its file, or by the shared session fixture its file uses."""
    group_of_file: dict[Path, str] = {}
    for item in items:
        for fixture, group in SHARED_FIXTURE_GROUPS.items():
            if fixture in getattr(item, "fixturenames", ()):
                group_of_file[item.path] = group
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of_file.get(item.path, item.path.name)))


@pytest.fixture(scope="session", autouse=True)
def shared_embedder_export(tmp_path_factory):
    """One OpenVINO export of MiniLM for the whole session (and the processes it starts): without it every fresh
    DATA_DIR a test ingests into converts its own (3-7 s each, about twenty of them). The conversion itself and
    a cache of one's own are tested in tests/test_index_openvino_embedding.py, which unsets the variable."""
    from rag_bench.index.openvino_embedding import SHARED_CACHE_ENV

    if os.environ.get(SHARED_CACHE_ENV):  # a cache of the caller's own: keep it
        yield
        return
    os.environ[SHARED_CACHE_ENV] = str(tmp_path_factory.mktemp("embedders"))
    yield
    os.environ.pop(SHARED_CACHE_ENV, None)


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Each test ends with torch at the thread count it started with. ``run_collapse`` and ``rag-bench eval
    --threads`` set the process's count and keep it (right for a command, wrong in a shared test process): a test
    after them trained on one thread, slower, and a tiny model fitted on one thread differs from one fitted on two,
    which made a gpt2 test pass or fail by the order of the files."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def embeddings():
    """The packaged all-MiniLM-L6-v2, loaded once per test session."""
    from rag_bench.index.embedding import load_embedder

    return load_embedder()


def write_rwkv_gguf(path: Path) -> Path:
    """A tiny valid GGUF of an architecture transformers cannot load (rwkv6): the one-line refusal's input."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "rwkv6")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_docx(path: Path, paragraphs: list[str]) -> None:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    document.save(path)


def write_pdf(path: Path, pages: list[str]) -> None:
    """A minimal valid PDF with one text line per page, written by hand (no PDF writer needed)."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        content_id = 4 + 2 * i
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                       f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode())
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


@pytest.fixture
def mixed_corpus(tmp_path: Path) -> Path:
    """One small file of every supported type, with a planted fact in the markdown file."""
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("The Orrin valley grows barley and rye.\n\nIts river floods each spring.")
    (root / "sub" / "guide.md").write_text(f"# Lighthouses\n\n{PLANTED_FACT}\n")
    (root / "page.html").write_text("<html><head><title>Ports</title><script>var secret = 1;</script></head>"
                                    "<body><h1>Ports</h1><p>Brellin harbour handles timber exports.</p></body></html>")
    (root / "table.csv").write_text("town,population\nAskel,1200\nDorvik,5300\n")
    (root / "records.jsonl").write_text('{"id": "r1", "contents": "Tarsil is a copper mining town.", '
                                        '"metadata": {"topic": "mining"}}\n')
    write_pdf(root / "report.pdf", ["Page one talks about glaciers.", "Page two talks about fjords."])
    write_docx(root / "memo.docx", ["The memo approves the new ferry schedule."])
    return root


# ---------------------------------------------------------------------------------------
# A 3-country Factbook DATA_DIR, built once; the collapse, Ray-branch and contamination tests each copy it


FACTBOOK3_COUNTRIES = ["ck", "kt", "pc"]  # Cocos (Keeling) Islands, Christmas Island, Pitcairn: small, with probes


@pytest.fixture(scope="session")
def factbook3(tmp_path_factory) -> Path:
    """DATA_DIR with a 3-country Factbook corpus (20% held out), its index and its factbook probes. Never written
    to: a test that runs anything in it works in a copy (``copy_data_dir``)."""
    import importlib.util

    from rag_bench.cli import ingest
    from rag_bench.index.store import load_index
    from rag_bench.probes.build import make_probe_file

    def build(data: Path) -> None:
        spec = importlib.util.spec_from_file_location("factbook_build",
                                                      Path(__file__).resolve().parents[1] / "corpora/factbook/build.py")
        builder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(builder)
        builder.build(data / "corpora" / "factbook", countries=FACTBOOK3_COUNTRIES, heldout_fraction=0.2,
                      progress=False)
        ingest(str(data / "corpora" / "factbook" / "corpus.jsonl"), data_dir=data, name="factbook", progress=False)
        make_probe_file("factbook", load_index(data / "indexes" / "factbook").chunks,
                        data / "probes" / "factbook-factbook.jsonl",
                        facts_path=data / "corpora" / "factbook" / "facts.jsonl")

    return built_once(tmp_path_factory, "factbook3", build)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder ``build(folder)`` fills, built once per test run: under xdist the first worker to need it builds
    it under a lock in the folder the workers share, and the others wait and reuse it. Only for folders no test
    writes to."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's own folder, above each worker's
    folder, done = root / f"built-{name}", root / f"built-{name}.done"
    with FileLock(str(root / f"built-{name}.lock")):
        if not done.is_file():
            if folder.exists():  # a build that failed in another worker: start clean
                shutil.rmtree(folder)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def copy_data_dir(source: Path, dest: Path) -> Path:
    """``source`` copied to ``dest`` (a fresh folder): runs, caches and new indexes then go into the copy."""
    shutil.copytree(source, dest)
    return dest


# ---------------------------------------------------------------------------------------
# Contaminated indexes (rag_bench.contaminate): one tiny run, one contamination of it, shared by the test files


@pytest.fixture(scope="session")
def contaminate_data(tmp_path_factory, factbook3: Path) -> Path:
    """DATA_DIR with a 3-country Factbook (index, probes) and a tiny run of 2 generations of `replace`, no report."""
    import torch

    from rag_bench.collapse.run import run_collapse
    from rag_bench.config import collapse_preset

    data = copy_data_dir(factbook3, tmp_path_factory.mktemp("contaminate") / "data")
    threads = torch.get_num_threads()
    try:
        # no report at the run's end: no test reads this run's report, and drawing it took 9 s of the fixture's 16
        run_collapse(collapse_preset("tiny", strategies=("replace",), report=False), run_dir=data / "runs" / "tiny",
                     data_dir=data, echo=False)
    finally:
        torch.set_num_threads(threads)
    return data


@pytest.fixture(scope="session")
def tiny_seed_runs(contaminate_data: Path) -> list[Path]:
    """Seeds 0 and 1 of the tiny preset (replace and accumulate only, 2 generations, no report), on contaminate_data's
    Factbook: the real per-probe files that the primary comparisons and their published check read."""
    import torch

    from rag_bench.collapse.run import run_collapse
    from rag_bench.config import collapse_preset

    runs = [contaminate_data / "runs" / f"tiny-seed{seed}" for seed in (0, 1)]
    threads = torch.get_num_threads()
    try:
        for seed, run in enumerate(runs):
            run_collapse(collapse_preset("tiny", seed=seed, report=False, strategies=("replace", "accumulate")),
                         run_dir=run, data_dir=contaminate_data, echo=False)
    finally:
        torch.set_num_threads(threads)
    return runs


@pytest.fixture(scope="session")
def contaminated(contaminate_data: Path) -> Path:
    """`contaminate` of the tiny run: generation 1 writes, shares 0, 0.5 and 0.75, 6 probes, every defence (trusted
    source read 1 and 4 deep), k 1 and 3, the human-distractor control, fluency scored by generation 0."""
    from rag_bench.contaminate.config import ContaminateConfig
    from rag_bench.contaminate.run import contaminate

    cfg = ContaminateConfig(shares=(0.0, 0.5, 0.75), limit=6, ks=(1, 3), trusted_depths=(1, 4), fluency_scorer="gen0")
    return contaminate(contaminate_data / "runs" / "tiny", generation=1, cfg=cfg, data_dir=contaminate_data,
                       echo=None)
@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster (2 CPUs) per test session; yields its address for other drivers."""
    from rag_bench.distributed.cluster import connect

    ray = connect("local", num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


# ---------------------------------------------------------------------------------------
# The real pretrained SmolLM2 (rag_bench.models), converted once per session


@pytest.fixture(scope="session")
def smollm2_data_dir(tmp_path_factory) -> Path:
    """A data dir holding the real SmolLM2-135M-Instruct, converted from its packaged GGUF once per session
    (20-45 s on 2 cores); tests that need the model share it. Never written to."""
    from rag_bench.models import resolve_model

    return built_once(tmp_path_factory, "smollm2_data", lambda data: resolve_model("smollm2-135m", data))


@pytest.fixture(scope="session")
def smollm2(smollm2_data_dir: Path):
    """The real SmolLM2-135M-Instruct as an LM on the CPU, loaded once per session."""
    from rag_bench.models import load_model

    return load_model("smollm2-135m", smollm2_data_dir, device="cpu")


def overfit_lines(lm, lines: list[str], steps: int):
    """``lm`` trained in place until it has overfitted ``lines``, each a newline-ended document (a few seconds)."""
    import torch

    tokenizer = lm.tokenizer
    rows = [tokenizer(line + "\n")["input_ids"] for line in lines]  # each line a document, as in closed-book
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
    opt = torch.optim.AdamW(lm.model.parameters(), lr=1e-2)
    torch.manual_seed(0)  # dropout (gpt2's) draws from the global RNG: the same fit whichever tests ran before
    # one thread, whatever an earlier test left set (test_cli and run_collapse set 1 and keep it): the thread count
    # changes the floats, and after 60 steps the tiny gpt2 stopped its rows at newlines when fitted on 2 threads but
    # ran every row to the cap on 1 (so test_models_decode_loop's gpt2 cases failed in the full suite only)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    lm.model.train()
    try:
        for _ in range(steps):
            lm.model(input_ids=ids, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
    finally:
        torch.set_num_threads(threads)
    lm.model.eval()
    return lm
