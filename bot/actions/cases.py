"""Complaint and report intake (a Rasa form) and case progress look-up.

The form asks what happened, where, when and how to reach the citizen (or, for a report, that
they stay anonymous), reads everything back and submits on "是". Its answers are free text read by
bot/intake.py: cancelling, corrections ("修改地点") and a question asked mid-form are handled in
the validation, where a "不用了" meant for one question cannot cancel the whole case. Images and
locations the citizen sends meanwhile (WeChat) become the case's evidence and place.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet

from bot import api as bot_api
from bot import intake
from bot.actions import ServiceAction, conversation_id, utter
from casework import api as casework
from casework.intake import take_case
from casework.privacy import mask_phone
from knowledge_base.consult import consult
from knowledge_base.search import ANSWER, CLARIFY
from server.db import CHINA, utcnow

MIN_DESCRIPTION = 5
MAX_DESCRIPTION = 1000
MAX_FIELD = 200
# A photo sent a little before "我要投诉" belongs to the complaint.
EVIDENCE_LOOKBACK = timedelta(minutes=10)
UNKNOWN = "不详"
FORM_SLOTS = ["case_description", "case_place", "case_time", "case_contact", "case_confirm"]
# The words that only say "I want to complain", leaving what about.
_TRIGGER = re.compile(r"^(你好|您好|请问)?[，,。\s]*(我|我们)?(想|要|想要|需要)?(实名|匿名)?(投诉|举报|反映)(一下|一个|下)?[：:，,。\s]*")
_RESET = [SlotSet(name, None) for name in
          ["case_type", "case_since", "case_cancelled", *FORM_SLOTS]]
MEDIA_NAMES = {"image": "图片", "video": "视频", "link": "链接", "location": "位置"}
CONTACT_NAMES = {"none": "不留电话", "anonymous": "匿名"}


def case_type_name(tracker: Tracker) -> str:
    return casework.CASE_TYPE_NAMES.get(tracker.get_slot("case_type") or "complaint", "投诉")


def description_from_trigger(text: str) -> str | None:
    """"我要投诉楼下饭店油烟太大" already says what happened: keep it as the description."""
    rest = _TRIGGER.sub("", text.strip(), count=1).strip()
    return rest if len(rest) >= MIN_DESCRIPTION else None


def _parse_since(tracker: Tracker) -> datetime | None:
    value = tracker.get_slot("case_since")
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


class ActionStartCase(ServiceAction):
    def name(self) -> str:
        return "action_start_case"

    async def run(self, dispatcher, tracker: Tracker, domain):
        intent = tracker.latest_message.get("intent", {}).get("name")
        case_type = "report" if intent == "report" else "complaint"
        description = description_from_trigger(tracker.latest_message.get("text") or "")
        since = utcnow() - EVIDENCE_LOOKBACK
        place = None
        conv = conversation_id(tracker)
        if conv is not None:
            async with self.services.db.session() as session:
                last = await casework.last_case_at(session, conv)
                if last is not None and last > since:     # that photo was the last case's
                    since = last
                media = await bot_api.media_since(session, conv, since)
            locations = [m.meta["media"] for m in media if m.meta["media"].get("kind") == "location"]
            place = locations[-1].get("label") if locations else None
        if description:
            place = place or intake.place_in(description)
        return [SlotSet("case_type", case_type), SlotSet("case_since", since.isoformat()),
                SlotSet("case_cancelled", None), SlotSet("case_description", description),
                SlotSet("case_place", place),
                SlotSet("case_time", intake.time_in(description) if description else None),
                SlotSet("case_contact", None), SlotSet("case_confirm", None)]


class ValidateCaseForm(FormValidationAction):
    """Reads each answer; returns None for a slot to ask it again (with a hint said first)."""

    def __init__(self, services) -> None:
        self.services = services

    def name(self) -> str:
        return "validate_case_form"

    def _cancelled(self) -> dict:
        # Every slot filled so that the form ends; action_submit_case sees the flag.
        return {"case_cancelled": True, **{slot: "-" for slot in FORM_SLOTS}}

    def _question(self, text, dispatcher, slot: str) -> dict | None:
        """A consultation typed mid-form: answered from the Q&A base, then the form goes on."""
        if not intake.is_question(text):
            return None
        decision = consult(self.services.kb.index, text)
        if decision.kind == ANSWER:
            qa = decision.best.qa
            utter(dispatcher, "answer", qa.answer, qa_id=qa.entry_id,
                  source_ref=f"qa:{qa.entry_id}@{qa.version}")
        elif decision.kind == CLARIFY:
            # No numbered choice here: "2" would be read as the answer to the form's question.
            titles = "".join(f"「{h.qa.question}」" for h in decision.hits[:3])
            utter(dispatcher, "info", f"您可能想问：{titles}。登记完成后再问我一次，我为您详细解答。")
        else:
            utter(dispatcher, "info", "这个问题我暂时答不上来，登记完成后可以再问我，或输入“转人工”。")
        utter(dispatcher, "form", "我们继续刚才的登记。")
        return {slot: None}

    def validate_case_description(self, value, dispatcher, tracker, domain):
        text = (value or "").strip()
        if intake.is_cancel(text):
            return self._cancelled()
        if len(text) < MIN_DESCRIPTION:
            utter(dispatcher, "form", "描述有点简短，请再具体说说发生了什么。")
            return {"case_description": None}
        if len(text) > MAX_DESCRIPTION:
            utter(dispatcher, "form", f"描述太长了，请精简到{MAX_DESCRIPTION}字以内。")
            return {"case_description": None}
        return {"case_description": text}

    async def validate_case_place(self, value, dispatcher, tracker, domain):
        text = (value or "").strip()
        if intake.is_cancel(text):
            return self._cancelled()
        if tracker.latest_message.get("intent", {}).get("name") == "share_location":
            return {"case_place": text[:MAX_FIELD]}
        if (asked := self._question(text, dispatcher, "case_place")) is not None:
            return asked
        if intake.is_unknown(text):
            return {"case_place": UNKNOWN}
        if not intake.looks_like_place(text) or len(text) > MAX_FIELD:
            utter(dispatcher, "form", "请告诉我具体地点，例如“南湖区人民路88号菜场门口”，或发送微信位置；"
                                      "确实说不清可回复“不清楚”。")
            return {"case_place": None}
        return {"case_place": text}

    async def validate_case_time(self, value, dispatcher, tracker, domain):
        text = (value or "").strip()
        if intake.is_cancel(text):
            return self._cancelled()
        if (asked := self._question(text, dispatcher, "case_time")) is not None:
            return asked
        if intake.is_unknown(text):
            return {"case_time": UNKNOWN}
        return {"case_time": text[:100]}

    async def validate_case_contact(self, value, dispatcher, tracker, domain):
        text = (value or "").strip()
        if intake.is_cancel(text):
            return self._cancelled()
        read = intake.contact(text, may_be_anonymous=tracker.get_slot("case_type") == "report")
        if read is None:
            if (asked := self._question(text, dispatcher, "case_contact")) is not None:
                return asked
            utter(dispatcher, "form", "没有识别出手机号。请发送11位手机号（或带区号的固定电话），"
                                      "不需要联系请回复“不留”。")
            return {"case_contact": None}
        kind, phone = read
        return {"case_contact": f"phone:{phone}" if kind == "phone" else kind}

    def validate_case_confirm(self, value, dispatcher, tracker, domain):
        text = (value or "").strip()
        if intake.is_cancel(text):
            return self._cancelled()
        answer = intake.confirmation(text)
        if answer in ("yes", "no"):
            return {"case_confirm": answer}
        if answer is not None:       # a correction: ask that field again, then read back again
            return {answer: None, "case_confirm": None}
        utter(dispatcher, "form", "请回复“是”确认提交；要修改请回复“修改地点”“修改时间”等；"
                                  "不提交请回复“取消”。")
        return {"case_confirm": None}


def contact_of(tracker: Tracker) -> tuple[str | None, bool]:
    """(phone, anonymous) from the contact slot."""
    value = tracker.get_slot("case_contact") or ""
    if value.startswith("phone:"):
        return value.removeprefix("phone:"), False
    return None, value == "anonymous"


class ActionAskCaseContact(Action):
    def name(self) -> str:
        return "action_ask_case_contact"

    async def run(self, dispatcher, tracker: Tracker, domain):
        if tracker.get_slot("case_type") == "report":
            utter(dispatcher, "form",
                  "如需工作人员联系您，请留下手机号；号码只用于办理本件，仅经办人员可见。"
                  "也可以回复“匿名”匿名举报，或回复“不留”。")
        else:
            utter(dispatcher, "form",
                  "如需工作人员联系您，请留下手机号；号码只用于办理本件，仅经办人员可见。"
                  "不需要联系请回复“不留”。")
        return []


class ActionAskCaseConfirm(ServiceAction):
    def name(self) -> str:
        return "action_ask_case_confirm"

    async def run(self, dispatcher, tracker: Tracker, domain):
        phone, anonymous = contact_of(tracker)
        contact = mask_phone(phone) if phone else CONTACT_NAMES.get(tracker.get_slot("case_contact"), "不留电话")
        evidence = await self._evidence(tracker)
        lines = [f"请核对您的{case_type_name(tracker)}内容：",
                 f"事项：{tracker.get_slot('case_description')}",
                 f"地点：{tracker.get_slot('case_place')}",
                 f"时间：{tracker.get_slot('case_time')}",
                 f"证据：{evidence or '无'}",
                 f"联系方式：{contact}",
                 "确认提交请回复“是”；要修改请回复“修改地点”“修改时间”等；不提交请回复“取消”。"]
        utter(dispatcher, "form", "\n".join(lines))
        return []

    async def _evidence(self, tracker: Tracker) -> str:
        counts: dict[str, int] = {}
        for item in await evidence_of(self.services.db, tracker):
            counts[item.kind] = counts.get(item.kind, 0) + 1
        counts.pop("location", None)        # shown as the place
        return "、".join(f"{MEDIA_NAMES.get(k, k)}{n}个" if k != "image" else f"图片{n}张"
                        for k, n in counts.items())


async def evidence_of(db, tracker: Tracker) -> list[casework.Evidence]:
    conv, since = conversation_id(tracker), _parse_since(tracker)
    if conv is None or since is None:
        return []
    async with db.session() as session:
        rows = await bot_api.media_since(session, conv, since)
    return [casework.Evidence(kind=m.meta["media"]["kind"], message_id=m.id,
                              media_id=m.meta["media"].get("media_id"),
                              url=m.meta["media"].get("url"), label=m.meta["media"].get("label"))
            for m in rows]


def _location(evidence_rows: list, tracker: Tracker) -> tuple[float | None, float | None]:
    """The coordinates of the WeChat location that gave the place, if it did."""
    place = tracker.get_slot("case_place")
    for item in reversed(evidence_rows):
        media = item.meta["media"]
        if media.get("kind") == "location" and media.get("label", "（微信位置）") == place:
            return media.get("latitude"), media.get("longitude")
    return None, None


class ActionReceiveMedia(ServiceAction):
    def name(self) -> str:
        return "action_receive_media"

    async def run(self, dispatcher, tracker: Tracker, domain):
        intent = tracker.latest_message.get("intent", {}).get("name")
        kind = "location" if intent == "share_location" else \
            next(tracker.get_latest_entity_values("media_kind"), None) or "image"
        what = MEDIA_NAMES.get(kind, "文件")
        if tracker.active_loop_name == "case_form":
            if kind == "location":
                return []       # it filled the place; the form asks its next question
            utter(dispatcher, "info", f"已收到您发送的{what}，提交时会作为证据附在本次{case_type_name(tracker)}中。")
            return []
        if kind == "location":
            place = next(tracker.get_latest_entity_values("place"), None) or "您的位置"
            utter(dispatcher, "info", f"已收到位置：{place}。如需反映这里的问题，请回复“我要投诉”或"
                                      "“我要举报”并说明情况，这个位置会作为事发地点。")
        else:
            utter(dispatcher, "info", f"已收到您发送的{what}。智能助手只能阅读文字：如需投诉或举报，请回复"
                                      f"“我要投诉”或“我要举报”并说明情况，{what}会作为证据一并提交；"
                                      "如是咨询，请用文字描述您的问题。")
        return []


class ActionSubmitCase(ServiceAction):
    def name(self) -> str:
        return "action_submit_case"

    async def run(self, dispatcher, tracker: Tracker, domain):
        kind_name = case_type_name(tracker)
        if tracker.get_slot("case_cancelled"):
            utter(dispatcher, "info", f"好的，已取消本次{kind_name}登记，内容没有提交。如需再次反映，随时告诉我。")
            return _RESET
        if tracker.get_slot("case_confirm") != "yes":
            utter(dispatcher, "info", f"好的，本次{kind_name}没有提交。如需再次反映，随时告诉我。")
            return _RESET
        conv = conversation_id(tracker)
        since = _parse_since(tracker)
        media_rows = []
        if conv is not None and since is not None:
            async with self.services.db.session() as session:
                media_rows = await bot_api.media_since(session, conv, since)
        latitude, longitude = _location(media_rows, tracker)
        phone, anonymous = contact_of(tracker)
        taken = await take_case(self.services.db, casework.Intake(
            case_type=tracker.get_slot("case_type") or "complaint",
            description=tracker.get_slot("case_description"), conversation_id=conv,
            place=tracker.get_slot("case_place"), occurred=tracker.get_slot("case_time"),
            phone=phone, anonymous=anonymous, latitude=latitude, longitude=longitude,
            evidence=await evidence_of(self.services.db, tracker)),
            router=self.services.router, now=utcnow(), deadline_days=self.services.deadline_days)
        case = taken.case
        if taken.linked:
            utter(dispatcher, "case",
                  f"您在24小时内已提交过相同的{kind_name}（编号 {case.number}），这次的内容已补充到该件中，"
                  "不再重复登记。您可以随时发送这个编号查询进度。",
                  case_no=case.number, source_ref=f"case:{case.number}")
            return _RESET
        if taken.dispatched:
            where = f"已转交{taken.unit_name}办理"
        else:
            where = f"已转{taken.unit_name or '12345分派中心'}，将尽快派给责任单位办理"
        due = f"，预计{taken.deadline.month}月{taken.deadline.day}日前答复您" if taken.deadline else ""
        utter(dispatcher, "case",
              f"您的{kind_name}已受理，编号 {case.number}。{where}{due}。"
              "您可以随时发送这个编号查询进度。",
              case_no=case.number, source_ref=f"case:{case.number}")
        return _RESET


class ActionQueryCase(ServiceAction):
    """Progress of the citizen's own case: status, unit, expected reply date, the reply."""

    def name(self) -> str:
        return "action_query_case"

    async def run(self, dispatcher, tracker: Tracker, domain):
        number = next(tracker.get_latest_entity_values("case_number"), None)
        if not number:
            return await self._list(dispatcher, tracker)
        async with self.services.db.session() as session:
            try:
                case = await casework.find_case(session, number, conversation_id(tracker))
            except casework.CaseNotFound:
                utter(dispatcher, "info",
                      f"没有找到您提交的编号为 {number.upper()} 的办件，请核对编号（格式如 ZJ20261126-0007）。"
                      "办件只能由提交人在原渠道查询。")
                return [SlotSet("case_number", None)]
            unit = await casework.unit_name(session, case.unit_id)
        lines = [f"办件 {case.number}（{casework.CASE_TYPE_NAMES[case.case_type]}）",
                 f"受理时间：{case.created_at.astimezone(CHINA):%Y-%m-%d %H:%M}",
                 f"当前状态：{casework.STATUS_NAMES.get(case.status, case.status)}"]
        if unit:
            lines.append(f"承办单位：{unit}")
        if case.deadline:
            lines.append(f"预计答复：{case.deadline:%Y-%m-%d}前")
        if case.reply_text:
            lines.append(f"答复意见：{case.reply_text}")
        utter(dispatcher, "info", "\n".join(lines), case_no=case.number)
        return [SlotSet("case_number", None)]

    async def _list(self, dispatcher, tracker: Tracker):
        """No number given ("查进度", the menu): the citizen's own cases, or how to ask."""
        conv = conversation_id(tracker)
        mine = []
        if conv is not None:
            async with self.services.db.session() as session:
                mine = await casework.cases_of(session, conv)
        if not mine:
            utter(dispatcher, "info", "您在这里还没有提交过投诉或举报。如有办件编号（格式如 ZJ20261126-0007），"
                                      "请发送编号，我来帮您查询进度。")
            return []
        lines = [f"{c.number}（{casework.CASE_TYPE_NAMES[c.case_type]}，"
                 f"{casework.STATUS_NAMES.get(c.status, c.status)}）" for c in mine]
        utter(dispatcher, "info", "您最近提交的办件：\n" + "\n".join(lines) +
              "\n发送编号可查看详情和答复。")
        return []
