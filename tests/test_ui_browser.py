"""End to end in a real browser: Debian's headless Chromium driven by Playwright (never a downloaded browser).

    .venv/bin/pytest -q tests/test_ui_browser.py    # skips without /usr/bin/chromium; fails so under CI=true
    .venv/bin/python tests/test_ui_browser.py --out docs/screenshots  # README screenshots over a tiny fixture
    .venv/bin/python tests/test_ui_browser.py --out docs/screenshots --data-dir data   # ... over real runs

It types a question, waits for the closed-book and the grounded answer, opens a citation and saves
screenshots of the Chat and Experiment tabs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
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


def capture(url: str, out: Path, question: str, *, run: str | None = None, k: int | None = None) -> dict[str, Path]:
    """Ask ``question`` in the Chat tab, open the first citation, then show the Experiment tab; returns screenshots."""
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = {"chat": out / "chat.png", "experiment": out / "experiment.png"}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 980})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            expect(page.locator("#model-notice")).to_contain_text("parameters")
            if run:
                dropdown = page.locator("#chat-run input")
                dropdown.fill(run)
                dropdown.press("Enter")
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
            expect(page.locator("#run-status")).to_contain_text("·")
            page.wait_for_timeout(2500)  # one tick of the progress timer
            page.screenshot(path=str(shots["experiment"]), full_page=True)
        finally:
            browser.close()
    return shots


def serve(data_dir: Path, collapse_command: list[str] | None = None):
    import ui

    demo = ui.build_demo(data_dir, collapse_command=collapse_command)
    port = free_port()
    ui.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def start_demo_run(demo, run_id: str = "quick-demo") -> None:
    """A stand-in run that moves slowly, so the Experiment tab shows a live stage, bar and log."""
    from rag_bench.app_runs import collapse_job

    cfg = demo.rag_app.cfg
    demo.rag_runner.submit(collapse_job(cfg, run_id, preset="quick", generations=40,
                                        strategies=("replace", "accumulate")))


def test_browser_chat_answers_both_ways_opens_a_citation_and_shows_the_experiment(tmp_path, monkeypatch):
    missing = browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser test: {missing}")
        pytest.skip(missing)
    monkeypatch.setenv("FAKE_STEP_SECONDS", "1.5")
    data = make_tiny_data(tmp_path)
    demo, url = serve(data, fake_command(tmp_path / "scripts", "collapse", FAKE_COLLAPSE))
    try:
        start_demo_run(demo)
        shots = capture(url, ARTIFACTS, "Varnholt | Government | Capital:")
    finally:
        demo.rag_runner.shutdown()
        demo.close()
    for path in shots.values():
        assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"


def teach_tiny_models(data: Path, steps: int = 600) -> None:
    """For README screenshots only: fit the fixture's tiny models to the planted records so they answer."""
    import torch
    from test_ui import PLANTED_LINES

    from rag_bench.lm import LM
    from rag_bench.prompt import render_prompt

    for generation, model_dir in enumerate(sorted((data / "runs" / "r").glob("gen_*/model"))):
        lm = LM.load(model_dir)
        lines = PLANTED_LINES[: len(PLANTED_LINES) - generation]  # a later generation has forgotten a fact
        # the closed-book line, and the same line after its passage, as retrieval-augmented training does
        texts = lines + [render_prompt(line.split(": ")[0] + ":", [line]) + " " + line.split(": ")[1]
                         for line in PLANTED_LINES]
        optimizer = torch.optim.AdamW(lm.model.parameters(), lr=3e-3)
        lm.model.train()
        for step in range(steps):
            ids = lm.tokenizer(texts[step % len(texts)] + "\n", return_tensors="pt")["input_ids"]
            loss = lm.model(input_ids=ids, labels=ids, use_cache=False).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        lm.model.eval()
        lm.save(model_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="where the PNGs go")
    parser.add_argument("--data-dir", type=Path, default=None, help="serve real runs instead of the tiny fixture")
    parser.add_argument("--run", default=None, help="with --data-dir: the run to chat with")
    parser.add_argument("--question", default="Varnholt | Government | Capital:")
    args = parser.parse_args()
    if browser_missing():
        raise SystemExit(browser_missing())
    scratch = Path(tempfile.mkdtemp(prefix="rag-bench-shots-"))
    os.environ.setdefault("FAKE_STEP_SECONDS", "1.5")
    try:
        if args.data_dir:
            demo, url = serve(args.data_dir)
        else:
            data = make_tiny_data(scratch)
            teach_tiny_models(data)
            demo, url = serve(data, fake_command(scratch / "scripts", "collapse", FAKE_COLLAPSE))
            start_demo_run(demo)
        try:
            shots = capture(url, args.out, args.question, run=args.run, k=None if args.data_dir else 1)
        finally:
            demo.rag_runner.shutdown()
            demo.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n".join(str(p) for p in shots.values()))


if __name__ == "__main__":
    main()
