"""The web UI's handlers and tabs; `ui.py` at the repository root builds the page from them.

    python ui.py --host 127.0.0.1 --port 7860        # also: make run

state (paths, the App), runs and run_view (background experiments), experiment and tab_experiment (the
Experiment tab), chat, corpus, prefix and results (the other tabs' handlers), tabs (their layout), bm25.
"""
