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
from knowledge_base.text import bigrams, tokens

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
    """An immutable index over published versions; build a new one to change it.

    Three signals, fused into one calibrated 0..1 score per entry:
    - lexical: BM25 over each entry's questions (canonical and similar);
    - dense: cosine of sentence embeddings of those questions (faiss);
    - answer: BM25 over the entry's answer, a small bonus (the answer often names what a
      colloquial question asks about: "开通银行功能" is in the answer of 社保卡激活).
    An entry scores as its best-matching question plus the answer bonus. Only candidates are
    scored exactly: the dense and lexical top `CANDIDATES` questions and the answer top entries,
    so a query costs the same at 1k and 100k entries. `embedder=None` gives a lexical index.
    """

    CANDIDATES = 200
    IVF_FROM = 20_000        # questions; below this an exact flat scan is faster than IVF

    def __init__(self, entries: list[PublishedQA], *, embedder: Embedder | None = None,
                 dense_weight: float = 0.6, answer_weight: float = 0.0,
                 thresholds: Thresholds | None = None, vectors: np.ndarray | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.embedder = embedder
        self.dense_weight = dense_weight if embedder is not None else 0.0
        self.answer_weight = answer_weight
        self.entries = {qa.entry_id: qa for qa in entries}
        self._qa = list(entries)
        # Questions are stored entry by entry: entry i owns questions start[i]:start[i+1].
        counts = np.fromiter((len(qa.questions) for qa in entries), dtype=np.int64, count=len(entries))
        self._start = np.concatenate([[0], np.cumsum(counts)])
        self._doc_entry = np.repeat(np.arange(len(entries)), counts)
        self._doc_text = [q for qa in entries for q in qa.questions]
        self._bm25 = BM25([tokens(t) for t in self._doc_text])
        # Answers are long: character bigrams only (jieba would dominate the build time).
        self._answers = BM25([bigrams(qa.answer) for qa in entries]) if answer_weight else None
        self._dense = None
        if embedder is not None and self._doc_text:
            if vectors is None:
                vectors = encode_in_batches(embedder.passages, self._doc_text)
            # One float16 copy for exact rescoring of candidates: half the memory of float32
            # and the cosine moves by < 1e-3.
            self.vectors = np.ascontiguousarray(vectors, dtype=np.float16)
            self._dense = dense_index(np.asarray(vectors, dtype=np.float32), self.IVF_FROM)
            self._floor = unrelated_cosine(self.vectors, self._doc_entry)

    def __len__(self) -> int:
        return len(self.entries)

    def component_scores(self, query: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Lexical and dense score of every indexed question (dense None without an embedder).

        Scores all questions exactly: for benchmarks comparing fusion methods, not for serving.
        """
        lexical = self._bm25.scores(tokens(query))
        if self._dense is None:
            return lexical, None
        qv = self.embedder.queries([query])[0]
        return lexical, self._rescale(self.vectors @ qv.astype(np.float16))

    def _rescale(self, cosine: np.ndarray) -> np.ndarray:
        # Each model has its own cosine scale (e5 rates unrelated texts ~0.75, USE ~0.2):
        # map "as similar as unrelated questions" to 0 and identical to 1. Below 0 is kept,
        # not clipped: in a base of look-alike questions the order down there still matters.
        cosine = cosine.astype(np.float32)
        return np.minimum((cosine - self._floor) / (1 - self._floor), 1)

    def _candidates(self, query: str, words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate entries, the fused score of each of their questions (grouped by entry, in
        candidate order) and each candidate's answer score."""
        lexical = self._bm25.scores(words)
        n = self.CANDIDATES
        lex_top = top(lexical, n)
        found = [self._doc_entry[lex_top[lexical[lex_top] > 0]]]
        answer = None
        if self._answers is not None and not is_foreign(query):
            answer = self._answers.scores([w for w in words if w.startswith("#")])
            # Fewer: an entry found only through its answer rarely wins, and each costs a rescore.
            ans_top = top(answer, n // 4)
            found.append(ans_top[answer[ans_top] > 0])
        qv = None
        if self._dense is not None:
            qv = self.embedder.queries([query])
            _, ids = self._dense.search(qv, min(n, len(self._doc_text)))
            found.append(self._doc_entry[ids[0][ids[0] >= 0]])
        cand = np.unique(np.concatenate(found))
        docs = np.concatenate([np.arange(self._start[e], self._start[e + 1]) for e in cand] or [[]]).astype(np.int64)
        scores = lexical[docs]
        if qv is not None:
            w = 1.0 if is_foreign(query) else self.dense_weight
            dense = self._rescale(self.vectors[docs] @ qv[0].astype(np.float16))
            scores = w * dense + (1 - w) * scores
        bonus = (answer[cand] * self.answer_weight if answer is not None
                 else np.zeros(len(cand), dtype=np.float32))
        return cand, scores, bonus

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """Best matching entries, one hit per entry, best first."""
        if not self._doc_text or not query.strip():
            return []
        cand, doc_scores, bonus = self._candidates(query, tokens(query))
        if not len(cand):
            return []
        sizes = self._start[cand + 1] - self._start[cand]
        bounds = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        # Divided so that a perfect match on every signal is still 1 (foreign queries skip the
        # answer signal: the answers are Chinese).
        with_answer = self._answers is not None and not is_foreign(query)
        scores = (np.maximum.reduceat(doc_scores, bounds) + bonus) / (1 + self.answer_weight * with_answer)
        hits: list[Hit] = []
        # Lexical scores are 0 without a shared word: no hit. Dense scores always rank.
        floor = 0.0 if self._dense is None else -np.inf
        for i in top(scores, k):
            if scores[i] <= floor:
                break
            e, first = cand[i], bounds[i]
            matched = self._start[e] + int(np.argmax(doc_scores[first : first + sizes[i]]))
            hits.append(Hit(self._qa[e], round(float(scores[i]), 4), self._doc_text[matched]))
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
    cos = np.einsum("ij,ij->i", vectors[a[keep]].astype(np.float32), vectors[b[keep]].astype(np.float32))
    return float(min(np.percentile(cos, 95), 0.95))


def encode_in_batches(encode, texts: list[str], batch: int = 256, progress=None) -> np.ndarray:
    """Embed `texts` batch by batch; `progress(done, total)` is called after each batch."""
    parts = []
    for i in range(0, len(texts), batch):
        parts.append(encode(texts[i : i + batch]))
        if progress:
            progress(min(i + batch, len(texts)), len(texts))
    return np.vstack(parts).astype(np.float32) if parts else np.zeros((0, 1), dtype=np.float32)


def dense_index(vectors: np.ndarray, ivf_from: int):
    """A faiss inner-product index: exact (flat) for small bases, IVF for large ones.

    IVF scans about 1/16 of the questions per query, on vectors stored in 8 bits per dimension
    (a quarter of the memory); candidates are rescored exactly anyway, so the approximation
    only decides which questions become candidates.
    """
    import faiss

    dim = vectors.shape[1]
    if len(vectors) < ivf_from:
        index = faiss.IndexFlatIP(dim)
    else:
        # About 4·√n lists, each trained on at least 39 points (faiss's minimum for k-means).
        lists = min(int(4 * np.sqrt(len(vectors))), len(vectors) // 39)
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, lists,
                                              faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.random.default_rng(0).choice(len(vectors), min(len(vectors), lists * 40), replace=False)]
        index.train(sample)
        index.nprobe = max(8, lists // 16)
    index.add(vectors)
    return index
