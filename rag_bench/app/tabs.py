"""The Chat, Corpus and Results tabs of the page (the Experiment tab is in rag_bench.app.tab_experiment), wired
to the plain handlers of rag_bench.app.chat, app.corpus and app.results. Nothing here computes; it lays out
components and turns user errors into gr.Error.

    python ui.py        # serves these tabs (ui.build_demo composes them)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from rag_bench.app import chat as app_chat
from rag_bench.app import corpus as app_corpus
from rag_bench.app import picker as app_picker
from rag_bench.app import prefix as app_prefix
from rag_bench.app import results as app_results
from rag_bench.app.bands import band_figure
from rag_bench.app.state import App, UserError, generations, list_indexes, list_runs
from rag_bench.config import DEFAULT_READER, ConfigError, reader_for
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
    from rag_bench.index.integrity import IndexStoreError
    from rag_bench.lm import ModelLoadError

    return UserError, ConfigError, RecordError, IndexStoreError, ModelLoadError


def user_error(exc: Exception) -> gr.Error:
    """A problem the user can fix: one line in a toast, and no traceback in the server's console."""
    return gr.Error(str(exc), print_exception=False)


def friendly(fn: Callable) -> Callable:
    """Show a problem the user can fix as gr.Error with its message (never a stack trace)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except _friendly_errors() as exc:
                raise user_error(exc) from None
        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except _friendly_errors() as exc:
            raise user_error(exc) from None
    return call


def chat_runs(app: App) -> list[str]:
    return [r for r in list_runs(app.cfg.runs_path) if generations(app.cfg.runs_path / r)]


# ---------------------------------------------------------------------------------------
# Chat


def chat_tab(app: App, corpus: gr.State, demo: gr.Blocks) -> None:
    from rag_bench.models import DEFAULT_PRETRAINED

    cfg = app.cfg
    notice = gr.Markdown("Loading the model's description…", elem_id="model-notice")
    default = cfg.default_model or DEFAULT_PRETRAINED
    placeholder, examples, examples_label = app_picker.hints(app_chat.resolve_model(cfg, None, None)[0])
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            with gr.Row():
                folder = gr.Dropdown(label="Model (the default answers; a run's generation only when picked)",
                                     choices=app_picker.model_choices(cfg), value=default,
                                     allow_custom_value=True, scale=4, elem_id="chat-model")
                refresh = gr.Button("↻", scale=1, min_width=40, size="sm", elem_id="chat-refresh")
            with gr.Accordion("Retrieval and decoding", open=False):
                k = gr.Slider(1, 10, value=DEFAULT_READER.k, step=1, label="k (passages)", elem_id="chat-k")
                retrieval = gr.Radio(["dense", "bm25", "hybrid"], value=DEFAULT_READER.retrieval,
                                     label="Retrieval (hybrid read best on the dev split; bm25 until the dense "
                                           "index is built)", elem_id="chat-retrieval")
                temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)")
                max_new_tokens = gr.Slider(1, 256, value=DEFAULT_READER.max_new_tokens, step=1, label="Max new tokens")
            with gr.Accordion("Compare two generations of a run", open=False):
                compare = gr.Checkbox(label="Compare generations side by side", value=False)
                run = gr.Dropdown(label="Run", choices=[], allow_custom_value=True, elem_id="chat-run")
                generation = gr.Dropdown(label="First generation", choices=[], allow_custom_value=True,
                                         elem_id="chat-generation")
                generation_b = gr.Dropdown(label="Second generation", choices=[], allow_custom_value=True)
                compare_mode = gr.Radio([("closed-book", "closed"), ("grounded", "grounded")], value="closed",
                                        label="Mode of both sides")
            with gr.Accordion("Record prefix helper (for models trained here)", open=False):
                country = gr.Dropdown(label="Country", choices=[], allow_custom_value=True, filterable=True)
                field = gr.Dropdown(label="Field", choices=[], allow_custom_value=True, filterable=True)
        with gr.Column(scale=3):
            with gr.Row():
                left = gr.Chatbot(label=app_chat.MODE_TITLES["closed"], height=ANSWER_HEIGHT, elem_id="chat-left")
                right = gr.Chatbot(label=app_chat.MODE_TITLES["grounded"], height=ANSWER_HEIGHT, elem_id="chat-right")
            with gr.Row():
                # no max_length: the box would cut a long question silently; the handler refuses it and says so
                question = gr.Textbox(label=f"Question (at most {cfg.max_question_chars} characters)",
                                      placeholder=placeholder, scale=5, elem_id="question")
                ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
            example_set = gr.Examples([[e] for e in examples], inputs=[question], label=examples_label)
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
    def describe(folder_text, corpus_name):
        model_dir, label = app_chat.resolve_model(cfg, None, None, folder_text)
        hint, samples, title = app_picker.hints(model_dir)
        return (app_chat.describe_model(app, model_dir, label, corpus_name), gr.update(placeholder=hint),
                gr.Dataset(samples=[[e] for e in samples], label=title))

    def load_models(current: str | None):
        choices = app_picker.model_choices(cfg)
        return gr.update(choices=choices, value=current or default)

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
        table = app_prefix.facts_table(cfg, corpus_name)
        return gr.update(choices=sorted(table), value=None)

    refresh_events = [demo.load, refresh.click]
    for event in refresh_events:
        event(load_runs, run, run, **PRIVATE).then(load_generations, [run, generation, generation_b],
                                                  [generation, generation_b], **PRIVATE)
        event(load_models, folder, folder, **PRIVATE)
    run.change(load_generations, [run, generation, generation_b], [generation, generation_b], **PRIVATE)
    describing = {"fn": describe, "inputs": [folder, corpus], "outputs": [notice, question, example_set.dataset],
                  **PRIVATE}
    demo.load(**describing)
    for trigger in (folder.change, corpus.change):
        trigger(**describing)

    def reader_settings(corpus_name: str):
        # the dev-chosen reader for what this corpus has: hybrid k=3 over its dense index, bm25 k=5 until it exists
        reader = reader_for(app.has_dense_index(corpus_name))
        return gr.update(value=reader.k), gr.update(value=reader.retrieval)

    for trigger in (demo.load, corpus.change):
        trigger(reader_settings, corpus, [k, retrieval], **PRIVATE)
    demo.load(countries, corpus, country, **PRIVATE)
    corpus.change(countries, corpus, country, **PRIVATE)
    country.change(lambda c, name: gr.update(choices=app_prefix.prefix_fields(cfg, name, c), value=None),
                   [country, corpus], field, **PRIVATE)
    field.change(lambda c, f, name: app_prefix.record_prefix(cfg, name, c, f) or gr.update(), [country, field, corpus],
                 question, **PRIVATE)
    compare.change(labels, [compare, compare_mode], [left, right], **PRIVATE)
    compare_mode.change(labels, [compare, compare_mode], [left, right], **PRIVATE)
    inputs = [question, run, generation, folder, corpus, k, retrieval, temperature, max_new_tokens, compare,
              generation_b, compare_mode, left, right]
    checked = [question, run, generation, folder, temperature, max_new_tokens, compare, generation_b, compare_mode]
    # The page checks the question first, in an event without outputs: a refused question leaves its toast only,
    # where an error of the answering event would also leave an empty "Error" pill in each panel. The API's
    # /ask checks the same inside `answer`.
    check = friendly(lambda *values: app_chat.check_ask(app, *values) and None)
    ask.click(check, checked, None, **PRIVATE, show_progress="hidden").success(
        answer, inputs, [left, right], api_name="ask", concurrency_id="model", show_progress="hidden")
    question.submit(check, checked, None, **PRIVATE, show_progress="hidden").success(
        answer, inputs, [left, right], **PRIVATE, concurrency_id="model", show_progress="hidden")
    clear.click(lambda: ([], []), None, [left, right], **PRIVATE)


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
                            file_types=list(cfg.upload_extensions), elem_id="corpus-files")
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


def published_column(app: App) -> None:
    """The published results (docs/results/*), drawn when the page is built: what a newcomer sees first."""
    from rag_bench.app.published import published_results

    results = published_results(app.cfg.ui_path / "published")
    gr.Markdown("### Published results\nWhat this benchmark has measured, as committed to `docs/results/`: each "
                "with the commit that published it, its figures (95% bands), its tables (value [95% interval]) and "
                "its finding from its page under docs/.", elem_id="published-intro")
    for result in results:
        with gr.Group(elem_id=f"published-{result.name}"):
            at = f"published at `{result.commit}` ({result.date})" if result.commit else "published (no git history)"
            gr.Markdown(f"#### {result.title}\n<sub>{at} · `docs/results/{result.name}/`</sub>\n\n"
                        f"**Finding.** {result.finding}")
            if result.figures:
                with gr.Row():
                    for figure in result.figures:
                        gr.Image(str(figure), show_label=False, interactive=False, container=False)
            for caption, headers, rows in result.tables:
                gr.Dataframe(value=rows, headers=headers, label=caption, interactive=False, wrap=True)
            if result.markdown_tables:
                with gr.Accordion("Tables", open=False):
                    gr.Markdown(result.markdown_tables)


def results_tab(app: App, demo: gr.Blocks) -> None:
    with gr.Row():
        with gr.Column(scale=3):
            published_column(app)
        with gr.Column(scale=2):
            runs_column(app, demo)


def runs_column(app: App, demo: gr.Blocks) -> None:
    cfg = app.cfg
    gr.Markdown("### Your runs, for comparison")
    with gr.Row():
        runs = gr.Dropdown(label="Runs to compare", choices=[], allow_custom_value=True, multiselect=True, scale=3)
        metric = gr.Dropdown(label="Metric", choices=[], allow_custom_value=True, scale=2)
    with gr.Row():
        bucket = gr.Dropdown(label="Bucket", choices=[], allow_custom_value=True, scale=1)
        modes = gr.CheckboxGroup(label="Modes", choices=[], scale=2)
    plot = gr.Plot(label="By generation", elem_id="results-plot")  # matplotlib: lines with their interval bands
    pending = gr.Markdown("No finished generation of yours to compare yet.", elem_id="results-empty")
    table = gr.Dataframe(label="Values", interactive=False, wrap=True, visible=False, elem_id="results-table")
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
        lines, note = app_results.plot_lines(frame, app_results.run_intervals(cfg, run_ids or []),
                                             metric=metric_name, bucket=bucket_name, modes=mode_names) \
            if metric_name else ({}, "")
        figure = band_figure(lines, title=f"{metric_name} ({bucket_name}) by generation\n{note}",
                             ylabel=str(metric_name).replace("_", " ")) if lines else None
        values = app_results.plot_frame(frame, metric=metric_name, bucket=bucket_name, modes=mode_names) \
            if metric_name else None
        return (gr.update(choices=metrics, value=metric_name), gr.update(choices=buckets, value=bucket_name),
                gr.update(choices=all_modes, value=mode_names), gr.update(value=figure, visible=figure is not None),
                gr.update(value=values, visible=values is not None and not values.empty),
                gr.update(visible=values is None or values.empty))

    outputs = [metric, bucket, modes, plot, table, pending]
    for event in (demo.load, refresh.click):
        event(load, runs, runs, **PRIVATE).then(draw, [runs, metric, bucket, modes], outputs,
                                                               **PRIVATE)
    for control in (runs, metric, bucket, modes):
        control.input(draw, [runs, metric, bucket, modes], outputs, **PRIVATE)
    prepare.click(friendly(lambda run_ids: app_results.downloads(cfg, run_ids or [])), runs, files,
                  **PRIVATE)
