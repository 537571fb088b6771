"""The rag_bench web page: chat with any generation (parametric against grounded), run collapse experiments,
swap in your own corpus and compare results.

    python ui.py --host 127.0.0.1 --port 7860 --data-dir data            # also: make run
    python ui.py --auth alice:secret                                       # or RAG_BENCH_AUTH=alice:secret
    python ui.py --no-autostart                                            # do not start the quick experiment
    python ui.py --model data/uploads/my-model.gguf                        # the chat's default: your own model

It serves at once. On first start it builds the Factbook corpus (seconds) and its dense index in the background;
chat answers meanwhile with bm25 retrieval. Unless --no-autostart it then starts the `quick` collapse experiment,
with progress in the banner. A restart finds the runs and the index that exist, rebuilds nothing, and resumes
the runs it stopped (not those cancelled on the page). `build_demo()` returns the Blocks without launching.
"""

from __future__ import annotations

import argparse
import atexit
import html
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads that spin steal the cores of a shared 2-core machine (measured: p95 query
# latency 490-740 ms spinning, ~19 ms passive). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gradio as gr

from rag_bench.app import experiment as app_experiment
from rag_bench.app import tab_experiment as app_tab_experiment
from rag_bench.app import tabs as app_tabs
from rag_bench.app.runs import AUTOSTART_RUN, RunQueue, bootstrap, collapse_job, known_runs, run_view, tail
from rag_bench.app.state import App, AppConfig

CSS = """
mark { background: #fde68a; padding: 0 2px; border-radius: 2px; }
#model-notice { font-size: 0.92em; }
"""


def banner_html(app: App, runner: RunQueue) -> tuple[str, dict]:
    """What the whole page should know now: the first-start build, a running or failed experiment, or that none
    exists (then the start button shows)."""
    cfg = app.cfg
    job = runner.current
    prepare = runner.job("prepare")
    if prepare is not None and prepare.state in ("queued", "running"):
        last = html.escape(tail(prepare.console, 1) or "starting")
        then = " The quick experiment starts when it is ready." if AUTOSTART_RUN in runner.active_runs() else ""
        text = ("<b>First start: building the Factbook corpus and its dense search index in the background.</b> "
                "Chat works meanwhile with bm25 retrieval; dense and hybrid retrieval switch on when the index is "
                f"ready.{then} <code>{last}</code>")
        return f'<div class="rb-banner">{text}</div>', gr.update(visible=False)
    if prepare is not None and prepare.state == "failed":
        last = html.escape(tail(prepare.console, 3))
        return (f'<div class="rb-banner"><b>Building the Factbook index failed.</b> Run <code>rag-bench prepare'
                f"</code> to see why.<pre>{last}</pre></div>", gr.update(visible=False))
    if job is not None and job.kind == "collapse":
        view = run_view(cfg, runner, job.id)
        note = " Chat works meanwhile; the run yields the cores to it." if job.id == AUTOSTART_RUN else ""
        return app_experiment.progress_html(view) + f"<small>{note}</small>", gr.update(visible=False)
    runs = known_runs(cfg, runner)
    if not runs:
        return ("<div class='rb-banner'>No experiment yet. The quick experiment trains generation 0 on the Factbook "
                "and retrains it on its own text for 5 generations; once it trains, the Experiment tab shows its "
                "ETA, measured from its own pace on this machine.</div>", gr.update(visible=True))
    view = run_view(cfg, runner, runs[0])
    if view["state"] == "failed":
        return (app_experiment.progress_html(view) + "<small>See its log in the Experiment tab.</small>",
                gr.update(visible=runs[0] == AUTOSTART_RUN))
    return "", gr.update(visible=False)


def build_demo(data_dir: str | Path = "data", corpus: str = "factbook", *, upload_root: str | Path = "",
               collapse_command: list[str] | None = None, prepare_command: list[str] | None = None,
               first_start: bool = False, autostart: bool = False, concurrency: int = 2,
               max_upload_mb: float = 50.0, autostart_preset: str = "quick", model: str = "") -> gr.Blocks:
    """The page over ``data_dir``; ``first_start`` builds a missing Factbook index in the background and
    ``autostart`` also starts the quick experiment when no run exists. Nothing is launched here.

    ``collapse_command`` and ``prepare_command`` replace ``python -m rag_bench collapse|prepare`` (tests
    pass a small stand-in script); the UI appends ``--preset``, ``--run-dir`` and the custom flags.
    """
    commands = {}
    if collapse_command:
        commands["collapse_command"] = tuple(collapse_command)
    if prepare_command:
        commands["prepare_command"] = tuple(prepare_command)
    cfg = AppConfig(data_dir=str(data_dir), corpus=corpus, upload_root=str(upload_root or ""),
                    concurrency=concurrency, max_upload_mb=max_upload_mb, autostart_preset=autostart_preset,
                    default_model=model,
                    **commands)
    app, runner = App(cfg), RunQueue(cfg)
    with gr.Blocks(title="rag_bench") as demo:
        active_corpus = gr.State(cfg.corpus)
        gr.Markdown("## rag_bench · model collapse, closed-book against grounded")
        with gr.Row():
            banner = gr.HTML(elem_id="banner", scale=5)
            start_quick = gr.Button("Start the quick experiment", variant="primary", visible=False, scale=1)
        timer = gr.Timer(2.0)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                app_tabs.chat_tab(app, active_corpus, demo)
            with gr.Tab("Experiment", id="experiment") as experiment:
                app_tab_experiment.experiment_tab(app, runner, active_corpus, demo, timer)
            experiment.select(None, js=app_tabs.SCROLL_LOG_JS, **app_tabs.PRIVATE)
            with gr.Tab("Corpus", id="corpus"):
                app_tabs.corpus_tab(app, active_corpus, demo)
            with gr.Tab("Results", id="results"):
                app_tabs.results_tab(app, demo)

        def quick(corpus_name: str):
            runner.submit(collapse_job(cfg, AUTOSTART_RUN if corpus_name == "factbook" else f"quick-{corpus_name}",
                                       preset="quick", corpus=corpus_name))
            return banner_html(app, runner)

        refresh_banner = {"fn": lambda: banner_html(app, runner), "outputs": [banner, start_quick],
                          "api_visibility": "private", "concurrency_limit": None}
        demo.load(**refresh_banner)
        timer.tick(**refresh_banner)
        start_quick.click(app_tabs.friendly(quick), active_corpus, [banner, start_quick], api_visibility="private",
                          show_progress="hidden")
    demo.rag_app, demo.rag_runner = app, runner  # for main's shutdown and for tests
    if first_start or autostart:
        bootstrap(cfg, runner, autostart=autostart)
    return demo


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise SystemExit("--auth / RAG_BENCH_AUTH must be USER:PASSWORD")
    return user, password


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
           prevent_thread_lock: bool = False, quiet: bool = False):
    """Queue with the configured concurrency and serve; only the data dir and upload root are readable."""
    cfg = demo.rag_app.cfg
    demo.queue(default_concurrency_limit=cfg.concurrency, max_size=64)
    return demo.launch(server_name=host, server_port=port, auth=auth, share=False, show_error=False,
                       allowed_paths=[str(cfg.data_path), str(cfg.upload_path)],
                       max_file_size=int(cfg.max_upload_mb * 1_000_000), prevent_thread_lock=prevent_thread_lock,
                       quiet=quiet, css=CSS, footer_links=["gradio"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--data-dir", default="data", help="corpora, indexes and runs live here")
    parser.add_argument("--corpus", default="factbook", help="the corpus chat and new runs use at first")
    parser.add_argument("--upload-root", default="", help="uploads and server folders to ingest (default DATA/uploads)")
    parser.add_argument("--auth", default=os.environ.get("RAG_BENCH_AUTH"), help="USER:PASSWORD (or RAG_BENCH_AUTH)")
    parser.add_argument("--concurrency", type=int, default=2, help="model calls served at once; the rest queue")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest file the Corpus tab accepts")
    parser.add_argument("--model", default="", help="the chat's default model: a registry name, or a model folder or "
                        ".gguf file inside the data dir or upload root (default smollm2-135m)")
    parser.add_argument("--no-autostart", action="store_true", help="do not start the quick experiment at first start")
    args = parser.parse_args(argv)
    demo = build_demo(args.data_dir, args.corpus, upload_root=args.upload_root, first_start=True,
                      autostart=not args.no_autostart, concurrency=args.concurrency, max_upload_mb=args.max_upload_mb,
                      model=args.model)
    runner = demo.rag_runner
    atexit.register(runner.shutdown)  # a run stopped (or left queued) here is resumed at the next start
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    launch(demo, host=args.host, port=args.port, auth=parse_auth(args.auth))


if __name__ == "__main__":
    main()
