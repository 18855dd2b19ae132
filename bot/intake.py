"""What a citizen types during complaint/report intake, read without Rasa's help.

The intake form's answers are free text ("人民路菜场门口", "不留", "修改地点"); intents are a poor
fit for them, and a misread "不用了" must never cancel a whole complaint. These small readers are
deterministic and tested on their own; the form's validation action calls them.
"""
from __future__ import annotations

import re

# Cancelling the whole intake (not "no" to one question): 取消, 算了不投诉了, 不提交了 …
_CANCEL = re.compile(r"^(那?就?算了吧?|取消|撤销|撤回|不(投诉|举报|反映|提交|登记|办)了)"
                     r"|(取消|撤销)(本次|这次)?(投诉|举报|登记|提交)|不(想|要)(投诉|举报|提交)了")
_YES = re.compile(r"^(是|是的|对|对的|没错|确认|确定|提交|好|好的|可以|行|嗯+|ok|yes|👍)"
                  r"([，,。.!！\s]*(确认|提交|无误|吧|的|没问题|可以)*)*[。.!！]?$", re.I)
_NO = re.compile(r"^(否|不|不是|不对|不要|不用|不提交|先不|no)([了吧的]|[，,。.!！\s])*", re.I)
# "修改地点", "地址写错了", "电话改成…": which field to ask again.
FIELDS = {
    "case_description": ("描述", "内容", "事情", "问题", "事项"),
    "case_place": ("地点", "地址", "位置", "地方"),
    "case_time": ("时间", "日期", "什么时候"),
    "case_contact": ("电话", "手机", "号码", "联系方式", "匿名"),
}
_CHANGE = re.compile(r"(改|修改|更改|更正|写错|填错|不对|错了)")
_QUESTION = re.compile(r"[?？]|(吗|呢|么)[。.!！]?$|^(请问|怎么|如何|为什么|哪里|哪儿|多少|能不能|可不可以|是否)")
# "留下电话" answers: a mainland mobile or a landline with area code.
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")
_NO_PHONE = re.compile(r"^(不留|不用|不需要|不要|没有|无|否|不了|不方便|算了|不必|不用联系|不用了|不想留)")
_ANONYMOUS = re.compile(r"匿名")
_UNKNOWN = re.compile(r"^(不清楚|不知道|记不清|忘了|不记得|不确定|说不清)")

# A place named in a description: 南湖区人民路88号, 幸福小区 … — names of two or more characters
# before an address word, chained; function words (的, 了, 门口 …) end a name, so that
# "小区门口的路灯" is not taken for a place.
_NAME = r"[^\s\d，。,.！!？?：:；;、的了在是有和门口楼我你他她它这那个]{2,8}?"
_SUFFIX = r"(?:区|县|街道|镇|乡|村|路|街|巷|弄|小区|花园|苑|广场|公园|市场|菜场|学校|医院|车站)"
_PLACE = re.compile(rf"(?:{_NAME}{_SUFFIX}(?:\d+号)?)+")
_PLACE_HINT = re.compile(r"(区|县|街道|镇|乡|村|路|街|巷|弄|号|小区|花园|苑|广场|公园|市场|菜场|学校|医院|车站|门口|附近|对面|旁边|楼)")
_TIME = re.compile(r"(\d{1,4}年)?\d{1,2}月\d{1,2}[日号]|(今|昨|前)(天|晚|早)|上周|本周|这周|上个月"
                   r"|每天|天天|每晚|凌晨|\d{1,2}[点:：]")

MIN_PLACE = 2
MAX_FIELD = 200


def is_cancel(text: str) -> bool:
    return bool(_CANCEL.search(text.strip()))


def is_question(text: str) -> bool:
    """A consultation typed in the middle of the form ("办居住证要多久？")."""
    return bool(_QUESTION.search(text.strip()))


def confirmation(text: str) -> str | None:
    """'yes', 'no', a field name to ask again (a correction), or None when unclear."""
    text = text.strip()
    if _CHANGE.search(text):
        for field, words in FIELDS.items():
            if any(w in text for w in words):
                return field
    if _YES.match(text):
        return "yes"
    if _NO.match(text):
        return "no"
    return None


def place_in(text: str) -> str | None:
    """A place named in the description, to fill the form's 'where' without asking again."""
    match = _PLACE.search(text)
    return match.group(0) if match else None


def time_in(text: str) -> str | None:
    match = _TIME.search(text)
    return match.group(0) if match else None


def looks_like_place(text: str) -> bool:
    return len(text.strip()) >= MIN_PLACE and (bool(_PLACE_HINT.search(text)) or len(text.strip()) >= 4)


def is_unknown(text: str) -> bool:
    return bool(_UNKNOWN.match(text.strip()))


def contact(text: str, may_be_anonymous: bool) -> tuple[str, str | None] | None:
    """('phone', number), ('none', None), ('anonymous', None) or None when unclear."""
    text = text.strip()
    phone = _PHONE.search(text.replace(" ", ""))
    if phone:
        return "phone", phone.group(1)
    if _ANONYMOUS.search(text):
        return ("anonymous", None) if may_be_anonymous else ("none", None)
    if _NO_PHONE.match(text):
        return "none", None
    return None
