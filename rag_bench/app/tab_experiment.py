"""The Experiment tab: pick a run, follow its progress and log, start, cancel and resume runs, see its results.
Layout and wiring only; the handlers are rag_bench.app.experiment's and rag_bench.app.results'.

    python ui.py        # serves this tab (ui.build_demo composes it)
"""

from __future__ import annotations

import html

import gradio as gr

from rag_bench.app import experiment as app_experiment
from rag_bench.app import results as app_results
from rag_bench.app.runs import RunQueue, known_runs, run_view
from rag_bench.app.state import App, UserError
from rag_bench.app.tabs import FOLLOW_LOG_JS, PRIVATE, SCROLL_LOG_JS, friendly

QUIET = {**PRIVATE, "show_progress": "hidden"}  # a refused click says why in a toast, not as an "Error" pill


def preset_note_of(preset: str) -> str:
    from rag_bench.app.published import preset_note

    return preset_note(preset)


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
            # a Textbox, not a Number: a Number shows 0 when empty, which reads as seed 0
            seed = gr.Textbox(label="Seed (empty = preset's)", value="", placeholder="preset's", scale=1,
                              elem_id="seed")
        with gr.Row():
            strategies = gr.CheckboxGroup(list(app_experiment.STRATEGIES), label="Strategies (none = preset's)")
            model_size = gr.Dropdown(list(app_experiment.MODEL_SIZES), value="preset default", label="Model size")
            decoding = gr.Dropdown(list(app_experiment.DECODINGS), value="preset default", label="Decoding")
        preset_note = gr.Markdown(preset_note_of("quick"), elem_id="preset-note")
        preset.change(preset_note_of, preset, preset_note, **PRIVATE)
        corpus_note = gr.Markdown()
        start = gr.Button("Start", variant="primary", elem_id="start-run")
    with gr.Accordion("Results of this run", open=True):
        bucket = gr.Dropdown(label="Bucket", choices=[], allow_custom_value=True, scale=1)
        pending = gr.Markdown("No evaluated generation yet.", elem_id="run-table-empty")
        # hidden until there are rows: an empty Dataframe shows placeholder headers "1 2 3"
        table = gr.Dataframe(label="Metrics by generation", interactive=False, elem_id="run-table", visible=False)
        plot = gr.LinePlot(x="generation", y="value", color="series", title="exact match by generation", height=300,
                           elem_id="run-plot")
        gallery = gr.Gallery(label="Report figures", columns=2, height=560, object_fit="contain", visible=False,
                             elem_id="run-figures")

    def runs_update(current: str | None):
        runs = known_runs(cfg, runner)
        value = current if current in runs else app_experiment.default_run(cfg, runner)
        return gr.update(choices=runs, value=value), tuple(runs)

    def runs_if_new(current: str | None, listed):
        """On each tick: a run that appeared (queued by first start, by another tab) joins the list."""
        runs = tuple(known_runs(cfg, runner))
        if runs == tuple(listed or ()) and (current or not runs):
            return gr.skip(), listed
        return runs_update(current)

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
        rows = app_results.run_table(frame, bucket_name or "")
        return (gr.update(choices=buckets, value=bucket_name), gr.update(value=rows, visible=not rows.empty),
                gr.update(visible=rows.empty),
                gr.update(value=lines, title=f"{metric or 'no results yet'} by generation ({bucket_name})"),
                gr.update(value=images, visible=bool(images)))

    @friendly
    def do_start(run_name, preset_name, n, seed_text, chosen, size, decode, corpus_name):
        run_id, text = app_experiment.start_run(cfg, runner, name=run_name, preset=preset_name, generations=n or 0,
                                                strategies=chosen, model_size=size, decoding=decode,
                                                corpus=corpus_name, seed=app_experiment.parse_seed(seed_text))
        runs = known_runs(cfg, runner)
        return gr.update(choices=runs, value=run_id), text, tuple(runs)

    @friendly
    def do_follow(run_id, progress=gr.Progress()):
        yield from app_experiment.follow_run(cfg, runner, run_id, progress)

    listed = gr.State(())  # the run list last sent to the dropdown
    for event in (demo.load, refresh.click):
        event(runs_update, picked, [picked, listed], **PRIVATE)
    timer.tick(runs_if_new, [picked, listed], [picked, listed], **PRIVATE, concurrency_limit=None)
    result_outputs = [bucket, table, pending, plot, gallery]
    shown_run = picked.change(show, picked, [status, log], **PRIVATE)
    shown_run.then(results, [picked, bucket], result_outputs, **PRIVATE)
    shown_run.then(None, js=SCROLL_LOG_JS, **PRIVATE)
    bucket.input(results, [picked, bucket], result_outputs, **PRIVATE)
    timer.tick(show, picked, [status, log], **PRIVATE, concurrency_limit=None)
    shown = gr.State(None)  # (run, evaluated generations) last drawn: redraw only when a generation is added

    def results_if_new(run_id: str | None, bucket_name: str | None, seen):
        if run_id and run_id not in known_runs(cfg, runner):  # a typed name: `show` says what is wrong
            return *(gr.skip(),) * len(result_outputs), seen
        now = (run_id, len(app_results.results_files(cfg.runs_path / run_id)) if run_id else 0)
        if now == seen:
            return *(gr.skip(),) * len(result_outputs), seen
        return *results(run_id, bucket_name), now

    timer.tick(results_if_new, [picked, bucket, shown], [*result_outputs, shown], **PRIVATE, concurrency_limit=None)
    follow_args = {"fn": do_follow, "inputs": picked, "outputs": [status, log], "concurrency_limit": None,
                   "api_visibility": "private"}
    start.click(do_start, [name, preset, gens, seed, strategies, model_size, decoding, corpus],
                [picked, message, listed], api_name="start_run", show_progress="hidden").success(**follow_args)
    follow.click(**follow_args)
    cancel.click(friendly(lambda run_id: app_experiment.cancel_run(cfg, runner, run_id)), picked, message, **QUIET)
    resume.click(friendly(lambda run_id: app_experiment.resume_run(cfg, runner, run_id)), picked, message,
                 **QUIET).success(**follow_args)
    corpus.change(lambda c: f"New runs train and evaluate on the active corpus **{c}**.", corpus, corpus_note,
                  **PRIVATE)
    demo.load(lambda c: f"New runs train and evaluate on the active corpus **{c}**.", corpus, corpus_note, **PRIVATE)
