"""The human corpus: a folder, a file or a glob of documents read into chunks, with every file accounted for.

    rag-bench ingest ./company_docs --name acme      # txt md html pdf docx csv jsonl
    from rag_bench.corpus.load import load_corpus    # or rag_bench.load_corpus

Modules:

* ``load``: ``load_corpus``: files -> LangChain Documents -> chunks with stable ids; the ingest report;
* ``files``: which files an ingest sees (hidden files, links), encodings, text streamed in segments.

This package imports nothing at import time.
"""
