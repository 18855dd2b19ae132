"""What each WeChat message or event becomes: text for the gateway, or an immediate answer."""
from __future__ import annotations

import math
from dataclasses import dataclass

from channels.wechat.messages import WechatMessage

ASK_TO_TYPE = "抱歉，暂时没能听清您的语音。请直接输入文字，我会尽快为您解答。"
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

    Media (image, video, location, link) goes through the gateway too, with `media` describing
    it: the conversation keeps it, and a case being taken attaches it as evidence or place.
    """
    text: str | None = None
    reply: str | None = None
    media: dict | None = None
    unsubscribed: bool = False


def plan_for(msg: WechatMessage) -> Plan:
    kind = msg.msg_type
    if kind == "text":
        return Plan(text=msg.content)
    if kind == "voice":
        return Plan(text=msg.recognition) if msg.recognition.strip() else Plan(reply=ASK_TO_TYPE)
    if kind in MEDIA:
        return Plan(text=_note(msg), media=_media(msg))
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
    """The line the conversation log shows for it (staff read it in the inbox)."""
    what = MEDIA[msg.msg_type]
    if msg.msg_type == "location":
        return f"[{what}] {msg.label} ({msg.location_x},{msg.location_y})"
    if msg.msg_type == "link":
        return f"[{what}] {msg.title} {msg.url}".strip()
    return f"[{what}]"


def _media(msg: WechatMessage) -> dict:
    kind = "video" if msg.msg_type == "shortvideo" else msg.msg_type
    media = {"kind": kind, "media_id": msg.media_id or None,
             "url": msg.pic_url or msg.url or None, "label": msg.label or msg.title or None}
    if kind == "location":
        try:
            lat, lon = float(msg.location_x), float(msg.location_y)
        except ValueError:      # WeChat always sends numbers; a bad one is simply not kept
            lat = lon = math.nan
        # "nan", "inf", "1e999" parse too: NaN is no JSON (PostgreSQL refuses the row, a 503)
        # and no place on Earth.
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            media["latitude"], media["longitude"] = lat, lon
    return {k: v for k, v in media.items() if v is not None}
