"""Composite nn functions built from registry ops: normalization, dropout, attention, embeddings."""

__all__: list[str] = []
