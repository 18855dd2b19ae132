"""The Q&A search: match a citizen's question against published entries and decide.

Hybrid: a dense sentence-embedding index (faiss, inner product of normalised vectors) and BM25
over jieba words and character bigrams, both over each entry's canonical and similar questions.
The two scores are fused linearly into one calibrated 0..1 score per entry (the weight and the
decision thresholds are measured: docs/kb.md); an entry scores as its best-matching question.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from knowledge_base.embeddings import Embedder
from knowledge_base.lexical import BM25
from knowledge_base.text import tokens

ANSWER = "answer"
CLARIFY = "clarify"
NO_ANSWER = "none"
_LATIN = re.compile(r"[A-Za-z]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class PublishedQA:
    """One published entry version, as the search sees it."""

    entry_id: str            # the external id, shown everywhere (e.g. SB-001)
    version_id: int
    version: int
    question: str
    similar_questions: tuple[str, ...]
    answer: str
    category: str = ""
    unit: str = ""
    tags: tuple[str, ...] = ()
    notice_until: datetime | None = None     # an urgent notice (art. 15) until then

    @property
    def questions(self) -> tuple[str, ...]:
        return (self.question, *self.similar_questions)


@dataclass(frozen=True)
class Hit:
    qa: PublishedQA
    score: float             # 0..1, fused
    matched: str             # the question text that matched best


@dataclass(frozen=True)
class Decision:
    kind: str                # answer, clarify or none
    hits: tuple[Hit, ...]    # best first; for clarify, the candidates to offer

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


@dataclass(frozen=True)
class Thresholds:
    answer: float = 0.55     # at least this similar to answer outright …
    margin: float = 0.08     # … and this far ahead of the next entry
    clarify: float = 0.30    # below this, no candidate is worth offering
    candidates: int = 3


def is_foreign(text: str) -> bool:
    """Mostly Latin letters and no Chinese: lexical matching against Chinese cannot help."""
    return bool(_LATIN.search(text)) and not _HAN.search(text)


class QAIndex:
    """An immutable index over published versions; rebuild (or `with_entries`) to change it.

    `embedder=None` gives a lexical-only index (no model needed).
    """

    def __init__(self, entries: list[PublishedQA], *, embedder: Embedder | None = None,
                 dense_weight: float = 0.6, thresholds: Thresholds | None = None,
                 vectors: np.ndarray | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.embedder = embedder
        self.dense_weight = dense_weight if embedder is not None else 0.0
        self.entries = {qa.entry_id: qa for qa in entries}
        self._qa = list(entries)
        self._doc_entry: list[int] = []
        self._doc_text: list[str] = []
        for i, qa in enumerate(entries):
            for question in qa.questions:
                self._doc_entry.append(i)
                self._doc_text.append(question)
        self._doc_entry_arr = np.asarray(self._doc_entry, dtype=np.int64)
        self._bm25 = BM25([tokens(t) for t in self._doc_text])
        self._dense = None
        if embedder is not None and self._doc_text:
            import faiss

            if vectors is None:
                vectors = encode_in_batches(embedder.passages, self._doc_text)
            self._dense = faiss.IndexFlatIP(vectors.shape[1])
            self._dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
            self.vectors = vectors
            self._floor = unrelated_cosine(vectors, self._doc_entry_arr)

    def __len__(self) -> int:
        return len(self.entries)

    def component_scores(self, query: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Lexical and dense (cosine) score of every indexed question; dense is None without
        an embedder. Dense scores are exact for the dense top 200 and the lexical matches,
        zero elsewhere."""
        lexical = self._bm25.scores(tokens(query))
        if self._dense is None:
            return lexical, None
        qv = self.embedder.queries([query])
        dense = np.zeros(len(self._doc_text), dtype=np.float32)
        k = min(len(self._doc_text), 200)
        sims, ids = self._dense.search(qv, k)
        dense[ids[0]] = sims[0]
        # The lexical top-k that the dense top-k missed still get their true cosine.
        missing = np.setdiff1d(top(lexical, k), ids[0])
        missing = missing[lexical[missing] > 0]
        if len(missing):
            dense[missing] = self.vectors[missing] @ qv[0]
        # Each model has its own cosine scale (e5 rates unrelated texts ~0.75, USE ~0.2):
        # map "as similar as unrelated questions" to 0 and identical to 1. Below 0 is kept,
        # not clipped: in a base of look-alike questions the order down there still matters.
        dense = np.minimum((dense - self._floor) / (1 - self._floor), 1)
        return lexical, dense

    def _doc_scores(self, query: str) -> np.ndarray:
        """Fused score of every indexed question."""
        lexical, dense = self.component_scores(query)
        if dense is None:
            return lexical
        w = 1.0 if is_foreign(query) else self.dense_weight
        return w * dense + (1 - w) * lexical

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """Best matching entries, one hit per entry, best first."""
        if not self._doc_text or not query.strip():
            return []
        scores = self._doc_scores(query)
        # Entries have several questions: look deep enough to find k distinct entries.
        order = top(scores, k * 20 + 50)
        hits: list[Hit] = []
        seen: set[int] = set()
        # Lexical scores are 0 without a shared word: no hit. Dense scores always rank.
        floor = 0.0 if self._dense is None else -np.inf
        for d in order:
            if scores[d] <= floor or len(hits) >= k:
                break
            entry = self._doc_entry[d]
            if entry in seen:
                continue
            seen.add(entry)
            hits.append(Hit(self._qa[entry], round(float(scores[d]), 4), self._doc_text[d]))
        return hits

    def decide(self, query: str) -> Decision:
        return self.lookup(query)[0]

    def lookup(self, query: str, k: int = 5) -> tuple[Decision, list[Hit]]:
        """The decision and the top `k` hits behind it."""
        hits = self.search(query, k=max(k, self.thresholds.candidates, 2))
        return decide(hits, self.thresholds), hits[:k]


def decide(hits: list[Hit], t: Thresholds) -> Decision:
    if not hits or hits[0].score < t.clarify:
        return Decision(NO_ANSWER, tuple(hits[:1]))
    runner_up = hits[1].score if len(hits) > 1 else 0.0
    if hits[0].score >= t.answer and hits[0].score - runner_up >= t.margin:
        return Decision(ANSWER, (hits[0],))
    return Decision(CLARIFY, tuple(h for h in hits[: t.candidates] if h.score >= t.clarify))


def top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest scores, best first, without sorting the whole array."""
    if n >= len(scores):
        return np.argsort(-scores)
    part = np.argpartition(-scores, n)[:n]
    return part[np.argsort(-scores[part])]


def unrelated_cosine(vectors: np.ndarray, entry_of: np.ndarray, pairs: int = 4000) -> float:
    """The cosine that 95% of question pairs from different entries stay below."""
    if len(vectors) < 2:
        return 0.0
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(vectors), (2, pairs))
    keep = entry_of[a] != entry_of[b]
    if not keep.any():
        return 0.0
    cos = np.einsum("ij,ij->i", vectors[a[keep]], vectors[b[keep]])
    return float(min(np.percentile(cos, 95), 0.95))


def encode_in_batches(encode, texts: list[str], batch: int = 256) -> np.ndarray:
    parts = [encode(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    return np.vstack(parts).astype(np.float32)
