"""Answer a consultation from the published Q&A base: answer, clarify, or say so honestly."""
from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from bot.actions import ServiceAction, conversation_id, utter
from knowledge_base import curation
from knowledge_base.consult import consult
from knowledge_base.search import ANSWER, CLARIFY, Decision, PublishedQA, is_foreign

NO_ANSWER_TEXT = ("抱歉，问答库里暂时没有找到与您的问题相符的答案。您可以换个说法再问一次，"
                  "或输入“转人工”由工作人员为您解答。")


ENGLISH_NOTE = "Our answers are written in Chinese; here is the answer to your question:\n"
# Longer messages are letters (complaints, reports), not questions the Q&A base answers.
WITHOUT_BOT_MAX_CHARS = 60
WITHOUT_BOT_NOTE = ("\n（智能助手暂时繁忙，以上答复来自问答库。投诉举报或其他事项请稍后再发，"
                    "需要人工服务请输入“转人工”。）")


def answer_fields(qa: PublishedQA, query: str = "") -> dict:
    text = qa.answer + (f"\n（答复单位：{qa.unit}）" if qa.unit else "")
    if is_foreign(query):   # art. 11: say so in the citizen's language
        text = ENGLISH_NOTE + text
    return {"text": text, "qa_id": qa.entry_id, "source_ref": f"qa:{qa.entry_id}@{qa.version}"}


def answer_without_rasa(kb, query: str) -> tuple[dict, Decision] | None:
    """While Rasa is down or too slow (bot/gateway.py): the Q&A base's confident answer to
    `query`, said to come from there, with the search's decision for the curation log; None when
    the base has no confident answer (then the apology, and a person). No conversation context:
    that lives in Rasa."""
    if len(query) > WITHOUT_BOT_MAX_CHARS:
        return None
    decision = consult(kb.index, query)
    if decision.kind != ANSWER:
        return None
    fields = answer_fields(decision.best.qa, query)
    return {**fields, "text": fields["text"] + WITHOUT_BOT_NOTE}, decision


def last_answered(tracker: Tracker) -> str | None:
    """The entry the bot's latest reply in this session answered, the context of a follow-up.

    Read from Rasa's own events (each answer carries its `qa_id`), so nothing extra is stored.
    A later clarification, fallback or form question means the topic has moved on.
    """
    for event in reversed(tracker.events):
        if event.get("event") in ("session_started", "restart"):
            return None
        if event.get("event") == "bot":
            custom = (event.get("data") or {}).get("custom") or {}
            if custom.get("qa_id"):
                return custom["qa_id"]
            if custom.get("kind") not in (None, "info"):
                return None
    return None


class ActionAnswerQuestion(ServiceAction):
    def name(self) -> str:
        return "action_answer_question"

    async def run(self, dispatcher, tracker: Tracker, domain):
        kb = self.services.kb
        chosen = next(tracker.get_latest_entity_values("faq_id"), None)
        if tracker.latest_message.get("intent", {}).get("name") == "choose_faq" and chosen:
            qa = kb.get(chosen)
            if qa is None:  # retired between the clarification and the choice
                utter(dispatcher, "fallback", "抱歉，这个问题的答案刚刚下线了。请换个说法再问一次，或输入“转人工”。")
            else:
                await self._log(tracker, chosen=qa)
                utter(dispatcher, "answer", **answer_fields(qa))
            return [SlotSet("faq_id", None)]

        query = tracker.latest_message.get("text") or ""
        previous = last_answered(tracker)
        decision = consult(kb.index, query, previous=kb.get(previous) if previous else None)
        await self._log(tracker, query=query, decision=decision)
        if decision.kind == ANSWER:
            qa = decision.best.qa
            utter(dispatcher, "answer", **answer_fields(qa, query))
        elif decision.kind == CLARIFY:
            options = [{"title": h.qa.question, "payload": str(i), "faq_id": h.qa.entry_id}
                       for i, h in enumerate(decision.hits, start=1)]
            lines = "\n".join(f"{o['payload']}. {o['title']}" for o in options)
            utter(dispatcher, "clarify",
                  f"您是想问下面哪个问题？请回复序号：\n{lines}\n都不是的话，可以换个说法再问，或输入“转人工”。",
                  options=options)
        else:
            utter(dispatcher, "fallback", NO_ANSWER_TEXT)
        return []

    async def _log(self, tracker: Tracker, query: str = "", decision: Decision | None = None,
                   chosen: PublishedQA | None = None) -> None:
        """The curation loop's record: how a search decided, or which candidate was chosen."""
        async with self.services.db.session() as session, session.begin():
            if chosen is not None:
                await curation.mark_chosen(session, conversation_id(tracker), chosen.entry_id,
                                           chosen.version_id)
            else:
                curation.log_query(session, conversation_id(tracker), query, decision)
