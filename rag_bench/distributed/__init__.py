"""Past one machine: the collapse run's branches as Ray tasks, sharded generation with Ray Data, Ray Train.

    rag-bench collapse --preset quick --ray                 # a local Ray cluster on this machine's cores
    rag-bench collapse --preset full --ray auto             # the cluster `ray start --head` runs here
    rag-bench ingest corpus.jsonl --name big --index hnsw --ray

Nothing in this package is imported unless ``--ray`` (or ``ray_address=``) asks for it, and nothing
here imports Ray at module level but ``cluster.connect``'s callers, so the rest of rag_bench runs
without Ray installed. Every module writes what it finishes atomically into the same run folder the
sequential path writes, so a run resumes with or without Ray. docs/scale.md describes the cluster setup.
"""
