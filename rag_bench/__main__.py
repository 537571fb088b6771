"""python -m rag_bench ... is the same as rag-bench ..."""

import sys

from rag_bench.cli import main

sys.exit(main())
