"""What each WeChat message or event becomes: text for the gateway, or an immediate answer."""
from __future__ import annotations

from dataclasses import dataclass

from channels.wechat.messages import WechatMessage

ASK_TO_TYPE = "抱歉，暂时没能听清您的语音。请直接输入文字，我会尽快为您解答。"
MEDIA_THANKS = "已收到您发送的{what}，谢谢！目前智能助手只能阅读文字，请用文字简要说明您的问题或诉求。"
UNSUPPORTED = "抱歉，暂不支持这类消息。请直接输入文字，我会尽快为您解答。"
# A text the greet intent knows: the welcome says what the service does (art. 25: no condition
# on following — the service answers everyone who writes, follower or not).
SUBSCRIBE_TEXT = "你好"
# Menu keys → what a citizen would type; each is an example of its intent in bot/rasa/data/nlu.yml.
MENU = {
    "咨询": "您好 我想咨询个事",
    "投诉": "我要投诉",
    "举报": "我要举报",
    "查询进度": "查进度",
    "人工服务": "人工服务",
}
MEDIA = {"image": "图片", "video": "视频", "shortvideo": "视频", "location": "位置", "link": "链接"}


@dataclass(frozen=True)
class Plan:
    """Either `text` goes through the gateway, or `reply` is answered at once (None: `success`).

    `ack` comes before the gateway's replies in the passive answer (media: the bot cannot see it,
    so the citizen is told so rather than left with a reply that ignores the picture).
    """
    text: str | None = None
    reply: str | None = None
    ack: str | None = None
    unsubscribed: bool = False


def plan_for(msg: WechatMessage) -> Plan:
    kind = msg.msg_type
    if kind == "text":
        return Plan(text=msg.content)
    if kind == "voice":
        return Plan(text=msg.recognition) if msg.recognition.strip() else Plan(reply=ASK_TO_TYPE)
    if kind in MEDIA:
        return Plan(text=_note(msg), ack=MEDIA_THANKS.format(what=MEDIA[kind]))
    if kind == "event":
        event = msg.event.lower()
        if event == "subscribe":
            return Plan(text=SUBSCRIBE_TEXT)
        if event == "unsubscribe":
            return Plan(unsubscribed=True)
        if event == "click" and msg.event_key in MENU:
            return Plan(text=MENU[msg.event_key])
        return Plan()      # SCAN, VIEW, LOCATION, unknown keys: nothing to say
    return Plan(reply=UNSUPPORTED)


def _note(msg: WechatMessage) -> str:
    """The conversation keeps a line saying what arrived; attaching it to cases comes later."""
    what = MEDIA[msg.msg_type]
    if msg.msg_type == "location":
        return f"[{what}] {msg.label} ({msg.location_x},{msg.location_y})".strip()
    return f"[{what}]"
