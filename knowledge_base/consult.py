"""A consultation as a conversation asks it: urgent notices first, follow-ups in context.

Builds on the search's public decision; it adds no scoring of its own.

- Urgent notices (art. 15): a published entry with `notice_until` in the future. When it is
  relevant to the question it is the answer, even if an ordinary entry scored a bit higher.
- Follow-ups: "那需要带什么材料？" names no service of its own; it is searched together with
  the question answered just before.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import jieba

from knowledge_base.search import ANSWER, NO_ANSWER, Decision, Hit, PublishedQA
from knowledge_base.text import STOPWORDS, normalise

jieba.setLogLevel(logging.WARNING)

# What a question can ask about any service — where, how long, what to bring, who must come —
# without saying which service. jieba's words, as it cuts such questions.
ASPECT_WORDS = frozenset(
    "材料 资料 证件 证明 带 准备 哪里 哪儿 哪 在哪 哪个 地点 地址 窗口 多久 多长 时间 长时间 "
    "多长时间 几天 办好 拿到 多少 钱 多少钱 费用 收费 交钱 免费 网上 线上 手机 上办 能办 邮寄 "
    "本人 亲自 到场 现场 代办 家人 别人 异地 外地 电话 预约 周末 几点 上班 条件 流程 怎么办 办理 "
    "where when how long much cost fee fees documents document bring online apply office".split()
)
# Words that give a question its follow-up tone (那…, 还有…) but no content.
FILLER_WORDS = STOPWORDS | frozenset(
    "那么 那要 还有 还要 另外 然后 再 得 上 才能 拿 交 好 "
    "then and also what do does i me my it is the a to can should need go get take".split()
)


def consult(index, query: str, previous: PublishedQA | str | None = None,
            now: datetime | None = None) -> Decision:
    """Decide how to answer `query` in a conversation.

    `index` is the served `QAIndex` (KnowledgeBase.index); `previous` is the entry answered just
    before in this conversation, or its question text.
    """
    now = now or datetime.now(timezone.utc)
    decision, hits = index.lookup(query)
    if previous is not None and is_follow_up(query):
        context = previous.question if isinstance(previous, PublishedQA) else previous
        in_context, context_hits = index.lookup(f"{context} {query}")
        # On its own a topic-less question is a guess at some other service (需要什么材料 alone
        # matches 结婚登记), so the context wins unless it finds nothing.
        if in_context.kind != NO_ANSWER:
            hits, decision = context_hits, in_context
    return _notice_first(index, hits, decision, now)


def is_follow_up(query: str) -> bool:
    """Asks only about an aspect (where, how long, what to bring …) and names no service."""
    words = [w for w in jieba.lcut(normalise(query)) if w.strip()]
    names_a_service = any(w not in ASPECT_WORDS and w not in FILLER_WORDS for w in words)
    return not names_a_service and any(w in ASPECT_WORDS for w in words)


def is_active_notice(qa: PublishedQA, now: datetime) -> bool:
    return qa.notice_until is not None and now < qa.notice_until


def active_notices(index, now: datetime | None = None) -> list[PublishedQA]:
    """The published notices in force, the one ending soonest first."""
    now = now or datetime.now(timezone.utc)
    notices = [qa for qa in index.entries.values() if is_active_notice(qa, now)]
    return sorted(notices, key=lambda qa: (qa.notice_until, qa.entry_id))


def _notice_first(index, hits: list[Hit], decision: Decision, now: datetime) -> Decision:
    """A relevant active notice among the candidates becomes the answer.

    Relevant: scored at least the clarify threshold and not clearly beaten, i.e. no other entry
    leads it by the answer margin — a citizen asking exactly how to replace a lost card still
    gets the procedure, not a rebuttal that merely mentions cards.
    """
    t = index.thresholds
    best = hits[0].score if hits else 0.0
    for hit in hits[: t.candidates]:
        if (is_active_notice(hit.qa, now) and hit.score >= t.clarify
                and best - hit.score < t.margin):
            return Decision(ANSWER, (hit,))
    return decision
