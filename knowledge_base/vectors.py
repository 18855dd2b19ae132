"""Embeddings of questions, kept on disk so a restart or a publish embeds only what is new.

Embedding is the slow part of building the index (hundreds of questions a second on two
cores); everything else is rebuilt from these in seconds. One file per embedding backend,
keyed by question text, saved with the base's stamp so an operator can see how fresh it is.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from knowledge_base.search import encode_in_batches

log = logging.getLogger(__name__)


class VectorStore:
    def __init__(self, directory: Path | None, backend: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", backend).strip("_") or "backend"
        self.path = Path(directory) / f"{safe}.npz" if directory else None
        self.backend = backend
        self._rows: dict[str, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float16)
        self.stamp: str | None = None
        if self.path and self.path.exists():
            self._load()

    def __len__(self) -> int:
        return len(self._rows)

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("backend") != self.backend:
                    log.warning("%s was made by %s, not %s: ignored", self.path, meta.get("backend"), self.backend)
                    return
                texts = json.loads(str(data["texts"]))
                self._vectors = data["vectors"]
        except (OSError, ValueError, KeyError) as exc:   # a damaged file only costs a re-embed
            log.warning("could not read %s (%s): questions will be embedded again", self.path, exc)
            return
        self._rows = {t: i for i, t in enumerate(texts)}
        self.stamp = meta.get("stamp")

    def vectors(self, texts: list[str], encode, progress=None) -> tuple[np.ndarray, int]:
        """The vector of each text, embedding only those not seen before; and how many were new."""
        new = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if new:
            fresh = encode_in_batches(encode, new, progress=progress).astype(np.float16)
            start = len(self._rows)
            self._vectors = fresh if not start else np.vstack([self._vectors, fresh])
            self._rows.update((t, start + i) for i, t in enumerate(new))
        rows = np.fromiter((self._rows[t] for t in texts), dtype=np.int64, count=len(texts))
        return self._vectors[rows].astype(np.float32), len(new)

    def keep_only(self, texts: list[str]) -> None:
        """Forget texts no longer in the base (edited or retired questions)."""
        wanted = [t for t in dict.fromkeys(texts) if t in self._rows]
        if len(wanted) == len(self._rows):
            return
        rows = np.fromiter((self._rows[t] for t in wanted), dtype=np.int64, count=len(wanted))
        self._vectors = self._vectors[rows]
        self._rows = {t: i for i, t in enumerate(wanted)}

    def save(self, stamp: str) -> None:
        """Write atomically: a crash mid-write leaves the previous file."""
        if self.path is None:
            return
        self.stamp = stamp
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        meta = json.dumps({"backend": self.backend, "stamp": stamp, "count": len(self._rows)})
        texts = json.dumps(list(self._rows), ensure_ascii=False)
        np.savez(tmp, meta=np.array(meta), texts=np.array(texts), vectors=self._vectors)
        os.replace(tmp, self.path)


def progress_logger(what: str = "embedding questions"):
    """A `progress(done, total)` that logs every tenth of the way (for server start-up)."""
    shown = {"tenth": -1}

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth > shown["tenth"]:
            shown["tenth"] = tenth
            log.info("%s: %d/%d (%d%%)", what, done, total, done * 100 // max(total, 1))

    return progress
