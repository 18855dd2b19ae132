"""Hand-off to staff and satisfaction ratings."""
from __future__ import annotations

import re

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from bot import api
from bot.actions import ServiceAction, conversation_id, utter
from casework import events, lifecycle
from server.db import utcnow

HANDOFF_TEXT = "好的，正在为您转接人工客服，请稍候。工作人员会在这里直接回复您，期间智能助手不再自动回复。"

# Longest words first, so that 非常不满意 is not read as 满意.
_RATING_WORDS = [("非常不满意", 1), ("很不满意", 1), ("不满意", 2), ("不太满意", 2), ("基本满意", 3),
                 ("一般", 3), ("还行", 3), ("非常满意", 5), ("很满意", 5), ("满意", 4)]
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}


def rating_score(text: str) -> int | None:
    """1–5 from what a citizen types: 非常满意, 5分, 五星, 评价：满意 …"""
    for word, score in sorted(_RATING_WORDS, key=lambda ws: -len(ws[0])):
        if word in text:
            return score
    match = re.search(r"([1-5一二两三四五])\s*(分|星|颗星)", text)
    if match:
        d = match.group(1)
        return int(d) if d.isdigit() else _CN_DIGITS[d]
    return None


class ActionHandoff(ServiceAction):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher, tracker: Tracker, domain):
        conv = conversation_id(tracker)
        if conv is not None:
            await api.request_handoff(self.services.db, conv, api.CITIZEN_REQUEST)
        utter(dispatcher, "handoff", HANDOFF_TEXT, source_ref="handoff:citizen_request")
        return []


class ActionRate(ServiceAction):
    def name(self) -> str:
        return "action_rate"

    async def run(self, dispatcher, tracker: Tracker, domain):
        text = " ".join(filter(None, [tracker.get_slot("rating"), tracker.latest_message.get("text")]))
        score = rating_score(text)
        if score is None:
            utter(dispatcher, "info", "请告诉我您的评价：非常满意、满意、基本满意、不满意、非常不满意，或直接打1到5分。")
            return [SlotSet("rating", None)]
        conv = conversation_id(tracker)
        case = await self._rate_case(conv, score)
        if case is not None:
            if case.status == lifecycle.REOPENED:
                thanks = (f"很抱歉没能让您满意。您的办件 {case.number} 已重新交由承办单位办理，"
                          f"我们会跟进落实，并在 {case.deadline:%Y-%m-%d} 前再次答复您。")
            else:
                thanks = f"感谢您对办件 {case.number} 的评价，我们会继续努力！"
            utter(dispatcher, "info", thanks, case_no=case.number)
            return [SlotSet("rating", None)]
        async with self.services.db.session() as session, session.begin():
            events.record(session, events.RATING_GIVEN, conversation_id=conv, score=score)
        thanks = "感谢您的评价，我们会继续努力！" if score >= 3 else \
            "很抱歉没能让您满意。您可以输入“转人工”，工作人员会为您进一步处理。"
        utter(dispatcher, "info", thanks)
        return [SlotSet("rating", None)]

    async def _rate_case(self, conv: int | None, score: int):
        """A rating given after a case reply belongs to that case (the latest replied one)."""
        if conv is None:
            return None
        async with self.services.db.session() as session:
            case = await lifecycle.awaiting_rating(session, conv)
        if case is None:
            return None
        try:
            return await lifecycle.rate(self.services.db, case.number, score,
                                        actor=f"citizen:{conv}", now=utcnow(),
                                        deadline_days=self.services.deadline_days)
        except lifecycle.TransitionRefused:   # rated a moment ago (the same answer twice)
            return None
