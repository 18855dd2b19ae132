"""The curation loop: questions the base could not answer (no match, or a clarification the
citizen left; `curation.gap_queries`), grouped so admins see what to add."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from knowledge_base.search import QAIndex
from knowledge_base.text import tokens


@dataclass
class Gap:
    count: int = 0
    examples: list[str] = field(default_factory=list)
    nearest_id: str | None = None
    nearest_question: str | None = None
    nearest_score: float = 0.0


def _similar(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def cluster(queries: list[str], index: QAIndex, threshold: float = 0.3, examples: int = 3) -> list[Gap]:
    """Greedy single-link clustering by token overlap (a wording joins the first group with a
    member close enough), most frequent wording first; biggest gaps first."""
    counts = Counter(q.strip() for q in queries if q.strip())
    groups: list[tuple[list[set[str]], Gap]] = []
    for query, n in counts.most_common():
        words = set(tokens(query))
        found = next((g for g in groups if any(_similar(m, words) >= threshold for m in g[0])), None)
        if found is None:
            found = ([], Gap())
            groups.append(found)
        members, gap = found
        members.append(words)
        gap.count += n
        if len(gap.examples) < examples:
            gap.examples.append(query)
    gaps = [gap for _, gap in groups]
    for gap in gaps:
        hits = index.search(gap.examples[0], 1)
        if hits:
            gap.nearest_id, gap.nearest_question, gap.nearest_score = (
                hits[0].qa.entry_id, hits[0].qa.question, hits[0].score)
    return sorted(gaps, key=lambda g: -g.count)
