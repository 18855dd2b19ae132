"""Complaint and report intake (a Rasa form) and case progress look-up.

The casework issue adds where, when, evidence and contact to the form; here it collects what
happened and a confirmation.
"""
from __future__ import annotations

import re

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet

from bot.actions import ServiceAction, conversation_id, utter
from casework import api as casework
from server.db import CHINA, utcnow

MIN_DESCRIPTION = 5
MAX_DESCRIPTION = 1000
# The words that only say "I want to complain", leaving what about.
_TRIGGER = re.compile(r"^(你好|您好|请问)?[，,。\s]*(我|我们)?(想|要|想要|需要)?(实名|匿名)?(投诉|举报|反映)(一下|一个|下)?[：:，,。\s]*")
_RESET = [SlotSet("case_type", None), SlotSet("case_description", None), SlotSet("case_confirm", None)]


def case_type_name(tracker: Tracker) -> str:
    return casework.CASE_TYPE_NAMES.get(tracker.get_slot("case_type") or "complaint", "投诉")


def description_from_trigger(text: str) -> str | None:
    """"我要投诉楼下饭店油烟太大" already says what happened: keep it as the description."""
    rest = _TRIGGER.sub("", text.strip(), count=1).strip()
    return rest if len(rest) >= MIN_DESCRIPTION else None


class ActionStartCase(Action):
    def name(self) -> str:
        return "action_start_case"

    async def run(self, dispatcher, tracker: Tracker, domain):
        intent = tracker.latest_message.get("intent", {}).get("name")
        case_type = "report" if intent == "report" else "complaint"
        description = description_from_trigger(tracker.latest_message.get("text") or "")
        return [SlotSet("case_type", case_type), SlotSet("case_confirm", None),
                SlotSet("case_description", description)]


class ValidateCaseForm(FormValidationAction):
    def name(self) -> str:
        return "validate_case_form"

    def validate_case_description(self, value, dispatcher, tracker, domain):
        text = (value or "").strip()
        if len(text) < MIN_DESCRIPTION:
            utter(dispatcher, "form", "描述有点简短，请再具体说说：发生了什么、在哪里、什么时间。")
            return {"case_description": None}
        if len(text) > MAX_DESCRIPTION:
            utter(dispatcher, "form", f"描述太长了，请精简到{MAX_DESCRIPTION}字以内。")
            return {"case_description": None}
        return {"case_description": text}


class ActionAskCaseConfirm(Action):
    def name(self) -> str:
        return "action_ask_case_confirm"

    async def run(self, dispatcher, tracker: Tracker, domain):
        utter(dispatcher, "form",
              f"请确认您要{case_type_name(tracker)}的内容：\n{tracker.get_slot('case_description')}\n"
              "确认提交请回复“是”，不提交请回复“否”。")
        return []


class ActionSubmitCase(ServiceAction):
    def name(self) -> str:
        return "action_submit_case"

    async def run(self, dispatcher, tracker: Tracker, domain):
        kind_name = case_type_name(tracker)
        if not tracker.get_slot("case_confirm"):
            utter(dispatcher, "info", f"好的，本次{kind_name}没有提交。如需再次反映，随时告诉我。")
            return _RESET
        case = await casework.submit_case(
            self.services.db, case_type=tracker.get_slot("case_type") or "complaint",
            description=tracker.get_slot("case_description"),
            conversation_id=conversation_id(tracker), now=utcnow())
        utter(dispatcher, "case",
              f"您的{kind_name}已受理，编号 {case.number}。我们会尽快转交责任单位办理，"
              "您可以随时发送这个编号查询进度。",
              case_no=case.number, source_ref=f"case:{case.number}")
        return _RESET


class ActionCancelCase(Action):
    def name(self) -> str:
        return "action_cancel_case"

    async def run(self, dispatcher, tracker: Tracker, domain):
        utter(dispatcher, "info", "好的，已取消本次登记，内容没有提交。")
        return _RESET


class ActionQueryCase(ServiceAction):
    def name(self) -> str:
        return "action_query_case"

    async def run(self, dispatcher, tracker: Tracker, domain):
        number = next(tracker.get_latest_entity_values("case_number"), None)
        if not number:
            utter(dispatcher, "info", "请发送您的办件编号（格式如 ZJ20261126-0007），我来帮您查询进度。")
            return []
        async with self.services.db.session() as session:
            try:
                case = await casework.find_case(session, number)
            except casework.CaseNotFound:
                utter(dispatcher, "info",
                      f"没有找到编号为 {number.upper()} 的办件，请核对编号（格式如 ZJ20261126-0007）。")
                return [SlotSet("case_number", None)]
        submitted = case.created_at.astimezone(CHINA)
        status = casework.STATUS_NAMES.get(case.status, case.status)
        utter(dispatcher, "info",
              f"办件 {case.number}（{casework.CASE_TYPE_NAMES[case.case_type]}）\n"
              f"受理时间：{submitted:%Y-%m-%d %H:%M}\n当前状态：{status}",
              case_no=case.number)
        return [SlotSet("case_number", None)]
