"""The web UI: handlers as plain functions, the run queue over a stand-in collapse script, and the launched app
called with gradio_client (one client, then 8 at once).

    .venv/bin/pytest -q tests/test_ui.py
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag_bench.app.state import App, AppConfig, UserError, check_tree_inside, resolve_inside

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas 3 deprecations inside gradio

PLANTED_LINES = [
    "Varnholt | Government | Capital: Quillmark",
    "Varnholt | People and Society | Population - total: 48,200",
    "Orrinland | Government | Capital: Brellin",
    "Orrinland | Communications | Internet country code: .or",
]
PLANTED_PROSE = "The Quillmark lighthouse on Varnholt island was lit for the first time in 1873."

FAKE_COLLAPSE = r'''
"""A stand-in for `rag-bench collapse` that keeps the progress contract of docs/runs.md."""
import argparse, json, os, signal, sys, time
from pathlib import Path

p = argparse.ArgumentParser()
for flag in ("--preset", "--run-dir", "--data-dir", "--strategy", "--model-size", "--decoding", "--corpus", "--seed"):
    p.add_argument(flag, default="")
p.add_argument("--generations", type=int, default=0)
args = p.parse_args()
run = Path(args.run_dir)
run.mkdir(parents=True, exist_ok=True)
step = float(os.environ.get("FAKE_STEP_SECONDS", "0.05"))
saved = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
if not args.preset and not saved:
    sys.exit("give --preset NAME (or --run-dir of an existing run to resume it)")
strategy = args.strategy or saved.get("strategy") or "replace"
args.generations = args.generations or saved.get("generations") or 3

def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)

def status(state, g, fraction, stage, error=None):
    write(run / "status.json", {"state": state, "stage": stage, "generation": g, "generations": args.generations,
                                "strategy": strategy, "fraction": fraction, "eta_seconds": 7, "pid": os.getpid(),
                                "updated": "now", "error": error})

def log(text):
    with open(run / "log.txt", "a") as fh:
        fh.write(text + "\n")

def stop(signum, frame):
    status("cancelled", None, None, "cancelled")
    log("cancelled")
    sys.exit(143)

signal.signal(signal.SIGTERM, stop)
write(run / "config.json", {"preset": args.preset or saved.get("preset"), "strategy": strategy,
                            "generations": args.generations, "corpus": args.corpus or saved.get("corpus", "factbook")})
log(f"argv {' '.join(sys.argv[1:])}")
for g in range(args.generations):
    results = run / f"gen_{g}" / "eval" / "results.json"
    if results.exists():
        log(f"gen {g}: done before, skipped")
        continue
    status("running", g, g / args.generations, f"gen {g}: train")
    log(f"gen {g}: train")
    time.sleep(step)
    em = max(0.0, 0.5 - 0.1 * g)
    write(results, {"schema": "rag_bench.results/1", "metrics": {
        "closed": {"all": {"exact_match": {"value": em, "higher_is_better": True, "n": 10}}},
        "grounded": {"all": {"exact_match": {"value": 0.8, "higher_is_better": True, "n": 10}}}}})
(run / "report").mkdir(exist_ok=True)
(run / "report" / "report.html").write_text("<html><body>report</body></html>")
(run / "report" / "exact_match.csv").write_text("generation,value\n0,0.5\n")
status("done", args.generations - 1, 1.0, "done")
log("done")
'''

FAKE_PREPARE = r'''
import sys
from pathlib import Path
data = Path(sys.argv[sys.argv.index("--data-dir") + 1])
(data / "corpora" / "factbook").mkdir(parents=True, exist_ok=True)
(data / "corpora" / "factbook" / "corpus.jsonl").write_text("{}\n")
(data / "indexes" / "factbook").mkdir(parents=True, exist_ok=True)
(data / "indexes" / "factbook" / "CURRENT").write_text("v1\n")
(data / "probes").mkdir(parents=True, exist_ok=True)
(data / "probes" / "factbook-factbook.jsonl").write_text("{}\n")
print("prepared")
'''


# A real `rag-bench prepare` on 3 countries of the Factbook (same builder, ingest and probes): the corpus first,
# then, once the test creates the file named by argv[1], the dense index and the probes.
TINY_PREPARE = r'''
import importlib.util, sys, time
from pathlib import Path
release, data = Path(sys.argv[1]), Path(sys.argv[sys.argv.index("--data-dir") + 1])
spec = importlib.util.spec_from_file_location("factbook_build", Path.cwd() / "corpora" / "factbook" / "build.py")
builder = importlib.util.module_from_spec(spec)
spec.loader.exec_module(builder)
builder.build(data / "corpora" / "factbook", countries=["ck", "kt", "pc"], heldout_fraction=0.2, progress=False)
print("corpus built; waiting for the test before indexing", flush=True)
while not release.exists():
    time.sleep(0.1)
from rag_bench.cli import ingest
from rag_bench.cli.eval import build_probes
ingest(str(data / "corpora" / "factbook" / "corpus.jsonl"), data_dir=data, name="factbook", progress=False)
print(build_probes(data)[1], flush=True)
'''


def write_results(gen_dir: Path, closed: float, grounded: float) -> None:
    metrics = {mode: {bucket: {"exact_match": {"value": value, "higher_is_better": True, "n": 4},
                               "token_f1": {"value": value / 2, "higher_is_better": True, "n": 4}}
                      for bucket in ("all", "tail")} for mode, value in (("closed", closed), ("grounded", grounded))}
    (gen_dir / "eval").mkdir(parents=True, exist_ok=True)
    (gen_dir / "eval" / "results.json").write_text(json.dumps({"schema": "rag_bench.results/1", "metrics": metrics}))


def make_tiny_data(root: Path) -> Path:
    """A data dir with a planted 'factbook' index, a facts file and a run 'r' of two tiny generations."""
    from rag_bench.cli import ingest
    from rag_bench.config import ModelConfig
    from rag_bench.lm import LM
    from rag_bench.models.scratch import train_tokenizer

    data = root / "data"
    planted = root / "planted"
    planted.mkdir(parents=True)
    for country in ("Varnholt", "Orrinland"):
        lines = [line for line in PLANTED_LINES if line.startswith(country)]
        (planted / f"{country.lower()}.txt").write_text("\n\n".join(lines) + "\n")
    (planted / "lighthouse.md").write_text(f"# Lighthouses\n\n{PLANTED_PROSE}\n")
    for i, topic in enumerate(("barley and rye", "timber exports", "copper mines", "ferry schedules")):
        (planted / f"notes_{i}.txt").write_text(f"The valley economy depends on {topic}.\n")
    ingest(str(planted), data_dir=data, name="factbook", progress=False)
    corpus_dir = data / "corpora" / "factbook"
    corpus_dir.mkdir(parents=True)
    (corpus_dir / "corpus.jsonl").write_text(json.dumps({"id": "d1", "contents": PLANTED_LINES[0]}) + "\n")
    with open(corpus_dir / "facts.jsonl", "w") as fh:
        for line in PLANTED_LINES:
            prefix, value = line.split(": ", 1)
            country, section, field = prefix.split(" | ")
            fh.write(json.dumps({"country": country, "section": section, "field": field, "value": value,
                                 "record_prefix": prefix + ":"}) + "\n")
    tokenizer = train_tokenizer(PLANTED_LINES * 20 + [PLANTED_PROSE] * 5, vocab_size=300)
    for generation, (closed, grounded) in enumerate(((0.5, 0.9), (0.3, 0.85))):
        gen_dir = data / "runs" / "r" / f"gen_{generation}"
        LM.build(ModelConfig.preset("tiny"), tokenizer, seed=generation).save(gen_dir / "model")
        write_results(gen_dir, closed, grounded)
    (data / "runs" / "r" / "report").mkdir()
    (data / "runs" / "r" / "report" / "report.html").write_text("<html><body>report</body></html>")
    return data


def fake_command(folder: Path, name: str, source: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{name}.py"
    script.write_text(source)
    return [sys.executable, str(script)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_data(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def app(tiny_data) -> App:
    return App(AppConfig(data_dir=str(tiny_data)))


# ---------------------------------------------------------------------------------------
# Paths


def test_resolve_inside_refuses_paths_and_links_that_leave_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    assert resolve_inside(root, "docs") == (root / "docs").resolve()
    for outside in ("..", "../x", "/etc", str(tmp_path)):
        with pytest.raises(UserError, match="outside"):
            resolve_inside(root, outside)
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(UserError, match="outside"):
        resolve_inside(root, "escape")
    (root / "docs" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(UserError, match="leads outside"):
        check_tree_inside(root / "docs", root)


# ---------------------------------------------------------------------------------------
# Chat


def test_ask_streams_closed_then_grounded_with_cited_sources(app):
    from rag_bench.app.chat import ask

    steps = list(ask(app, "Varnholt | Government | Capital:", "r", "gen_0", k=2, retrieval="bm25"))
    first_left, first_right = steps[0]
    assert first_left[-1]["content"] == first_right[-1]["content"] == "_answering…_"
    left, right = steps[-1]
    # token by token: the left answer grows while the right waits, then the right one grows
    streaming = [(lft[-1]["content"], rgt[-1]["content"]) for lft, rgt in steps[1:-1] if "answering…" in
                 lft[-1]["content"] + rgt[-1]["content"]]
    assert len(streaming) >= 2, [s[0][-1]["content"] for s in steps]
    assert all(rgt == "_answering…_" for lft, rgt in streaming if "answering…" in lft)
    assert [m["role"] for m in left] == ["user", "assistant"]
    assert "gen_0 · closed-book" in left[1]["content"]
    assert "gen_0 · grounded on factbook (bm25, k=2)" in right[1]["content"]
    citations = [m for m in right if m.get("metadata")]
    assert len(citations) == 2 and all(c["metadata"]["status"] == "done" for c in citations)
    assert citations[0]["metadata"]["title"].startswith("[1] varnholt.txt · score ")
    assert "Quillmark" in citations[0]["content"]
    # history accumulates within the session
    again = list(ask(app, "Orrinland | Government | Capital:", "r", "gen_0", left=left, right=right))[-1]
    assert len(again[0]) == 4 and again[1][: len(right)] == right


def test_without_a_run_the_chat_answers_with_the_pretrained_smollm2(tiny_data: Path, smollm2_data_dir: Path):
    """No run picked: SmolLM2-135M-Instruct answers, closed-book beside grounded, streamed, with citations."""
    from rag_bench.app.chat import ask, describe_model, ensure_converted, resolve_model
    from rag_bench.models import pretrained_dir

    folder = pretrained_dir(tiny_data, "smollm2-135m")  # the session's converted copy, as if converted here
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not folder.exists():
        folder.symlink_to(pretrained_dir(smollm2_data_dir, "smollm2-135m"))
    app = App(AppConfig(data_dir=str(tiny_data)))
    model_dir, label = resolve_model(app.cfg, None, None)
    assert (model_dir, label) == (folder, "smollm2-135m") == resolve_model(app.cfg, "r", None, " smollm2-135m ")
    assert list(ensure_converted(app, model_dir)) == []  # converted already: nothing to wait for
    notice = describe_model(app, model_dir, label, "factbook")
    assert "SmolLM2-135M-Instruct" in notice and "Apache-2.0" in notice and "nothing here" in notice
    steps = list(ask(app, "What is the capital of Varnholt?", k=1, retrieval="bm25", max_new_tokens=48))
    left, right = steps[-1]
    assert len(steps) > 3  # streamed token by token
    assert "smollm2-135m · closed-book" in left[1]["content"] and left[1]["content"].startswith("**")
    assert "smollm2-135m · grounded on factbook (bm25, k=1)" in right[1]["content"]
    citations = [m for m in right if m.get("metadata")]
    assert len(citations) == 1 and "Quillmark" in citations[0]["content"]
    # the grounded answer is supported: its span is marked in the passage and said under the answer
    assert "Quillmark" in right[1]["content"].split("\n")[0], right[1]["content"]
    assert "✓ **Supported**: “Quillmark”" in right[1]["content"] and "<mark>Quillmark</mark>" in citations[0]["content"]
    assert "it is the default" in notice and "⚠" not in notice


def test_a_model_folder_too_large_for_memory_is_one_line_in_the_chat(tiny_data: Path):
    from rag_bench.app.chat import ask
    from rag_bench.lm import ModelLoadError

    big = tiny_data / "models" / "big"  # a header declaring a 4 TiB tensor: refused before reading any weight
    big.mkdir(parents=True, exist_ok=True)
    (big / "config.json").write_text(json.dumps({"model_type": "llama"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 0]}}).encode()
    (big / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(ModelLoadError, match=r"models/big: too large for memory; needs about 5120\.0 GiB to load"):
        list(ask(App(AppConfig(data_dir=str(tiny_data))), "q", folder="models/big"))


def test_ask_refuses_bad_input_with_what_to_fix_and_survives_free_questions(app):
    from rag_bench.app.chat import ask

    with pytest.raises(UserError, match="Type a question"):
        next(ask(app, "   ", "r", "gen_0"))
    with pytest.raises(UserError, match="limit is 500"):
        next(ask(app, "x" * 501, "r", "gen_0"))
    with pytest.raises(UserError, match="no generation 'gen_9'"):
        next(ask(app, "q", "r", "gen_9"))
    with pytest.raises(UserError, match="below the model's 128 positions"):
        list(ask(app, "q", "r", "gen_0", max_new_tokens=200))
    with pytest.raises(UserError, match="must lie inside"):
        next(ask(app, "q", folder="/etc"))
    with pytest.raises(UserError, match=r"run '\.\./r' is not allowed"):  # a typed run name cannot leave runs/
        next(ask(app, "q", "../r", "gen_0"))
    left, right = list(ask(app, "What is the capital of Varnholt? <b>*bold*</b>", "r", "gen_0", temperature=0.8))[-1]
    assert left[0]["content"].startswith("What is the capital") and "&lt;b&gt;" in left[0]["content"]
    assert right[1]["role"] == "assistant"


def test_compare_two_generations_in_one_mode(app):
    from rag_bench.app.chat import ask

    left, right = list(ask(app, "Varnholt | Government | Capital:", "r", "gen_0", compare=True, generation_b="gen_1",
                           compare_mode="grounded", k=1))[-1]
    assert "gen_0 · grounded" in left[1]["content"] and "gen_1 · grounded" in right[1]["content"]
    assert left[2]["metadata"] and right[2]["metadata"]


def test_missing_index_leaves_the_closed_book_answer_and_explains(tiny_data):
    from rag_bench.app.chat import ask

    left, right = list(ask(App(AppConfig(data_dir=str(tiny_data))), "q", "r", "gen_0", corpus="nope"))[-1]
    assert "closed-book" in left[1]["content"]
    assert right[1]["content"].startswith("⚠️ No grounded answer: The corpus 'nope' has no index yet")


def test_grounded_by_bm25_over_the_corpus_file_until_the_dense_index_exists_then_by_the_index(tmp_path, tiny_data):
    from rag_bench.app.chat import ask
    from rag_bench.cli import ingest

    corpus_dir = tmp_path / "data" / "corpora" / "factbook"
    corpus_dir.mkdir(parents=True)
    docs = [{"id": f"d{i}", "contents": line} for i, line in enumerate([*PLANTED_LINES, PLANTED_PROSE])]
    (corpus_dir / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    fresh = App(AppConfig(data_dir=str(tmp_path / "data"), upload_root=str(tiny_data)))  # a model from elsewhere
    assert not fresh.has_dense_index("factbook")  # so the page opens on bm25 (config.reader_for)
    model = str(tiny_data / "runs" / "r" / "gen_0" / "model")
    _, right = list(ask(fresh, "Orrinland | Government | Capital:", folder=model, k=1, retrieval="bm25"))[-1]
    sources = [m for m in right if m.get("metadata")]
    assert "grounded on factbook (bm25, k=1)" in right[1]["content"]
    assert len(sources) == 1 and "Brellin" in sources[0]["content"]  # the planted line, found without embeddings
    _, right = list(ask(fresh, "Orrinland | Government | Capital:", folder=model, retrieval="dense"))[-1]
    assert right[1]["content"].startswith("⚠️ No grounded answer: The dense index of 'factbook' is still being built")
    ingest(str(corpus_dir / "corpus.jsonl"), data_dir=tmp_path / "data", name="factbook", progress=False)
    assert fresh.has_dense_index("factbook")  # the page now opens on hybrid, k=3
    _, right = list(ask(fresh, "Orrinland | Government | Capital:", folder=model, k=1, retrieval="dense"))[-1]
    sources = [m for m in right if m.get("metadata")]
    assert "grounded on factbook (dense, k=1)" in right[1]["content"] and len(sources) == 1
    bm25 = fresh.retriever("factbook", "bm25")
    assert bm25.store.index is not None and bm25.search("Brellin", k=1)[0].page_content == PLANTED_LINES[2]


def test_highlight_marks_the_answer_and_keeps_corpus_text_literal():
    from rag_bench.app.chat import highlight, source_title

    assert highlight("Capital: Algiers; algiers *x*", " Algiers ") == \
        "Capital: <mark>Algiers</mark>; <mark>algiers</mark> \\*x\\*"
    assert highlight("<script>", "") == "&lt;script&gt;"
    assert highlight("Ebene east: E", "e") == "Ebene east: <mark>E</mark>"  # whole words only
    assert highlight("area: 10 sq km.", "10 sq km.") == "area: <mark>10 sq km.</mark>"
    assert source_title({"rank": 2, "country": "Algeria", "section": "Government", "score": 0.5}) == \
        "[2] Algeria · Government · score 0.500"
    assert source_title({"rank": 1, "source": "/x/report.pdf", "page": 3}) == "[1] report.pdf, page 3"


def test_model_notice_says_size_training_data_and_generation(app, tiny_data):
    from rag_bench.app.chat import describe_model, resolve_model
    from rag_bench.config import ModelConfig

    model_dir, label = resolve_model(app.cfg, "r", "gen_1")
    notice = describe_model(app, model_dir, label, "factbook")
    arch = ModelConfig.preset("tiny").arch
    assert "generation 1 (`gen_1`)" in notice and f"`tiny` {arch}" in notice and "M parameters" in notice
    assert "text written by generation 0 under the `replace` strategy" not in notice  # no manifest, no claim
    assert "text written by generation 0" in notice
    (tiny_data / "runs" / "r" / "gen_1" / "manifest.json").write_text(json.dumps({"strategy": "replace",
                                                                                 "train_tokens": 1_500_000}))
    assert "under the `replace` strategy, 1.50M tokens" in describe_model(app, model_dir, label, "factbook")
    pool = {"strategy": "mix:0.1", "human_share": 0.1, "tokens": 250_000}  # as the collapse run writes it
    (tiny_data / "runs" / "r" / "gen_1" / "manifest.json").write_text(json.dumps({"pool": pool}))
    assert ("a pool of 10% human `factbook` text and 90% text written by generation 0 under the `mix:0.1` "
            "strategy, 0.25M tokens") in describe_model(app, model_dir, label, "factbook")
    folder_dir, _ = resolve_model(app.cfg, None, None, "runs/r/gen_0/model")
    assert "human training split" in describe_model(app, folder_dir, "gen_0", "factbook")


def test_record_prefix_helper(app):
    from rag_bench.app.prefix import facts_table, prefix_fields, record_prefix

    assert sorted(facts_table(app.cfg, "factbook")) == ["Orrinland", "Varnholt"]
    assert prefix_fields(app.cfg, "factbook", "Varnholt") == ["Capital", "Population - total"]  # probed fields first
    assert record_prefix(app.cfg, "factbook", "Varnholt", "Capital") == "Varnholt | Government | Capital:"
    assert facts_table(app.cfg, "no-such-corpus") == {}


# ---------------------------------------------------------------------------------------
# Corpus


def test_upload_checks_type_and_size_then_ingests_and_lists_the_index(tmp_path, tiny_data):
    from rag_bench.app.corpus import has_probes, index_table, ingest_uploads

    cfg = AppConfig(data_dir=str(tiny_data), upload_root=str(tmp_path / "uploads"), max_upload_mb=0.001)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "memo.txt").write_text("The Tarsil copper mine reopened in 1991.")
    (incoming / "tool.exe").write_bytes(b"MZ")
    (incoming / "huge.md").write_text("x" * 2000)
    (incoming / "empty.txt").write_text("")
    paths = [str(incoming / n) for n in ("memo.txt", "tool.exe", "huge.md", "empty.txt")]
    progress_calls = []
    rows, summary = ingest_uploads(cfg, "acme", paths, lambda *a, **k: progress_calls.append((a, k)))
    by_file = {row[1]: row for row in rows}
    assert by_file["tool.exe"][0] == "refused" and "type .exe is not accepted" in by_file["tool.exe"][2]
    assert by_file["huge.md"][0] == "refused" and "over the 0.001 MB limit" in by_file["huge.md"][2]
    assert by_file["memo.txt"][0] == "ingested" and by_file["empty.txt"][0] == "skipped"
    assert "Ingested 1 file(s) and skipped 1 into the corpus **acme**" in summary and progress_calls
    # its cloze probes are built too, so a collapse run on it finds what to evaluate
    assert "and 1 cloze probes for experiments" in summary and has_probes(cfg, "acme")
    probe = json.loads((tiny_data / "probes" / "acme-cloze.jsonl").read_text())
    assert (probe["prompt"], probe["golden_answers"]) == ("The Tarsil copper mine reopened in", ["1991"])
    assert (tmp_path / "uploads" / "acme" / "memo.txt").is_file()
    table = {row[0]: row for row in index_table(cfg)}
    assert table["acme"][1] == 1 and table["acme"][3] == "all-MiniLM-L6-v2"
    with pytest.raises(UserError, match="No file was accepted"):
        ingest_uploads(cfg, "acme", [str(incoming / "tool.exe")])
    with pytest.raises(UserError, match="default corpus"):
        ingest_uploads(cfg, "factbook", [str(incoming / "memo.txt")])
    with pytest.raises(UserError, match=r"corpus name '\.\./x' is not allowed"):
        ingest_uploads(cfg, "../x", [str(incoming / "memo.txt")])


def test_server_folder_must_stay_inside_the_upload_root(tmp_path, tiny_data):
    from rag_bench.app.corpus import ingest_server_folder

    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("Brellin harbour handles timber exports.")
    cfg = AppConfig(data_dir=str(tiny_data), upload_root=str(root))
    with pytest.raises(UserError, match="outside the allowed folder"):
        ingest_server_folder(cfg, "leak", str(tmp_path))
    with pytest.raises(UserError, match="no such folder"):
        ingest_server_folder(cfg, "leak", "missing")
    with pytest.raises(UserError, match="not a pattern"):
        ingest_server_folder(cfg, "leak", "docs/*")
    (root / "docs" / "secret.txt").symlink_to(tiny_data / "corpora" / "factbook" / "facts.jsonl")
    with pytest.raises(UserError, match="leads outside"):
        ingest_server_folder(cfg, "leak", "docs")
    (root / "docs" / "secret.txt").unlink()
    rows, _ = ingest_server_folder(cfg, "harbour", "docs")
    assert rows == [["ingested", "a.txt", "1 chunks from 1 document(s)"]]
    (root / "other").mkdir()
    (root / "other" / "b.txt").write_text("Something else.")
    with pytest.raises(UserError, match="was built from"):
        ingest_server_folder(cfg, "harbour", "other")


# ---------------------------------------------------------------------------------------
# Experiment: the run queue over a stand-in collapse script


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def parse_collapse(cfg: AppConfig, argv: list[str]):
    """``argv`` as the real `rag-bench collapse` parses it, then resolved into a config as that command does."""
    from rag_bench.cli import build_parser
    from rag_bench.collapse.run import resolve_config

    assert argv[: len(cfg.collapse_command)] == list(cfg.collapse_command)
    args = build_parser().parse_args(["collapse", *argv[len(cfg.collapse_command):]])
    strategies = tuple(s for item in args.strategy or () for s in item.split(","))
    overrides = {"generations": args.generations, "strategies": strategies or None, "seed": args.seed,
                 "model_size": args.model_size, "decoding": args.decoding, "corpus": args.corpus}
    resolved = resolve_config(preset=args.preset, run_dir=args.run_dir,
                              overrides={k: v for k, v in overrides.items() if v is not None})
    return args, resolved


def test_collapse_argv_is_what_the_collapse_command_accepts(tmp_path):
    from rag_bench.app.experiment import DECODINGS, MODEL_SIZES, PRESETS, STRATEGIES
    from rag_bench.app.runs import collapse_argv, collapse_job, resume_job

    cfg = AppConfig(data_dir=str(tmp_path / "data"))
    run_dir = cfg.runs_path / "r1"
    argv = collapse_argv(cfg, run_dir, preset="quick", generations=3, strategies=("replace", "mix:0.1"),
                         model_size="tiny", decoding="sample", corpus="acme", seed=7)
    args, resolved = parse_collapse(cfg, argv)
    assert (args.preset, args.run_dir, args.data_dir) == ("quick", run_dir, cfg.data_path)
    assert (args.generations, args.seed, args.model_size) == (3, 7, "tiny")
    assert (args.decoding, args.corpus) == ("sample", "acme")
    assert resolved.strategies == ("replace", "mix:0.1") and resolved.generations == 3 and resolved.seed == 7
    assert resolved.train.model.name == "tiny" and resolved.decode.do_sample and resolved.corpus == "acme"
    args, _ = parse_collapse(cfg, collapse_argv(cfg, run_dir))  # the defaults: nothing but the preset and folders
    assert (args.generations, args.strategy, args.model_size, args.decoding, args.corpus, args.seed) == (None,) * 6
    for preset in PRESETS:  # every choice the page offers is one the command takes
        assert parse_collapse(cfg, collapse_argv(cfg, run_dir, preset=preset))[0].preset == preset
    for strategy in STRATEGIES:
        assert parse_collapse(cfg, collapse_argv(cfg, run_dir, strategies=(strategy,)))[1].strategies == (strategy,)
    for size in MODEL_SIZES[1:]:
        assert parse_collapse(cfg, collapse_argv(cfg, run_dir, model_size=size))[1].train.model.name == size
    for decoding in DECODINGS[1:]:
        assert parse_collapse(cfg, collapse_argv(cfg, run_dir, decoding=decoding))[0].decoding == decoding
    # a resume: the saved settings until the run wrote config.json, then --run-dir alone
    job = collapse_job(cfg, "r1", preset="quick", generations=2)
    assert resume_job(cfg, "r1").argv == job.argv
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(parse_collapse(cfg, job.argv)[1].to_dict()))
    args, resolved = parse_collapse(cfg, resume_job(cfg, "r1").argv)
    assert args.preset is None and args.run_dir == run_dir and resolved.generations == 2
    with pytest.raises(UserError, match=r"no config\.json"):
        resume_job(cfg, "never-started")


def test_progress_line_says_stage_generation_and_eta():
    from rag_bench.app.experiment import progress_html, progress_text

    running = {"run_id": "r", "state": "running", "stage": "gen 2: train", "generation": 2, "generations": 5,
               "strategy": "replace", "fraction": 0.43, "eta_seconds": 512, "position": 0}
    assert progress_text(running) == "running · gen 2: train · generation 2 of 5 · strategy replace · 43% · ETA 9 min"
    stepping = {**running, "stage": "gen 0: train", "detail": "step 120/1100, loss 2.310", "generation": 0}
    assert progress_text(stepping) == ("running · gen 0: train · step 120/1100, loss 2.310 · generation 0 of 5 · "
                                       "strategy replace · 43% · ETA 9 min")
    done = {**running, "state": "done", "stage": "done", "generation": None, "fraction": 1.0, "strategy": None}
    assert progress_text(done) == "done · 5 generations · 100%"  # as docs/runs.md's status.json leaves a done run
    assert 'width:100.0%' in progress_html(done) and "<b>r</b>" in progress_html(done)


def test_runs_start_queue_cancel_and_resume(tmp_path, monkeypatch):
    from rag_bench.app.experiment import cancel_run, follow_run, resume_run, start_run
    from rag_bench.app.runs import RunQueue, run_view

    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.4")
    cfg = AppConfig(data_dir=str(tmp_path / "data"),
                    collapse_command=tuple(fake_command(tmp_path, "collapse", FAKE_COLLAPSE)))
    runner = RunQueue(cfg)
    try:
        first, message = start_run(cfg, runner, name="slow", generations=20, strategies=["replace", "mix:0.1"],
                                   model_size="tiny")
        assert (first, message) == ("slow", "Started slow.")
        _, message = start_run(cfg, runner, name="next", generations=2)
        assert message == "Queued next behind 1 job(s)."
        assert run_view(cfg, runner, "next")["state"] == "queued"
        with pytest.raises(UserError, match="exists already"):
            start_run(cfg, runner, name="slow")
        view = wait_for(lambda: (v := run_view(cfg, runner, "slow"))["state"] == "running" and "gen 1" in v["log"]
                        and v)
        assert view["strategy"] == "replace,mix:0.1" and view["generations"] == 20 and 0 < view["fraction"] < 1
        assert "--strategy replace,mix:0.1 --model-size tiny" in view["log"]
        assert cancel_run(cfg, runner, "slow") == "slow: stopped. Resume it to continue where it stopped."
        view = wait_for(lambda: (v := run_view(cfg, runner, "slow"))["state"] == "cancelled" and v)
        assert view["resumable"]
        steps = list(follow_run(cfg, runner, "next", progress=lambda *a, **k: None))
        assert "done" in steps[-1][0] and "done" in steps[-1][1]
        monkeypatch.setenv("FAKE_STEP_SECONDS", "0.01")
        assert resume_run(cfg, runner, "slow") == "Resuming slow."
        view = wait_for(lambda: (v := run_view(cfg, runner, "slow"))["state"] == "done" and v)
        log = (tmp_path / "data" / "runs" / "slow" / "log.txt").read_text()
        assert "gen 0: done before, skipped" in log
        # resumed from the run's own config.json, so its 20 generations and strategies carry over
        assert "argv --run-dir" in log and view["generations"] == 20 and view["strategy"] == "replace,mix:0.1"
        with pytest.raises(UserError, match="nothing to resume"):
            resume_run(cfg, runner, "slow")
    finally:
        runner.shutdown()


def test_a_run_that_fails_before_its_first_status_shows_failed_with_its_error_even_after_a_restart(tmp_path):
    import ui
    from rag_bench.app.experiment import progress_html
    from rag_bench.app.runs import AUTOSTART_RUN, RunQueue, collapse_job, known_runs, run_view
    from rag_bench.app.state import App

    crash = fake_command(tmp_path, "crash", "import sys\nprint('loading ...')\n"
                         "sys.exit('probes: data/probes/x.jsonl not found; build it with rag-bench probes')\n")
    cfg = AppConfig(data_dir=str(tmp_path / "data"), collapse_command=tuple(crash))
    runner = RunQueue(cfg)
    runner.submit(collapse_job(cfg, AUTOSTART_RUN, preset="quick"))
    view = wait_for(lambda: (v := run_view(cfg, runner, AUTOSTART_RUN))["state"] == "failed" and v)
    assert view["error"] == "probes: data/probes/x.jsonl not found; build it with rag-bench probes"
    assert "loading ..." in view["log"] and view["resumable"]
    assert not (cfg.runs_path / AUTOSTART_RUN).exists()  # no run folder: listed from what the page started
    assert known_runs(cfg, runner) == [AUTOSTART_RUN]
    assert "failed" in progress_html(view) and "not found; build it" in progress_html(view)
    banner, button = ui.banner_html(App(cfg), runner)
    assert "No experiment yet" not in banner and "not found; build it" in banner and button["visible"]
    runner.shutdown()
    restarted = RunQueue(cfg)  # a new server: the failure is still there, with its error and console
    view = run_view(cfg, restarted, AUTOSTART_RUN)
    assert view["state"] == "failed" and "not found; build it" in view["error"] and "loading ..." in view["log"]


def test_a_crashed_run_shows_its_console_and_a_killed_one_is_resumable(tmp_path):
    from rag_bench.app.runs import RunQueue, collapse_job, run_view

    crash = fake_command(tmp_path, "crash", "import sys\nprint('boom: no such preset')\nsys.exit(2)\n")
    cfg = AppConfig(data_dir=str(tmp_path / "data"), collapse_command=tuple(crash))
    runner = RunQueue(cfg)
    runner.submit(collapse_job(cfg, "bad", preset="quick"))
    view = wait_for(lambda: (v := run_view(cfg, runner, "bad"))["state"] == "failed" and v)
    assert "boom: no such preset" in view["log"] and view["resumable"] and view["error"] == "boom: no such preset"
    killed = cfg.runs_path / "killed"
    killed.mkdir(parents=True)
    (killed / "status.json").write_text(json.dumps({"state": "running", "pid": 2**22 + 7, "fraction": 0.5}))
    assert run_view(cfg, runner, "killed")["state"] == "interrupted"
    with pytest.raises(UserError, match="not allowed"):  # status.json and log.txt are read only inside runs/
        run_view(cfg, runner, "../killed")
    runner.shutdown()


def test_a_queued_run_is_listed_and_shown_first_while_the_index_builds(tmp_path):
    from rag_bench.app.experiment import default_run
    from rag_bench.app.runs import AUTOSTART_RUN, RunQueue, bootstrap, known_runs, run_view

    slow_prepare = fake_command(tmp_path, "prepare", "import time\nprint('embedding 10/100')\ntime.sleep(30)\n")
    cfg = AppConfig(data_dir=str(tmp_path / "data"), prepare_command=tuple(slow_prepare),
                    collapse_command=tuple(fake_command(tmp_path, "collapse", FAKE_COLLAPSE)))
    runner = RunQueue(cfg)
    try:
        assert bootstrap(cfg, runner, autostart=True) == ["prepare", AUTOSTART_RUN]
        assert known_runs(cfg, runner) == [AUTOSTART_RUN] and default_run(cfg, runner) == AUTOSTART_RUN
        assert run_view(cfg, runner, AUTOSTART_RUN)["state"] == "queued"
    finally:
        runner.shutdown()


def test_a_run_the_server_stopped_resumes_at_the_next_start_and_a_cancelled_one_does_not(tmp_path, monkeypatch):
    from rag_bench.app.experiment import cancel_run, start_run
    from rag_bench.app.runs import RunQueue, bootstrap, run_view

    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.3")
    cfg = AppConfig(data_dir=str(tmp_path / "data"),
                    collapse_command=tuple(fake_command(tmp_path, "collapse", FAKE_COLLAPSE)))
    (cfg.data_path / "corpora" / "factbook").mkdir(parents=True)  # nothing to prepare: a stand-in Factbook
    (cfg.data_path / "corpora" / "factbook" / "corpus.jsonl").write_text("{}\n")
    (cfg.indexes_path / "factbook").mkdir(parents=True)
    (cfg.indexes_path / "factbook" / "CURRENT").write_text("v1\n")
    (cfg.data_path / "probes").mkdir()
    (cfg.data_path / "probes" / "factbook-factbook.jsonl").write_text("{}\n")
    runner = RunQueue(cfg)
    start_run(cfg, runner, name="mine", generations=30)
    start_run(cfg, runner, name="waiting", generations=2)
    start_run(cfg, runner, name="dropped", generations=2)
    cancel_run(cfg, runner, "dropped")  # the user took it off the queue
    wait_for(lambda: "gen 1" in run_view(cfg, runner, "mine")["log"])
    runner.shutdown()  # as at Ctrl-C or SIGTERM of ui.py
    assert wait_for(lambda: run_view(cfg, runner, "mine")["state"] == "cancelled")
    restarted = RunQueue(cfg)
    try:
        assert sorted(bootstrap(cfg, restarted, autostart=True)) == ["mine", "waiting"]
        view = wait_for(lambda: (v := run_view(cfg, restarted, "mine"))["state"] == "running" and v)
        assert not view["stopped_by_server"]
        assert run_view(cfg, restarted, "dropped")["state"] not in ("queued", "running", "starting")
    finally:
        restarted.shutdown()


def test_the_seed_field_is_empty_for_the_presets_and_refuses_what_is_not_a_whole_number():
    from rag_bench.app.experiment import parse_seed

    assert parse_seed("") is None and parse_seed(None) is None and parse_seed(" 7 ") == 7
    for bad in ("-1", "1.5", "seven", str(2**31)):
        with pytest.raises(UserError, match="whole number"):
            parse_seed(bad)


def test_a_user_error_is_one_toast_line_and_no_console_traceback():
    import gradio as gr

    from rag_bench.app.tabs import friendly

    def refuse():
        raise UserError("seed must be a whole number")

    with pytest.raises(gr.Error) as caught:
        friendly(refuse)()
    assert caught.value.message == "seed must be a whole number" and caught.value.print_exception is False
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_no_experiment_banner_promises_no_duration(tmp_path):
    import ui
    from rag_bench.app.runs import RunQueue
    from rag_bench.app.state import App

    cfg = AppConfig(data_dir=str(tmp_path / "data"))
    banner, button = ui.banner_html(App(cfg), RunQueue(cfg))
    assert "No experiment yet" in banner and button["visible"]
    assert "minute" not in banner and "measured from its own pace" in banner


def test_first_start_builds_then_starts_quick_and_a_restart_rebuilds_nothing(tmp_path, monkeypatch):
    from rag_bench.app.runs import AUTOSTART_RUN, RunQueue, bootstrap, run_view

    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.01")
    cfg = AppConfig(data_dir=str(tmp_path / "data"),
                    collapse_command=tuple(fake_command(tmp_path, "collapse", FAKE_COLLAPSE)),
                    prepare_command=tuple(fake_command(tmp_path, "prepare", FAKE_PREPARE)))
    runner = RunQueue(cfg)
    assert bootstrap(cfg, runner, autostart=True) == ["prepare", AUTOSTART_RUN]
    wait_for(lambda: run_view(cfg, runner, AUTOSTART_RUN)["state"] == "done")
    assert runner.job("prepare").state == "done"
    runner.shutdown()
    restarted = RunQueue(cfg)
    assert bootstrap(cfg, restarted, autostart=True) == []
    status = cfg.runs_path / AUTOSTART_RUN / "status.json"
    status.write_text(json.dumps({"state": "running", "pid": 2**22 + 7}))  # as if killed mid-run
    assert bootstrap(cfg, restarted, autostart=True) == [AUTOSTART_RUN]
    wait_for(lambda: run_view(cfg, restarted, AUTOSTART_RUN)["state"] == "done")
    assert bootstrap(cfg, restarted, autostart=False) == []
    restarted.shutdown()


# ---------------------------------------------------------------------------------------
# Results


def test_results_table_plot_and_downloads(app, tiny_data):
    from rag_bench.app.results import downloads, plot_frame, results_frame, run_table

    frame = results_frame(app.cfg, ["r"])
    assert len(frame) == 2 * 2 * 2 * 2  # generations x modes x buckets x metrics
    lines = plot_frame(frame, metric="exact_match", bucket="tail")
    assert lines.to_dict("list") == {"generation": ["0", "1", "0", "1"], "value": [0.5, 0.3, 0.9, 0.85],
                                     "series": ["run · closed", "run · closed", "run · grounded",
                                                "run · grounded"]}  # the report's name of an unnamed strategy
    table = run_table(frame, "all")
    assert table.columns.tolist()[:3] == ["strategy", "generation", "closed exact_match"]
    files = [Path(f).name for f in downloads(app.cfg, ["r"])]
    assert files == ["report.html", "r-results.json", "compare-r.csv"]
    exported = json.loads((tiny_data / "ui" / "exports" / "r-results.json").read_text())
    assert sorted(exported) == ["gen_0", "gen_1"]


def test_your_runs_get_the_bands_of_their_report_where_it_covers_their_generations(tmp_path):
    from rag_bench.app.bands import band_figure
    from rag_bench.app.results import plot_lines, results_frame, run_intervals
    from rag_bench.report.ci import CI_COLUMNS

    cfg = AppConfig(data_dir=str(tmp_path))
    for generation, (closed, grounded) in enumerate(((0.5, 0.9), (0.3, 0.85))):
        write_results(cfg.runs_path / "b" / f"gen_{generation}", closed, grounded)
    frame = results_frame(cfg, ["b"])
    assert plot_lines(frame, run_intervals(cfg, ["b"]), metric="exact_match", bucket="tail")[1].startswith(
        "all probes; no intervals")  # no report yet: results.json's values, bare
    # the report's intervals (test split): both generations of closed-book, generation 0 alone of grounded
    cells = [("closed", 0, 0.4, 0.2, 0.6), ("closed", 1, 0.25, 0.1, 0.4), ("grounded", 0, 0.8, 0.7, 0.9)]
    rows = [",".join(map(str, ("exact_match", "run", g, mode, "tail", "test", v, lo, hi, 40, 1, "bootstrap")))
            for mode, g, v, lo, hi in cells]
    (cfg.runs_path / "b" / "report").mkdir()
    (cfg.runs_path / "b" / "report" / "intervals.csv").write_text("\n".join([",".join(CI_COLUMNS), *rows]) + "\n")
    lines, note = plot_lines(frame, run_intervals(cfg, ["b"]), metric="exact_match", bucket="tail")
    assert lines == {"run · closed": [{"generation": 0, "value": 0.4, "low": 0.2, "high": 0.6},
                                      {"generation": 1, "value": 0.25, "low": 0.1, "high": 0.4}],
                     "run · grounded": [{"generation": 0, "value": 0.9}, {"generation": 1, "value": 0.85}]}
    assert note.startswith("banded lines: test split")  # a band stands only over all the generations shown
    figure = band_figure(lines, title=note, ylabel="exact match")
    assert len(figure.axes[0].collections) == 1 and len(figure.axes[0].lines) == 2  # one band, two lines


# ---------------------------------------------------------------------------------------
# The launched app


@pytest.fixture(scope="module")
def served(tiny_data, tmp_path_factory):
    import ui

    scripts = tmp_path_factory.mktemp("scripts")
    demo = ui.build_demo(tiny_data, collapse_command=fake_command(scripts, "collapse", FAKE_COLLAPSE))
    port = free_port()
    ui.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.rag_runner.shutdown()
    demo.close()


def chat(url: str, question: str, **settings):
    from gradio_client import Client

    args = {"question": question, "run": "r", "generation": "gen_0", "model_folder": "", "k": 2,
            "retrieval": "dense", "temperature": 0, "max_new_tokens": 8, "compare": False,
            "generation_b": "gen_1", "compare_mode": "closed", "left": [], "right": [], **settings}
    return Client(url, verbose=False).predict(**args, api_name="/ask")


def test_launched_app_answers_both_ways_with_sources_over_gradio_client(served):
    from gradio_client.exceptions import AppError

    left, right = chat(served, "Varnholt | Government | Capital:")
    text = lambda message: message["content"][0]["text"]  # noqa: E731
    assert [m["role"] for m in left] == ["user", "assistant"] and "gen_0 · closed-book" in text(left[1])
    assert "gen_0 · grounded on factbook (dense, k=2)" in text(right[1])
    sources = [m for m in right if m["metadata"]]
    assert len(sources) == 2 and sources[0]["metadata"]["title"].startswith("[1] varnholt.txt")
    assert "Quillmark" in text(sources[0])
    with pytest.raises(AppError, match="Type a question first"):
        chat(served, "  ")


def test_eight_clients_chatting_at_once_all_get_answers(served):
    questions = [f"{country} | Government | Capital:" for country in ("Varnholt", "Orrinland")] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda q: chat(served, q, retrieval="hybrid"), questions))
    assert len(results) == 8
    for question, (left, right) in zip(questions, results, strict=True):
        assert left[0]["content"][0]["text"].startswith(question.split(" |")[0])
        assert "closed-book" in left[1]["content"][0]["text"] and "grounded" in right[1]["content"][0]["text"]
        assert sum(1 for m in right if m["metadata"]) == 2


def test_no_file_outside_the_data_dir_is_served(served, tiny_data):
    for path in ("/etc/passwd", str(Path(__file__).resolve())):
        response = httpx.get(f"{served}gradio_api/file={path}")
        assert response.status_code in (403, 404) and "root:" not in response.text
    inside = httpx.get(f"{served}gradio_api/file={tiny_data / 'runs' / 'r' / 'report' / 'report.html'}")
    assert inside.status_code == 200 and "report" in inside.text


def test_auth_is_parsed_from_user_colon_password():
    import ui

    assert ui.parse_auth("alice:se:cret") == ("alice", "se:cret")
    assert ui.parse_auth(None) is None
    with pytest.raises(SystemExit, match="USER:PASSWORD"):
        ui.parse_auth("alice")


def test_a_contaminated_index_marks_each_citation_origin_after_the_answer(app, tiny_data):
    from rag_bench.app.chat import ask
    from rag_bench.contaminate.build import SharePlan, build_share_indexes

    row = {"id": "uncurated/x/0", "contents": "Varnholt | Government | Capital: Oranburg",
           "metadata": {"source": "uncurated/varnholt.txt", "origin": "synthetic", "origin_generation": 3,
                        "origin_watermarked": False}}
    build_share_indexes(tiny_data / "indexes" / "factbook", [SharePlan(share=0.5, rows=(row,), pool=1, info={})],
                        [tiny_data / "indexes" / "factbook-contam"])
    steps = list(ask(app, "Varnholt | Government | Capital:", "r", "gen_0", corpus="factbook-contam", k=2))
    titles = [m["metadata"]["title"] for m in steps[-1][1] if m.get("metadata")]
    assert len(titles) == 2 and any("⚠ model-written by generation 3, not watermarked" in t for t in titles)
    assert any(t.endswith("· human-written") for t in titles)
    streamed = [m["content"] for _, right in steps[:-1] for m in right]
    assert not any("model-written" in text or "human-written" in text for text in streamed)


def test_make_run_from_an_empty_data_dir_answers_at_once_and_its_experiment_trains_meanwhile(tmp_path,
                                                                                           smollm2_data_dir):
    """Issue 16's "done when": the page as `make run` serves it (build_demo with first start and autostart, then
    launch), over an empty data dir, with a 3-country Factbook and the tiny preset in place of the full ones, and
    the session's converted SmolLM2 in place of converting it again (bench/first_answer.py times all of it)."""
    import ui
    from rag_bench.app.runs import AUTOSTART_RUN, run_view
    from rag_bench.models import pretrained_dir

    release = tmp_path / "release-index"
    prepare = [*fake_command(tmp_path / "scripts", "prepare", TINY_PREPARE), str(release)]
    data = tmp_path / "data"
    pretrained_dir(data, "smollm2-135m").parent.mkdir(parents=True)
    pretrained_dir(data, "smollm2-135m").symlink_to(pretrained_dir(smollm2_data_dir, "smollm2-135m"))
    demo = ui.build_demo(data, first_start=True, autostart=True, prepare_command=prepare, autostart_preset="tiny")
    port = free_port()
    ui.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    cfg, runner = demo.rag_app.cfg, demo.rag_runner
    question = "What is the capital of Pitcairn Islands?"

    def answers():
        try:
            left, right = chat(f"http://127.0.0.1:{port}/", question, run=None, generation=None, k=1,
                               retrieval="bm25", max_new_tokens=12)
        except Exception:  # the corpus or the model is not there yet
            return None
        text = lambda message: message["content"][0]["text"]  # noqa: E731
        sources = [m for m in right if m["metadata"]]
        return sources and "closed-book" in text(left[1]) and (text(left[1]), text(right[1]), text(sources[0]))

    try:
        assert run_view(cfg, runner, AUTOSTART_RUN)["state"] == "queued"  # listed at once, behind the index
        _, grounded, source = wait_for(answers, timeout=300)
        assert "grounded on factbook (bm25, k=1)" in grounded and "Pitcairn" in source
        assert not (data / "indexes" / "factbook" / "CURRENT").exists()  # answered before any embedding
        release.touch()

        def past_first_step():
            view = run_view(cfg, runner, AUTOSTART_RUN)
            assert view["state"] not in ("failed", "cancelled"), view
            log = (data / "runs" / AUTOSTART_RUN / "log.txt")
            return (str(view.get("detail") or "").startswith("step ") or
                    (log.is_file() and "gen 0: train: finished" in log.read_text())) and view

        view = wait_for(past_first_step, timeout=600)
        assert view["stage"] != "starting"
        assert answers()  # the chat still answers while the run trains
    finally:
        runner.shutdown()
        demo.close()
