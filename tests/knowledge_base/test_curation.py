"""The curation loop: every searched question logged, clarifications settled, votes, hit counts."""
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from bot import api as bot_api
from bot.gateway import Gateway, Inbound
from bot.models import Message
from knowledge_base import api as kb
from knowledge_base import curation
from knowledge_base.models import ABANDONED, ANSWERED, CHOSEN, CLARIFIED, UNANSWERED, Feedback, Query
from knowledge_base.search import ANSWER, CLARIFY, NO_ANSWER, Decision, Hit

ROWS = [
    kb.Row("SB-001", "社保卡丢了怎么补办？", (), "先挂失，再补卡。", "社保", "社保中心"),
    kb.Row("HJ-005", "居住证怎么办理？", (), "到社区窗口申请。", "户籍", "公安局"),
    kb.Row("HJ-006", "居住证到期了怎么签注？", (), "每年签注一次。", "户籍", "公安局"),
]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
async def base(db):
    """The three entries, published; returns {entry id: PublishedQA}."""
    async with db.session() as session, session.begin():
        await kb.import_rows(session, ROWS, actor="test", publish=True)
    async with db.session() as session:
        return {qa.entry_id: qa for qa in await kb.published(session)}


def decide(kind: str, *qas, score: float = 0.7) -> Decision:
    return Decision(kind, tuple(Hit(qa, score - i * 0.05, qa.question) for i, qa in enumerate(qas)))


async def outcomes(db) -> list[tuple]:
    async with db.session() as session:
        rows = await session.scalars(select(Query).order_by(Query.id))
        return [(q.text, q.outcome, q.entry_id) for q in rows]


class FakeRasa:
    """Rasa plus the consult action, as far as the curation loop sees them: a question is
    clarified between the two 居住证 entries; a choice answers the chosen entry."""

    def __init__(self, db, base) -> None:
        self.db, self.base, self.sent = db, base, []

    async def send(self, sender: str, text: str, metadata=None) -> list[dict]:
        self.sent.append(text)
        async with self.db.session() as session, session.begin():
            if text.startswith("/choose_faq"):
                qa = self.base[json.loads(text.removeprefix("/choose_faq"))["faq_id"]]
                await curation.mark_chosen(session, int(sender), qa.entry_id, qa.version_id)
                return [{"custom": {"kind": "answer", "text": qa.answer, "qa_id": qa.entry_id,
                                    "source_ref": f"qa:{qa.entry_id}@{qa.version}"}}]
            if "居住证" in text:
                candidates = (self.base["HJ-005"], self.base["HJ-006"])
                curation.log_query(session, int(sender), text, decide(CLARIFY, *candidates, score=0.5))
                options = [{"title": qa.question, "payload": str(i), "faq_id": qa.entry_id}
                           for i, qa in enumerate(candidates, start=1)]
                return [{"custom": {"kind": "clarify", "text": "您是想问哪个？", "options": options}}]
            curation.log_query(session, int(sender), text, decide(NO_ANSWER))
            return [{"custom": {"kind": "fallback", "text": "没有找到答案。"}}]


@pytest.fixture
def gateway(db, base):
    return Gateway(db, FakeRasa(db, base), max_chars=500, rate_limit=100)


async def ask(gateway, text: str, sender: str = "web-1"):
    return await gateway.handle(Inbound(channel="webchat", sender=sender, text=text))


async def test_an_answer_a_clarification_and_a_miss_are_logged_as_such(db, base):
    conv = await bot_api.open_conversation(db, "webchat", "", "web-1")
    async with db.session() as session, session.begin():
        curation.log_query(session, conv.id, "社保卡丢了", decide(ANSWER, base["SB-001"], score=0.9))
        curation.log_query(session, conv.id, "居住证", decide(CLARIFY, base["HJ-005"], base["HJ-006"]))
        curation.log_query(session, conv.id, "  " + "狗" * 600, decide(NO_ANSWER))
    async with db.session() as session:
        rows = (await session.scalars(select(Query).order_by(Query.id))).all()
    assert [(q.outcome, q.entry_id, q.version_id, q.score) for q in rows] == [
        (ANSWERED, "SB-001", base["SB-001"].version_id, 0.9),
        (CLARIFIED, None, None, 0.7),
        (UNANSWERED, None, None, None),
    ]
    assert rows[2].text == "狗" * curation.MAX_QUERY_CHARS
    assert {q.conversation_id for q in rows} == {conv.id}


async def test_a_clarification_answered_by_number_becomes_chosen(db, gateway):
    clarify = await ask(gateway, "居住证")
    assert clarify.replies[0].kind == "clarify"
    assert await outcomes(db) == [("居住证", CLARIFIED, None)]
    picked = await ask(gateway, "第2个")
    assert gateway.rasa.sent[-1] == '/choose_faq{"faq_id": "HJ-006"}'
    assert picked.replies[0].kind == "answer"
    assert await outcomes(db) == [("居住证", CHOSEN, "HJ-006")]
    async with db.session() as session:
        assert (await session.scalar(select(Query))).version_id == gateway.rasa.base["HJ-006"].version_id


async def test_a_clarification_left_for_another_question_is_abandoned_once(db, gateway):
    await ask(gateway, "居住证")
    await ask(gateway, "狗证在哪里办")
    assert gateway.rasa.sent[-1] == "狗证在哪里办"
    assert await outcomes(db) == [("居住证", ABANDONED, None), ("狗证在哪里办", UNANSWERED, None)]
    # The last reply is no clarification any more: a bare number is just text, nothing changes.
    await ask(gateway, "2")
    assert gateway.rasa.sent[-1] == "2"
    assert [o for _, o, _ in await outcomes(db)] == [ABANDONED, UNANSWERED, UNANSWERED]


async def test_another_citizens_clarification_is_left_alone(db, gateway):
    await ask(gateway, "居住证", sender="web-1")
    await ask(gateway, "居住证", sender="web-2")
    await ask(gateway, "算了", sender="web-2")
    await ask(gateway, "1", sender="web-1")
    assert await outcomes(db) == [("居住证", CHOSEN, "HJ-005"), ("居住证", ABANDONED, None),
                                  ("算了", UNANSWERED, None)]


async def test_mark_chosen_and_abandoned_need_a_pending_clarification(db, base):
    conv = await bot_api.open_conversation(db, "webchat", "", "web-1")
    async with db.session() as session, session.begin():
        assert not await curation.mark_abandoned(session, conv.id)
        curation.log_query(session, conv.id, "居住证", decide(CLARIFY, base["HJ-005"], base["HJ-006"]))
        assert await curation.mark_abandoned(session, conv.id)
        assert not await curation.mark_chosen(session, conv.id, "HJ-005", base["HJ-005"].version_id)
    assert await outcomes(db) == [("居住证", ABANDONED, None)]


async def answer_message(db, gateway, text="第1个") -> int:
    await ask(gateway, "居住证")
    outcome = await ask(gateway, text)
    assert outcome.replies[0].kind == "answer" and outcome.replies[0].id is not None
    return outcome.replies[0].id


async def test_one_vote_per_answer_and_a_second_vote_changes_it(db, gateway, base):
    reply_id = await answer_message(db, gateway)
    async with db.session() as session, session.begin():
        first = await curation.record_feedback(session, reply_id, True)
    assert (first.entry_id, first.version_id, first.helpful) == ("HJ-005", base["HJ-005"].version_id, True)
    async with db.session() as session, session.begin():
        await curation.record_feedback(session, reply_id, False)
    async with db.session() as session:
        votes = (await session.scalars(select(Feedback))).all()
    assert [(v.message_id, v.entry_id, v.helpful) for v in votes] == [(reply_id, "HJ-005", False)]


async def test_feedback_is_refused_on_anything_but_a_qa_answer(db, gateway):
    clarify = (await ask(gateway, "居住证")).replies[0]
    async with db.session() as session:
        question = await session.scalar(select(Message.id).where(Message.direction == "in"))
    for message_id in (clarify.id, question, 10**9):
        async with db.session() as session, session.begin():
            with pytest.raises(curation.NotAnAnswer):
                await curation.record_feedback(session, message_id, True)
    # An answer naming a version that does not exist is no answer to vote on either.
    async with db.session() as session, session.begin():
        row = await session.get(Message, clarify.id)
        row.source_ref = "qa:HJ-005@9"
    async with db.session() as session, session.begin():
        with pytest.raises(curation.NotAnAnswer, match="HJ-005@9"):
            await curation.record_feedback(session, clarify.id, True)
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Feedback)) == 0


async def test_hits_per_period_in_shanghai_time(db, base):
    conv = await bot_api.open_conversation(db, "webchat", "", "web-1")
    sb, hj = base["SB-001"], base["HJ-005"]
    async with db.session() as session, session.begin():
        # 23:30 on 28 February in Shanghai, then 00:30 on 1 March: different months.
        curation.log_query(session, conv.id, "社保卡", decide(ANSWER, sb), at=utc(2026, 2, 28, 15, 30))
        curation.log_query(session, conv.id, "社保卡", decide(ANSWER, sb), at=utc(2026, 2, 28, 16, 30))
        for hour in (1, 2):
            curation.log_query(session, conv.id, "居住证", decide(ANSWER, hj), at=utc(2026, 3, 2, hour))
        curation.log_query(session, conv.id, "社保", decide(CLARIFY, sb, hj), at=utc(2026, 3, 3, 1))
        await curation.mark_chosen(session, conv.id, sb.entry_id, sb.version_id)
        curation.log_query(session, conv.id, "狗证", decide(NO_ANSWER), at=utc(2026, 3, 3, 2))
        curation.log_query(session, conv.id, "社保卡", decide(ANSWER, sb), at=utc(2026, 4, 1, 2))
        replies = []
        for qa in (sb, hj):
            row = Message(conversation_id=conv.id, channel="webchat", direction="out", source="bot",
                          kind="answer", text=qa.answer, source_ref=f"qa:{qa.entry_id}@{qa.version}")
            session.add(row)
            replies.append(row)
        await session.flush()
        await curation.record_feedback(session, replies[0].id, True, at=utc(2026, 3, 3, 1, 1))
        await curation.record_feedback(session, replies[1].id, False, at=utc(2026, 3, 2, 1, 1))

    async def hits(period, since=utc(2026, 1, 1), until=utc(2026, 4, 1)):
        async with db.session() as session:
            return [tuple(vars(r).values()) for r in await curation.hits(session, since, until, period)]

    # Tied on answers, the entry citizens found helpful comes first.
    assert await hits("month") == [("SB-001", "2026-02", 1, 0, 0),
                                   ("SB-001", "2026-03", 2, 1, 0), ("HJ-005", "2026-03", 2, 0, 1)]
    assert await hits("day") == [("SB-001", "2026-02-28", 1, 0, 0), ("SB-001", "2026-03-01", 1, 0, 0),
                                 ("HJ-005", "2026-03-02", 2, 0, 1), ("SB-001", "2026-03-03", 1, 1, 0)]
    assert await hits("week") == [("SB-001", "2026-W09", 2, 0, 0),
                                  ("HJ-005", "2026-W10", 2, 0, 1), ("SB-001", "2026-W10", 1, 1, 0)]
    assert await hits("quarter", until=None) == [("SB-001", "2026-Q1", 3, 1, 0), ("HJ-005", "2026-Q1", 2, 0, 1),
                                                 ("SB-001", "2026-Q2", 1, 0, 0)]
    assert await hits("month", since=utc(2026, 3, 2)) == [("HJ-005", "2026-03", 2, 0, 1),
                                                          ("SB-001", "2026-03", 1, 1, 0)]
    with pytest.raises(ValueError, match="period must be one of"):
        await hits("year")


async def test_gap_queries_are_the_misses_and_the_abandoned_clarifications(db, gateway):
    conv = await bot_api.open_conversation(db, "webchat", "", "web-9")
    async with db.session() as session, session.begin():
        curation.log_query(session, conv.id, "很久以前的问题", decide(NO_ANSWER), at=utc(2020, 1, 1))
    await ask(gateway, "居住证")
    await ask(gateway, "狗证在哪里办")
    await ask(gateway, "居住证")
    await ask(gateway, "1")
    async with db.session() as session:
        recent = await curation.gap_queries(session, datetime.now(timezone.utc) - timedelta(days=1))
        everything = await curation.gap_queries(session, utc(2019, 1, 1))
    assert recent == ["居住证", "狗证在哪里办"]
    assert everything == ["很久以前的问题", "居住证", "狗证在哪里办"]
