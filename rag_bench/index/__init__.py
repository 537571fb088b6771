"""The retrieval index over a human corpus: FAISS store, its integrity checks, the embedder, ANN types, retrievers.

    rag-bench ingest ./docs --name acme         # store.update_index: build or update data/indexes/acme
    rag-bench search "capital of Algeria" -k 5  # store.load_index (integrity checks first) + retrieve

store (build, update, load), integrity (the checks every load runs), embedding (MiniLM, precision, resumable
batches), ann (flat, HNSW, IVF), retrieve (dense, bm25, hybrid LangChain retrievers).
"""
