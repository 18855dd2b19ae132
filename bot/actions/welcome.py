"""The welcome: what the assistant does, then every urgent notice in force (art. 15)."""
from __future__ import annotations

from bot.actions import ServiceAction, utter
from knowledge_base.consult import active_notices
from knowledge_base.search import PublishedQA

WELCOME_TEXT = ("您好！我是嘉禾市政务服务智能助手，可以为您：\n1. 解答办事和政策咨询\n2. 受理投诉、举报\n"
                "3. 查询办件进度\n4. 转人工客服\n请直接输入您的问题。")
# The menu above is numbered already, so notices are asked by their question, not a number.
NOTICE_HINT = "想了解详情，请点击或直接发送上面的问题。"


def welcome(notices: list[PublishedQA]) -> dict:
    """The welcome reply: text, plus each notice as an option that sends its question."""
    if not notices:
        return {"text": WELCOME_TEXT}
    lines = "\n".join(f"【重要通知】{qa.question}" for qa in notices)
    options = [{"title": qa.question, "payload": qa.question, "faq_id": qa.entry_id}
               for qa in notices]
    return {"text": f"{WELCOME_TEXT}\n\n{lines}\n{NOTICE_HINT}", "options": options}


class ActionGreet(ServiceAction):
    def name(self) -> str:
        return "action_greet"

    async def run(self, dispatcher, tracker, domain):
        utter(dispatcher, "info", **welcome(active_notices(self.services.kb.index)))
        return []
