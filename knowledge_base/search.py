"""The Q&A search: match a citizen's question against published entries and decide.

First version (foundation issue): IDF-weighted token overlap over jieba words and character
bigrams, across each entry's canonical and similar questions. The knowledge-base issue adds the
dense embedding index and fusion; the decision interface stays.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from knowledge_base.text import tokens

ANSWER = "answer"
CLARIFY = "clarify"
NO_ANSWER = "no_answer"


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


@dataclass(frozen=True)
class Hit:
    qa: PublishedQA
    score: float             # 0..1
    matched: str             # the question text that matched best


@dataclass(frozen=True)
class Decision:
    kind: str                # answer, clarify or no_answer
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


class QAIndex:
    """An immutable in-memory index over published versions; rebuild to change it."""

    def __init__(self, entries: list[PublishedQA], thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.entries = {qa.entry_id: qa for qa in entries}
        self._docs: list[tuple[PublishedQA, str, Counter]] = []
        df: Counter = Counter()
        for qa in entries:
            for question in (qa.question, *qa.similar_questions):
                bag = Counter(tokens(question))
                if bag:
                    self._docs.append((qa, question, bag))
                    df.update(bag.keys())
        n = max(len(self._docs), 1)
        self._idf = {t: math.log(1 + n / c) for t, c in df.items()}
        self._unseen_idf = math.log(1 + n)

    def __len__(self) -> int:
        return len(self.entries)

    def _weight(self, bag: Counter) -> float:
        return sum(self._idf.get(t, self._unseen_idf) for t in bag)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """Best matching entries, one hit per entry, best first."""
        qbag = Counter(tokens(query))
        if not qbag:
            return []
        qweight = self._weight(qbag)
        best: dict[str, Hit] = {}
        for qa, question, dbag in self._docs:
            shared = qbag.keys() & dbag.keys()
            if not shared:
                continue
            overlap = sum(self._idf[t] for t in shared)
            # Weighted Dice: penalises both unmatched query words and unmatched entry words.
            score = 2 * overlap / (qweight + self._weight(dbag))
            if qa.entry_id not in best or score > best[qa.entry_id].score:
                best[qa.entry_id] = Hit(qa, round(score, 4), question)
        return sorted(best.values(), key=lambda h: -h.score)[:k]

    def decide(self, query: str) -> Decision:
        t = self.thresholds
        hits = self.search(query, k=max(t.candidates, 2))
        if not hits or hits[0].score < t.clarify:
            return Decision(NO_ANSWER, tuple(hits[:1]))
        runner_up = hits[1].score if len(hits) > 1 else 0.0
        if hits[0].score >= t.answer and hits[0].score - runner_up >= t.margin:
            return Decision(ANSWER, (hits[0],))
        offered = tuple(h for h in hits[: t.candidates] if h.score >= t.clarify)
        return Decision(CLARIFY, offered)
