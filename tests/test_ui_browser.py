"""End to end in a real browser: Debian's headless Chromium driven by Playwright (never a downloaded browser).

    .venv/bin/pytest -q tests/test_ui_browser.py    # skips without /usr/bin/chromium; fails so under CI=true
    .venv/bin/python tests/test_ui_browser.py --data-dir data --run quick-factbook --out docs/screenshots

It types a question, waits for the closed-book and the grounded answer, opens a citation and saves
screenshots of the Chat and Experiment tabs: the test over a tiny fixture (into tests/artifacts/), the
command over a finished run of the real data dir (the README's screenshots; it starts no run and builds nothing).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # ui.py, when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_ui
from test_ui import FAKE_COLLAPSE, fake_command, free_port, make_tiny_data

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas 3 deprecations inside gradio

CHROMIUM = os.environ.get("RAG_BENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT_MS = 60_000


def browser_missing() -> str | None:
    """Why the test cannot run here, or None."""
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


def require_browser() -> None:
    """Skip without the browser; fail so under CI=true."""
    missing = browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser test: {missing}")
        pytest.skip(missing)


def capture(url: str, out: Path, question: str, *, run: str | None = None, k: int | None = None,
            figures: bool = False) -> dict[str, Path]:
    """Ask ``question`` in the Chat tab, open the first citation, then show the Experiment tab; returns screenshots.

    ``run`` picks the run in both tabs (else the page's default, the newest); the Experiment tab then waits for
    that run's results table and, with ``figures``, for its report's figures.
    """
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # loading a real model and its index takes longer than the 5 s default
    out.mkdir(parents=True, exist_ok=True)
    shots = {"chat": out / "chat.png", "experiment": out / "experiment.png"}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 980})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            expect(page.locator("#model-notice")).to_contain_text("parameters")
            # the default is the pretrained model; a run's generation answers when picked, as here
            pick(page, "#chat-model", f"{run or 'r'} · gen_0 · trained here")
            expect(page.locator("#model-notice")).to_contain_text("generation 0")
            expect(page.locator("#model-notice")).to_contain_text("you picked it")
            if k is not None:
                page.get_by_text("Retrieval and decoding").click()
                page.locator("#chat-k input[type=number]").fill(str(k))
                page.locator("#chat-k input[type=number]").press("Enter")
                page.get_by_text("Retrieval and decoding").click()
            page.locator("#question textarea").fill(question)
            page.locator("#ask").click()
            expect(page.locator("#chat-left")).to_contain_text("closed-book")
            expect(page.locator("#chat-right")).to_contain_text("grounded on")
            right = page.locator("#chat-right")
            chunk = right.locator(".thought .message-content").first  # a citation's passage
            expect(chunk).to_be_hidden()  # citations start collapsed
            right.get_by_text("[1] ", exact=False).first.click()
            expect(chunk).to_be_visible()
            if run is None:
                expect(chunk).to_contain_text("Varnholt | Government | Capital: Quillmark")
            page.wait_for_timeout(1000)  # the accordion slides open
            page.screenshot(path=str(shots["chat"]))
            page.get_by_role("tab", name="Experiment").click()
            if run:
                pick(page, "#exp-run", run)
                expect(page.locator("#run-status")).to_contain_text(run)
                expect(page.locator("#run-table")).to_contain_text("exact_match")
                if figures:
                    expect(page.locator("#run-figures img").first).to_be_visible()
            expect(page.locator("#run-status")).to_contain_text("·")
            log_box = page.locator("#run-log textarea")
            if run is None:  # the stand-in run: its log outgrows the box, so the check below has something to check
                # at least 12 generations written: the box keeps the log's tail, so on a slow machine (the page
                # reached here after the stand-in wrote ~300) "gen 12" itself has scrolled out of it
                expect(log_box).to_have_value(re.compile(r"gen (1[2-9]|[2-9]\d|\d{3,}): train"))
            page.wait_for_timeout(2500)  # one tick of the progress timer; the plots draw
            overflow, gap = log_box.evaluate("t => [t.scrollHeight - t.clientHeight, t.scrollHeight - t.clientHeight"
                                             " - t.scrollTop]")
            assert run is not None or overflow > 20, f"the stand-in run's log does not overflow its box ({overflow}px)"
            assert gap <= 2, f"the log tail shows lines {gap}px above its newest one"
            if run is None:  # a reader who scrolled up keeps their place while lines arrive
                before = log_box.evaluate("t => { t.scrollTop = 0; return t.value; }")
                expect(log_box).not_to_have_value(before)
                page.wait_for_timeout(500)
                assert log_box.evaluate("t => t.scrollTop") == 0
                before = log_box.evaluate("t => { t.scrollTop = t.scrollHeight; return t.value; }")
                expect(log_box).not_to_have_value(before)  # back at the bottom, it follows again
                page.wait_for_timeout(500)
                assert log_box.evaluate("t => t.scrollHeight - t.clientHeight - t.scrollTop") <= 2
            page.screenshot(path=str(shots["experiment"]), full_page=True)
        finally:
            browser.close()
    return shots


def pick(page, elem_id: str, value: str) -> None:
    """Choose ``value`` in a gradio Dropdown: open its list and click the option (not one that only starts so)."""
    from playwright.sync_api import expect

    box = page.locator(f"{elem_id} input")
    box.click()
    options = page.locator('li[data-testid="dropdown-option"]')
    options.filter(has_text=re.compile(rf"(^|\s){re.escape(value)}\s*$")).first.click()
    expect(box).to_have_value(value)


def serve(data_dir: Path, collapse_command: list[str] | None = None):
    import ui

    # no first start: serving never builds an index or starts a run (the screenshots of real data take no CPU)
    demo = ui.build_demo(data_dir, collapse_command=collapse_command)
    port = free_port()
    ui.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def start_demo_run(demo, run_id: str = "quick-demo") -> None:
    """A stand-in run that is still writing lines when the checks end (400 generations of FAKE_STEP_SECONDS each),
    so the Experiment tab shows a live stage, bar and log."""
    from rag_bench.app.runs import collapse_job

    cfg = demo.rag_app.cfg
    demo.rag_runner.submit(collapse_job(cfg, run_id, preset="quick", generations=400,
                                        strategies=("replace", "accumulate")))


# The stand-in collapse, failing at once for a run named "doomed" as a real run fails on a missing probe file.
FAILING_COLLAPSE = FAKE_COLLAPSE.replace("args = p.parse_args()\n", """args = p.parse_args()
if Path(args.run_dir).name == "doomed":
    print("loading the corpus ...", flush=True)
    sys.exit("probes: data/probes/doomed.jsonl not found; build it with rag-bench probes")
""")
LONG_QUESTION_CHARS = 20_000


def check_truths(url: str, start_elsewhere) -> None:
    """Point 7 of issue 16 in the browser: a failed run shows failed with its error and log; a run started after
    the page loaded (as first start queues one) joins the Run list without a reload; the Seed field is empty; an
    empty results table shows no placeholder headers; a long question is refused with a toast, not cut, and
    leaves no empty "Error" pill in the chat panels."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 980})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            expect(page.locator("#model-notice")).to_contain_text("parameters")
            question = page.locator("#question textarea")
            question.fill("x" * LONG_QUESTION_CHARS)
            assert len(question.input_value()) == LONG_QUESTION_CHARS  # not cut by the box
            page.locator("#ask").click()
            expect(page.get_by_text(f"The question has {LONG_QUESTION_CHARS} characters; the limit is 500")
                   ).to_be_visible()  # the toast
            page.wait_for_timeout(500)
            for panel in ("#chat-left", "#chat-right"):
                expect(page.locator(f"{panel} .error")).to_have_count(0)
            page.get_by_role("tab", name="Experiment").click()
            page.get_by_text("Start a run").click()
            expect(page.locator("#seed input, #seed textarea").first).to_have_value("")
            page.get_by_label("Run name (empty: preset-corpus-time)").fill("doomed")
            page.locator("#start-run").click()
            expect(page.locator("#run-status")).to_contain_text("doomed")
            expect(page.locator("#run-status")).to_contain_text("failed")
            expect(page.locator("#run-status")).to_contain_text("data/probes/doomed.jsonl not found")
            expect(page.locator("#run-log textarea")).to_have_value(re.compile("loading the corpus"))
            expect(page.locator("#run-table")).to_be_hidden()  # no "1 2 3" placeholder headers
            expect(page.locator("#run-table-empty")).to_contain_text("No evaluated generation yet")
            expect(page.locator("#banner")).to_contain_text("failed")
            start_elsewhere("queued-later")
            page.locator("#exp-run input").click()
            expect(page.locator('li[data-testid="dropdown-option"]').filter(has_text="queued-later")).to_have_count(1)
        finally:
            browser.close()


def test_browser_chat_answers_both_ways_opens_a_citation_and_shows_the_experiment(tmp_path, monkeypatch):
    require_browser()
    # a line every 0.3 s: the log outgrows its box (gen 12) within seconds, and new lines arrive within each 2 s tick
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.3")
    data = make_tiny_data(tmp_path)
    demo, url = serve(data, fake_command(tmp_path / "scripts", "collapse", FAILING_COLLAPSE))
    try:
        start_demo_run(demo)
        shots = capture(url, ARTIFACTS, "Varnholt | Government | Capital:")
        demo.rag_runner.cancel("quick-demo")
        check_truths(url, lambda run_id: start_demo_run(demo, run_id))
    finally:
        demo.rag_runner.shutdown()
        demo.close()
    for path in shots.values():
        assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"


def main() -> None:
    """README screenshots from the real data dir: a question to a finished run, and that run's results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="the data dir the UI serves")
    parser.add_argument("--run", default="quick-factbook", help="a finished run in DATA_DIR/runs to chat with and show")
    parser.add_argument("--question", default="Kenya | Government | Capital:", help="asked in the Chat tab")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="where the PNGs go")
    args = parser.parse_args()
    import torch

    from rag_bench.app.state import generations

    torch.set_num_threads(1)  # one answer at a time: the machine's other cores stay with whoever trains
    if browser_missing():
        raise SystemExit(browser_missing())
    run_dir = args.data_dir / "runs" / args.run
    if "gen_0" not in generations(run_dir):
        raise SystemExit(f"{run_dir}: no trained generation 0; run `rag-bench collapse --preset quick` first")
    demo, url = serve(args.data_dir)
    try:
        shots = capture(url, args.out, args.question, run=args.run, figures=any((run_dir / "report").glob("*.png")))
    finally:
        demo.rag_runner.shutdown()
        demo.close()
    print("\n".join(str(p) for p in shots.values()))


if __name__ == "__main__":
    main()


COMPANY_DOCS = {
    "travel_policy.md": "# Travel policy\n\nEmployees travelling on company business receive a daily meal allowance of "
                        "45 euros. Hotels are reimbursed up to 120 euros a night.\n",
    "oncall.txt": "On-call rota. The on-call engineer must acknowledge a page within 15 minutes, day or night.\n",
    "security.html": "<html><body><h1>Security</h1><p>Laptops lock after <b>5 minutes</b> idle. Report a lost "
                     "badge to <code>security@acme.example</code>.</p></body></html>",
}


def check_default_model_results_and_company_corpus(url: str, out: Path, finish_run, docs: Path) -> dict[str, Path]:
    """Issue 22's three browser checks on one page: (a) the default model answers the Tuvalu question grounded,
    its span marked in the citation; (c) the Results tab opens on the published smol and quick results; (b) after a
    run finishes, the default stays the pretrained model, and a company corpus uploaded and made active gets a
    right, supported answer."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    out.mkdir(parents=True, exist_ok=True)
    shots = {name: out / f"{name}.png" for name in ("tuvalu", "results", "company")}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            notice = page.locator("#model-notice")
            expect(notice).to_contain_text("smollm2-135m")
            expect(notice).to_contain_text("it is the default")
            expect(page.locator("#chat-model input")).to_have_value(re.compile("smollm2-135m"))
            expect(page.locator("#question textarea")).to_have_attribute("placeholder", re.compile(r"^What is "))
            ask(page, "What is the capital of Tuvalu?")
            right = page.locator("#chat-right")
            expect(right).to_contain_text("Funafuti")
            expect(right).to_contain_text("Supported")
            right.get_by_role("button", name=re.compile(r"^\[1\] tuvalu\.txt")).first.click()
            expect(right.locator("mark").first).to_have_text("Funafuti")
            page.wait_for_timeout(800)
            page.screenshot(path=str(shots["tuvalu"]))

            page.get_by_role("tab", name="Results").click()
            for name in ("smol", "quick"):
                block = page.locator(f"#published-{name}").first  # a gradio Group repeats its elem_id inside
                expect(block).to_contain_text("published at")
                expect(block).to_contain_text("Finding.")
                expect(block.locator("img")).to_have_count(2)
                expect(block).to_contain_text("test split")
            interval = re.compile(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]")  # 3 decimals, with the interval
            expect(page.locator("#published-smol").first).to_contain_text(interval)
            page.wait_for_timeout(800)
            page.screenshot(path=str(shots["results"]))

            finish_run()  # a run ends while the page is open: the chat's default must not become its generation
            page.get_by_role("tab", name="Chat").click()
            page.locator("#chat-refresh").click()  # the ↻ beside Model lists the new run's generations
            page.wait_for_timeout(1000)
            expect(page.locator("#chat-model input")).to_have_value(re.compile("smollm2-135m"))
            page.get_by_role("tab", name="Corpus").click()
            page.get_by_label("Corpus name for new documents").fill("acme")
            uploads = [str(p) for p in sorted(docs.iterdir())]
            page.locator("#corpus-files input[type=file]").first.set_input_files(uploads)
            page.get_by_role("button", name="Upload and ingest").click()
            expect(page.get_by_text("into the corpus", exact=False)).to_be_visible()
            pick(page, "#active-corpus", "acme")
            page.get_by_role("tab", name="Chat").click()
            expect(notice).to_contain_text("passages of the acme index")
            ask(page, "What is the daily meal allowance when travelling?")
            expect(right).to_contain_text("grounded on acme")
            expect(right).to_contain_text("45")
            expect(right).to_contain_text("Supported")
            expect(right).not_to_contain_text("⚠")
            right.get_by_role("button", name=re.compile(r"^\[\d+\] travel_policy\.md")).first.click()
            expect(right.locator("mark").filter(has_text="45").first).to_be_visible()
            page.wait_for_timeout(800)
            page.screenshot(path=str(shots["company"]))
        finally:
            browser.close()
    return shots


def ask(page, question: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Clear history").click()
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()
    expect(page.locator("#chat-right")).to_contain_text("grounded on")


def test_browser_default_model_answers_tuvalu_results_are_published_and_a_company_corpus_answers(
        tmp_path, monkeypatch, smollm2_data_dir):
    require_browser()
    from rag_bench.cli import ingest
    from rag_bench.models import pretrained_dir

    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.05")
    data = make_tiny_data(tmp_path)  # its run "r" has trained generations: a default that drifted would pick one
    (tmp_path / "planted" / "tuvalu.txt").write_text("Tuvalu | Government | Capital: Funafuti\n\n"
                                                     "Tuvalu | Geography | Area - total: 26 sq km\n")
    ingest(str(tmp_path / "planted"), data_dir=data, name="factbook", progress=False)
    pretrained_dir(data, "smollm2-135m").parent.mkdir(parents=True, exist_ok=True)
    pretrained_dir(data, "smollm2-135m").symlink_to(pretrained_dir(smollm2_data_dir, "smollm2-135m"))
    docs = tmp_path / "company"
    docs.mkdir()
    for name, text in COMPANY_DOCS.items():
        (docs / name).write_text(text)
    demo, url = serve(data, fake_command(tmp_path / "scripts", "collapse", FAKE_COLLAPSE))

    def finish_run() -> None:
        from rag_bench.app.runs import collapse_job

        demo.rag_runner.submit(collapse_job(demo.rag_app.cfg, "tiny-done", preset="tiny", generations=1))
        deadline = time.monotonic() + 60
        while (demo.rag_runner.job("tiny-done").state != "done") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert demo.rag_runner.job("tiny-done").state == "done"

    try:
        shots = check_default_model_results_and_company_corpus(url, ARTIFACTS / "issue22", finish_run, docs)
    finally:
        demo.rag_runner.shutdown()
        demo.close()
    for path in shots.values():
        assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
