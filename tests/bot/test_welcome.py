"""The welcome lists the urgent notices in force; a follow-up finds its context in Rasa's events."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.faq import last_answered
from bot.actions.welcome import NOTICE_HINT, WELCOME_TEXT, ActionGreet
from knowledge_base.search import PublishedQA, QAIndex

NOW = datetime.now(timezone.utc)
RUMOUR = PublishedQA("TZ-001", 1, 1, "网传社保卡要统一收费换新卡，是真的吗？", (), "不实。",
                     notice_until=NOW + timedelta(days=1))
OLD_RUMOUR = PublishedQA("TZ-000", 2, 1, "网传老年卡年底停用，是真的吗？", (), "不实。",
                         notice_until=NOW - timedelta(days=1))
ORDINARY = PublishedQA("SB-001", 3, 1, "社保卡丢了怎么补办？", (), "先挂失，再补卡。")


def tracker(events: list[dict]) -> Tracker:
    return Tracker("7", {}, {"text": "", "intent": {"name": "greet"}}, events, False, None, None,
                   "action_listen")


async def greet(entries: list[PublishedQA]) -> list[dict]:
    services = SimpleNamespace(kb=SimpleNamespace(index=QAIndex(entries)))
    dispatcher = CollectingDispatcher()
    assert await ActionGreet(services).run(dispatcher, tracker([]), {}) == []
    return [m["custom"] for m in dispatcher.messages]


async def test_the_welcome_lists_an_active_notice_and_not_an_expired_one():
    [reply] = await greet([RUMOUR, OLD_RUMOUR, ORDINARY])
    assert reply["kind"] == "info"
    assert reply["text"] == (f"{WELCOME_TEXT}\n\n【重要通知】网传社保卡要统一收费换新卡，是真的吗？\n"
                             f"{NOTICE_HINT}")
    # On the chat page a tap sends the question, which the notice answers.
    assert reply["options"] == [{"title": RUMOUR.question, "payload": RUMOUR.question,
                                 "faq_id": "TZ-001"}]


async def test_without_notices_the_welcome_is_the_plain_one():
    assert await greet([OLD_RUMOUR, ORDINARY]) == [{"kind": "info", "text": WELCOME_TEXT}]


def bot(kind: str | None, qa_id: str | None = None, text: str = "…") -> dict:
    custom = {"kind": kind, "text": text, **({"qa_id": qa_id} if qa_id else {})} if kind else None
    return {"event": "bot", "text": None if custom else text, "data": {"custom": custom}}


def user(text: str) -> dict:
    return {"event": "user", "text": text}


def test_the_previous_answer_is_read_from_the_bots_events():
    events = [user("居住证怎么办理"), bot("answer", "HJ-005"), user("谢谢"),
              bot(None, text="不客气"), user("那需要带什么材料？")]
    assert last_answered(tracker(events)) == "HJ-005"


def test_no_previous_answer_after_the_topic_moved_on_or_in_a_new_session():
    answered = [user("居住证怎么办理"), bot("answer", "HJ-005")]
    assert last_answered(tracker(answered + [user("天气"), bot("fallback"), user("在哪里办")])) is None
    assert last_answered(tracker(answered + [{"event": "session_started"}, user("在哪里办")])) is None
    assert last_answered(tracker([user("在哪里办")])) is None


async def test_the_consult_action_answers_a_follow_up_in_context(db):
    from bot.actions import Services
    from bot.actions.faq import ActionAnswerQuestion
    from knowledge_base import api as kb_api
    from knowledge_base.search import Thresholds
    from knowledge_base.settings import SearchSettings

    async with db.session() as session, session.begin():
        await kb_api.import_rows(session, kb_api.read_table(kb_api.DEMO_QA), actor="test", publish=True)
    kb = kb_api.KnowledgeBase(db, SearchSettings(thresholds=Thresholds(0.25, 0.15, 0.25)))
    await kb.refresh()
    events = [user("居住证怎么办理"), bot("answer", "HJ-005"), user("那需要带什么材料？")]
    follow_up = Tracker("web-1", {}, {"text": "那需要带什么材料？", "intent": {"name": "consult"}},
                        events, False, None, None, "action_listen")
    dispatcher = CollectingDispatcher()
    await ActionAnswerQuestion(Services(db, kb)).run(dispatcher, follow_up, {})
    [reply] = [m["custom"] for m in dispatcher.messages]
    assert reply["kind"] == "answer" and reply["qa_id"] == "HJ-005"
