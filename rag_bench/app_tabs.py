"""The four tabs of the page, wired to the plain handlers of rag_bench.app_chat, app_experiment, app_corpus
and app_results. Nothing here computes; it lays out components and turns user errors into gr.Error.

    python ui.py        # serves these tabs (ui.build_demo composes them)
"""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from rag_bench import app_chat, app_corpus, app_experiment, app_results
from rag_bench.app_runs import RunQueue, run_view
from rag_bench.app_state import App, UserError, generations, list_indexes, list_runs
from rag_bench.config import READER_K, ConfigError
from rag_bench.records import RecordError

ANSWER_HEIGHT = 460
PRIVATE = {"api_visibility": "private"}  # UI plumbing: kept out of the API page and gradio_client
# Gradio 6's Textbox autoscroll scrolls once, when the box first reaches its bottom, and then stays put as lines
# arrive. The log follows its newest line here instead, unless the reader has scrolled up; picking a run or
# opening the tab jumps to the newest line again.
_FOLLOW_LOG_JS = """() => requestAnimationFrame(() => {
  const box = document.querySelector('#run-log textarea');
  if (!box) return;
  if (!box.dataset.follow || FORCE) {
    box.dataset.follow = 'yes';
    box.onscroll = () => {
      box.dataset.follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 4 ? 'yes' : 'no';
    };
  }
  if (box.dataset.follow === 'yes') box.scrollTop = box.scrollHeight;
})"""
FOLLOW_LOG_JS = _FOLLOW_LOG_JS.replace("FORCE", "false")  # on each new log text
SCROLL_LOG_JS = _FOLLOW_LOG_JS.replace("FORCE", "true")  # on picking a run, on opening the tab


def _friendly_errors() -> tuple[type[Exception], ...]:
    from rag_bench.index import IndexStoreError
    from rag_bench.lm import ModelLoadError

    return UserError, ConfigError, RecordError, IndexStoreError, ModelLoadError


def friendly(fn: Callable) -> Callable:
    """Show a problem the user can fix as gr.Error with its message (never a stack trace)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except _friendly_errors() as exc:
                raise gr.Error(str(exc)) from None
        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except _friendly_errors() as exc:
            raise gr.Error(str(exc)) from None
    return call


def chat_runs(app: App) -> list[str]:
    return [r for r in list_runs(app.cfg.runs_path) if generations(app.cfg.runs_path / r)]


# ---------------------------------------------------------------------------------------
# Chat


def chat_tab(app: App, corpus: gr.State, demo: gr.Blocks) -> None:
    cfg = app.cfg
    notice = gr.Markdown("Pick a run and a generation to see what the model is.", elem_id="model-notice")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            with gr.Row():
                run = gr.Dropdown(label="Run", choices=[], allow_custom_value=True, scale=4, elem_id="chat-run")
                refresh = gr.Button("↻", scale=1, min_width=40, size="sm")
            generation = gr.Dropdown(label="Generation", choices=[], allow_custom_value=True, elem_id="chat-generation")
            with gr.Accordion("Retrieval and decoding", open=False):
                k = gr.Slider(1, 10, value=READER_K, step=1, label="k (passages)", elem_id="chat-k")
                retrieval = gr.Radio(["dense", "bm25", "hybrid"], value="bm25",
                                     label="Retrieval (bm25 finds Factbook records best)")
                temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)")
                max_new_tokens = gr.Slider(1, 256, value=32, step=1, label="Max new tokens")
            with gr.Accordion("Compare two generations", open=False):
                compare = gr.Checkbox(label="Compare generations side by side", value=False)
                generation_b = gr.Dropdown(label="Second generation", choices=[], allow_custom_value=True)
                compare_mode = gr.Radio([("closed-book", "closed"), ("grounded", "grounded")], value="closed",
                                        label="Mode of both sides")
            with gr.Accordion("Record prefix helper", open=False):
                country = gr.Dropdown(label="Country", choices=[], allow_custom_value=True, filterable=True)
                field = gr.Dropdown(label="Field", choices=[], allow_custom_value=True, filterable=True)
            folder = gr.Textbox(label="Or a model folder (inside the data dir)", placeholder="runs/r1/gen_0/model")
        with gr.Column(scale=3):
            with gr.Row():
                left = gr.Chatbot(label=app_chat.MODE_TITLES["closed"], height=ANSWER_HEIGHT, elem_id="chat-left")
                right = gr.Chatbot(label=app_chat.MODE_TITLES["grounded"], height=ANSWER_HEIGHT, elem_id="chat-right")
            with gr.Row():
                question = gr.Textbox(label="Question", placeholder=app_chat.EXAMPLES[0], scale=5,
                                      max_length=cfg.max_question_chars, elem_id="question")
                ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
            gr.Examples([[e] for e in app_chat.EXAMPLES], inputs=[question], label="Examples: the model was "
                        "trained on record lines, so a record prefix works best")
            clear = gr.Button("Clear history", size="sm")

    def load_runs(current: str | None):
        runs = chat_runs(app)
        value = current if current in runs else (runs[0] if runs else None)
        return gr.update(choices=runs, value=value)

    def load_generations(run_id: str | None, current: str | None, current_b: str | None):
        gens = list(generations(cfg.runs_path / run_id)) if run_id in chat_runs(app) else []
        first = current if current in gens else (gens[0] if gens else None)
        last = current_b if current_b in gens else (gens[-1] if gens else None)
        return gr.update(choices=gens, value=first), gr.update(choices=gens, value=last)

    @friendly
    def describe(run_id, gen, folder_text, corpus_name):
        if not (folder_text or "").strip() and not (run_id and gen):
            return "No model yet: generation 0 appears when the first run has trained it (see the Experiment tab)."
        model_dir, label = app_chat.resolve_model(cfg, run_id, gen, folder_text)
        return app_chat.describe_model(app, model_dir, label, corpus_name)

    def labels(on: bool, mode: str):
        if not on:
            return gr.update(label=app_chat.MODE_TITLES["closed"]), gr.update(label=app_chat.MODE_TITLES["grounded"])
        title = app_chat.MODE_TITLES[mode]
        return gr.update(label=f"{title}: first generation"), gr.update(label=f"{title}: second generation")

    @friendly
    def answer(question, run, generation, model_folder, corpus_name, k, retrieval, temperature, max_new_tokens,
               compare, generation_b, compare_mode, left, right):
        yield from app_chat.ask(app, question, run, generation, model_folder, corpus_name, k, retrieval, temperature,
                                max_new_tokens, compare, generation_b, compare_mode, left, right)

    def countries(corpus_name: str):
        table = app_chat.facts_table(cfg, corpus_name)
        return gr.update(choices=sorted(table), value=None)

    refresh_events = [demo.load, refresh.click]
    for event in refresh_events:
        event(load_runs, run, run, **PRIVATE).then(load_generations, [run, generation, generation_b],
                                                  [generation, generation_b], **PRIVATE)
    run.change(load_generations, [run, generation, generation_b], [generation, generation_b], **PRIVATE)
    for trigger in (generation.change, folder.submit, corpus.change):
        trigger(describe, [run, generation, folder, corpus], notice, **PRIVATE)
    demo.load(countries, corpus, country, **PRIVATE)
    corpus.change(countries, corpus, country, **PRIVATE)
    country.change(lambda c, name: gr.update(choices=app_chat.prefix_fields(cfg, name, c), value=None),
                   [country, corpus], field, **PRIVATE)
    field.change(lambda c, f, name: app_chat.record_prefix(cfg, name, c, f) or gr.update(), [country, field, corpus],
                 question, **PRIVATE)
    compare.change(labels, [compare, compare_mode], [left, right], **PRIVATE)
    compare_mode.change(labels, [compare, compare_mode], [left, right], **PRIVATE)
    inputs = [question, run, generation, folder, corpus, k, retrieval, temperature, max_new_tokens, compare,
              generation_b, compare_mode, left, right]
    ask.click(answer, inputs, [left, right], api_name="ask", concurrency_id="model")
    question.submit(answer, inputs, [left, right], **PRIVATE, concurrency_id="model")
    clear.click(lambda: ([], []), None, [left, right], **PRIVATE)


# ---------------------------------------------------------------------------------------
# Experiment


def experiment_tab(app: App, runner: RunQueue, corpus: gr.State, demo: gr.Blocks, timer: gr.Timer) -> None:
    cfg = app.cfg
    with gr.Row():
        picked = gr.Dropdown(label="Run", choices=[], allow_custom_value=True, scale=4, elem_id="exp-run")
        refresh = gr.Button("↻", scale=0, min_width=40, size="sm")
        follow = gr.Button("Follow progress", scale=1)
        cancel = gr.Button("Cancel", variant="stop", scale=1)
        resume = gr.Button("Resume", scale=1)
    status = gr.HTML(app_experiment.progress_html(None), elem_id="run-status")
    message = gr.Markdown()
    log = gr.Textbox(label="Log (tail)", lines=10, max_lines=10, autoscroll=False, interactive=False, elem_id="run-log")
    log.change(None, js=FOLLOW_LOG_JS, **PRIVATE)
    with gr.Accordion("Start a run", open=False):
        with gr.Row():
            name = gr.Textbox(label="Run name (empty: preset-corpus-time)", scale=2)
            preset = gr.Radio(list(app_experiment.PRESETS), value="quick", label="Preset", scale=2)
            gens = gr.Number(label="Generations (0 = preset's)", value=0, precision=0, minimum=0, maximum=100, scale=1)
            seed = gr.Number(label="Seed (empty = preset's)", value=None, precision=0, minimum=0, scale=1)
        with gr.Row():
            strategies = gr.CheckboxGroup(list(app_experiment.STRATEGIES), label="Strategies (none = preset's)")
            model_size = gr.Dropdown(list(app_experiment.MODEL_SIZES), value="preset default", label="Model size")
            decoding = gr.Dropdown(list(app_experiment.DECODINGS), value="preset default", label="Decoding")
        corpus_note = gr.Markdown()
        start = gr.Button("Start", variant="primary")
    with gr.Accordion("Results of this run", open=True):
        bucket = gr.Dropdown(label="Bucket", choices=[], allow_custom_value=True, scale=1)
        table = gr.Dataframe(label="Metrics by generation", interactive=False, elem_id="run-table")
        plot = gr.LinePlot(x="generation", y="value", color="series", title="exact match by generation", height=300,
                           elem_id="run-plot")
        gallery = gr.Gallery(label="Report figures", columns=2, height=560, object_fit="contain", visible=False,
                             elem_id="run-figures")

    def runs_update(current: str | None):
        runs = list_runs(cfg.runs_path)
        value = current if current in runs else app_experiment.default_run(cfg, runner)
        return gr.update(choices=runs, value=value)

    def show(run_id: str | None):
        if not run_id:
            return app_experiment.progress_html(None), ""
        try:
            view = run_view(cfg, runner, run_id)
        except UserError as exc:  # a typed run name: said in place, since the timer repeats this every tick
            return f"<p>{html.escape(str(exc))}</p>", ""
        return app_experiment.progress_html(view), view["log"]

    @friendly
    def results(run_id: str | None, bucket_name: str | None):
        frame = app_results.results_frame(cfg, [run_id] if run_id else [])
        images = app_results.report_images(cfg, run_id) if run_id else []
        buckets = app_results.choices(frame, "bucket", ("all", "tail", "torso", "head"))
        bucket_name = bucket_name if bucket_name in buckets else (buckets[0] if buckets else None)
        metric = next(iter(app_results.choices(frame, "metric", ("exact_match", "em"))), None)
        lines = (app_results.plot_frame(frame, metric=metric, bucket=bucket_name) if metric else None)
        return (gr.update(choices=buckets, value=bucket_name), app_results.run_table(frame, bucket_name or ""),
                gr.update(value=lines, title=f"{metric or 'no results yet'} by generation ({bucket_name})"),
                gr.update(value=images, visible=bool(images)))

    @friendly
    def do_start(run_name, preset_name, n, seed_value, chosen, size, decode, corpus_name):
        run_id, text = app_experiment.start_run(cfg, runner, name=run_name, preset=preset_name, generations=n or 0,
                                                strategies=chosen, model_size=size, decoding=decode,
                                                corpus=corpus_name, seed=seed_value)
        return gr.update(choices=[*list_runs(cfg.runs_path), run_id], value=run_id), text

    @friendly
    def do_follow(run_id, progress=gr.Progress()):
        yield from app_experiment.follow_run(cfg, runner, run_id, progress)

    for event in (demo.load, refresh.click):
        event(runs_update, picked, picked, **PRIVATE)
    shown_run = picked.change(show, picked, [status, log], **PRIVATE)
    shown_run.then(results, [picked, bucket], [bucket, table, plot, gallery], **PRIVATE)
    shown_run.then(None, js=SCROLL_LOG_JS, **PRIVATE)
    bucket.input(results, [picked, bucket], [bucket, table, plot, gallery], **PRIVATE)
    timer.tick(show, picked, [status, log], **PRIVATE, concurrency_limit=None)
    shown = gr.State(None)  # (run, evaluated generations) last drawn: redraw only when a generation is added

    def results_if_new(run_id: str | None, bucket_name: str | None, seen):
        if run_id and run_id not in list_runs(cfg.runs_path):  # a typed name: `show` says what is wrong
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
        now = (run_id, len(app_results.results_files(cfg.runs_path / run_id)) if run_id else 0)
        if now == seen:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
        return *results(run_id, bucket_name), now

    timer.tick(results_if_new, [picked, bucket, shown], [bucket, table, plot, gallery, shown], **PRIVATE,
               concurrency_limit=None)
    follow_args = {"fn": do_follow, "inputs": picked, "outputs": [status, log], "concurrency_limit": None,
                   "api_visibility": "private"}
    start.click(do_start, [name, preset, gens, seed, strategies, model_size, decoding, corpus], [picked, message],
                api_name="start_run").then(**follow_args)
    follow.click(**follow_args)
    cancel.click(friendly(lambda run_id: app_experiment.cancel_run(cfg, runner, run_id)), picked, message,
                 **PRIVATE)
    resume.click(friendly(lambda run_id: app_experiment.resume_run(cfg, runner, run_id)), picked, message,
                 **PRIVATE).then(**follow_args)
    corpus.change(lambda c: f"New runs train and evaluate on the active corpus **{c}**.", corpus, corpus_note,
                  **PRIVATE)
    demo.load(lambda c: f"New runs train and evaluate on the active corpus **{c}**.", corpus, corpus_note, **PRIVATE)


# ---------------------------------------------------------------------------------------
# Corpus


def corpus_tab(app: App, corpus: gr.State, demo: gr.Blocks) -> None:
    cfg = app.cfg
    with gr.Row():
        active = gr.Dropdown(label="Active corpus (chat and new runs use it)", choices=[cfg.corpus], value=cfg.corpus,
                             scale=3, elem_id="active-corpus")
        refresh = gr.Button("↻", scale=0, min_width=40, size="sm")
    stats = gr.Dataframe(headers=app_corpus.INDEX_COLUMNS, label="Indexes", interactive=False)
    name = gr.Textbox(label="Corpus name for new documents", placeholder="acme")
    with gr.Row():
        with gr.Column():
            files = gr.File(label=f"Upload files (at most {cfg.max_upload_mb:g} MB each)", file_count="multiple",
                            file_types=list(cfg.upload_extensions))
            upload = gr.Button("Upload and ingest", variant="primary")
        with gr.Column():
            folder = gr.Textbox(label=f"Or a folder on the server, inside {cfg.upload_path}", placeholder="acme_docs")
            ingest_folder = gr.Button("Ingest folder")
    summary = gr.Markdown()
    outcome = gr.Dataframe(headers=app_corpus.INGEST_COLUMNS, label="Files", interactive=False, wrap=True)

    def indexes(current: str):
        names = list_indexes(cfg.indexes_path)
        return gr.update(choices=sorted(set(names) | {current}), value=current), app_corpus.index_table(cfg)

    @friendly
    def from_upload(corpus_name, paths, progress=gr.Progress(track_tqdm=True)):
        return app_corpus.ingest_uploads(cfg, corpus_name, paths, progress)

    @friendly
    def from_folder(corpus_name, folder_text, progress=gr.Progress(track_tqdm=True)):
        return app_corpus.ingest_server_folder(cfg, corpus_name, folder_text, progress)

    for event in (demo.load, refresh.click):
        event(indexes, corpus, [active, stats], **PRIVATE)
    active.input(lambda c: c, active, corpus, **PRIVATE)
    for button, fn, source in ((upload, from_upload, files), (ingest_folder, from_folder, folder)):
        button.click(fn, [name, source], [outcome, summary], concurrency_id="ingest", concurrency_limit=1,
                     **PRIVATE).then(indexes, corpus, [active, stats], **PRIVATE)


# ---------------------------------------------------------------------------------------
# Results


def results_tab(app: App, demo: gr.Blocks) -> None:
    cfg = app.cfg
    with gr.Row():
        runs = gr.Dropdown(label="Runs to compare", choices=[], allow_custom_value=True, multiselect=True, scale=3)
        metric = gr.Dropdown(label="Metric", choices=[], allow_custom_value=True, scale=2)
        bucket = gr.Dropdown(label="Bucket", choices=[], allow_custom_value=True, scale=1)
        modes = gr.CheckboxGroup(label="Modes", choices=[], scale=2)
    plot = gr.LinePlot(x="generation", y="value", color="series", height=360)
    table = gr.Dataframe(label="Values", interactive=False, wrap=True)
    with gr.Row():
        prepare = gr.Button("Prepare downloads (CSV, JSON, HTML report)")
        refresh = gr.Button("↻ Refresh runs", size="sm")
    files = gr.File(label="Downloads", file_count="multiple", interactive=False)

    def load(current: list[str] | None):
        finished = [r for r in list_runs(cfg.runs_path) if app_results.results_files(cfg.runs_path / r)]
        chosen = [r for r in current or [] if r in finished] or finished[:1]
        return gr.update(choices=finished, value=chosen)

    @friendly
    def draw(run_ids, metric_name, bucket_name, mode_names):
        frame = app_results.results_frame(cfg, run_ids or [])
        metrics = app_results.choices(frame, "metric", ("exact_match", "em"))
        buckets = app_results.choices(frame, "bucket", ("all", "tail", "torso", "head"))
        all_modes = app_results.choices(frame, "mode", ("closed", "grounded"))
        metric_name = metric_name if metric_name in metrics else next(iter(metrics), None)
        bucket_name = bucket_name if bucket_name in buckets else next(iter(buckets), None)
        mode_names = [m for m in mode_names or [] if m in all_modes] or all_modes
        lines = app_results.plot_frame(frame, metric=metric_name, bucket=bucket_name, modes=mode_names) \
            if metric_name else None
        return (gr.update(choices=metrics, value=metric_name), gr.update(choices=buckets, value=bucket_name),
                gr.update(choices=all_modes, value=mode_names),
                gr.update(value=lines, title=f"{metric_name} ({bucket_name}) by generation"), lines)

    outputs = [metric, bucket, modes, plot, table]
    for event in (demo.load, refresh.click):
        event(load, runs, runs, **PRIVATE).then(draw, [runs, metric, bucket, modes], outputs,
                                                               **PRIVATE)
    for control in (runs, metric, bucket, modes):
        control.input(draw, [runs, metric, bucket, modes], outputs, **PRIVATE)
    prepare.click(friendly(lambda run_ids: app_results.downloads(cfg, run_ids or [])), runs, files,
                  **PRIVATE)
