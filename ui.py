"""The rag_bench web page: search the human index (chat and experiments arrive with the UI issue).

    python ui.py --host 127.0.0.1 --port 7860 --data-dir data

`build_demo()` returns the Blocks without launching, so tests and other apps can mount it.
"""

from __future__ import annotations

import argparse
import os
from functools import lru_cache
from pathlib import Path

import gradio as gr

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MAX_QUERY_CHARS = 1000


@lru_cache(maxsize=4)
def _retriever(index_path: str):
    from rag_bench.index import load_index
    from rag_bench.retrieve import make_retriever

    return make_retriever(load_index(index_path).store)


def search_markdown(index_path: Path, query: str, k: int, mode: str) -> str:
    """Ranked chunks as Markdown; a problem the user must fix becomes gr.Error."""
    from rag_bench.index import IndexStoreError

    query = (query or "").strip()
    if not query:
        raise gr.Error("Type a query first.")
    if len(query) > MAX_QUERY_CHARS:
        raise gr.Error(f"The query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}.")
    try:
        docs = _retriever(str(index_path)).search(query, k=int(k), mode=mode)
    except IndexStoreError as exc:
        raise gr.Error(str(exc)) from None
    if not docs:
        return "No results."
    rows = []
    for doc in docs:
        meta = doc.metadata
        where = meta.get("source", "") + (f", page {meta['page']}" if meta.get("page") else "")
        rows.append(f"**{meta['rank']}.** score {meta['score']:.3f} · `{where}`\n\n> {doc.page_content[:600]}")
    return "\n\n".join(rows)


def build_demo(data_dir: str | Path = "data", corpus: str = "factbook") -> gr.Blocks:
    index_path = Path(data_dir) / "indexes" / corpus
    with gr.Blocks(title="rag_bench") as demo:
        gr.Markdown(f"# rag_bench\nSearch the human index `{corpus}` ({index_path}).")
        with gr.Row():
            query = gr.Textbox(label="Query", placeholder="capital of Algeria", scale=4, max_length=MAX_QUERY_CHARS)
            k = gr.Slider(1, 20, value=5, step=1, label="k")
            mode = gr.Radio(["dense", "bm25", "hybrid"], value="dense", label="Retrieval")
        results = gr.Markdown()
        search = gr.Button("Search", variant="primary")
        for trigger in (search.click, query.submit):
            trigger(lambda q, kk, m: search_markdown(index_path, q, kk, m), [query, k, mode], results)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    build_demo(args.data_dir).queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
