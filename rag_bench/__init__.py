"""rag_bench: measure model collapse and what grounding protects, side by side."""
