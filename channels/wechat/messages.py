"""WeChat's XML: inbound messages parsed safely, passive replies and the encrypted envelope built."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring


# WeChat's ids are short (an OpenID is 28 characters, a MsgId a 64-bit number, CreateTime a Unix
# time). Longer ones are not WeChat's, and would overflow the columns keyed on them (128
# characters: PostgreSQL refuses more, a 503 that makes WeChat retry; SQLite keeps it silently).
ID_MAX = 64
_UNIX_TIME = re.compile(r"[0-9]{1,12}")     # ASCII digits only: int() also takes "١٢" and " 1"


class MalformedMessage(ValueError):
    """Not WeChat's XML: unparsable, has a DTD or entities, or lacks a required field."""


def parse_fields(raw: bytes | str) -> dict[str, str]:
    """The flat `<xml><Name>value</Name>…</xml>` as a dict. DTDs and entities are refused
    outright (billion laughs, external entities): WeChat never sends them."""
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedMessage(f"unparsable XML: {type(exc).__name__}") from None
    if root.tag != "xml":
        raise MalformedMessage(f"root element is <{root.tag}>, not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


@dataclass(frozen=True)
class WechatMessage:
    to_user: str                  # the account's original id (gh_…)
    from_user: str                # the citizen's OpenID for this account
    create_time: int
    msg_type: str                 # text, voice, image, video, shortvideo, location, link, event
    msg_id: str | None = None     # absent on events
    content: str = ""
    recognition: str = ""         # voice, when speech recognition is switched on
    pic_url: str = ""
    media_id: str = ""
    location_x: str = ""
    location_y: str = ""
    label: str = ""
    title: str = ""               # link
    url: str = ""                 # link
    event: str = ""               # subscribe, unsubscribe, CLICK, VIEW, SCAN, LOCATION …
    event_key: str = ""
    encrypt: str = ""

    @property
    def external_id(self) -> str:
        """What identifies a retry: MsgId, or for events FromUserName + CreateTime."""
        return self.msg_id or f"{self.from_user}:{self.create_time}"

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> "WechatMessage":
        missing = [k for k in ("ToUserName", "FromUserName", "CreateTime", "MsgType") if not f.get(k)]
        if missing:
            raise MalformedMessage(f"missing {', '.join(missing)}")
        if not _UNIX_TIME.fullmatch(f["CreateTime"]):
            raise MalformedMessage("CreateTime is not a Unix time")
        create_time = int(f["CreateTime"])
        overlong = [k for k in ("ToUserName", "FromUserName", "MsgId") if len(f.get(k, "")) > ID_MAX]
        if overlong:
            raise MalformedMessage(f"{', '.join(overlong)} over {ID_MAX} characters")
        return cls(
            to_user=f["ToUserName"], from_user=f["FromUserName"], create_time=create_time,
            msg_type=f["MsgType"].lower(), msg_id=f.get("MsgId") or None,
            content=f.get("Content", ""), recognition=f.get("Recognition", ""),
            pic_url=f.get("PicUrl", ""), media_id=f.get("MediaId", ""),
            location_x=f.get("Location_X", ""), location_y=f.get("Location_Y", ""),
            label=f.get("Label", ""), title=f.get("Title", ""), url=f.get("Url", ""),
            event=f.get("Event", ""), event_key=f.get("EventKey", ""),
            encrypt=f.get("Encrypt", ""))


def _cdata(text: str) -> str:
    # "]]>" would end the section early: split it across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_user: str, content: str, now: int | None = None) -> str:
    """A passive text reply; to_user is the citizen, from_user the account."""
    return ("<xml>"
            f"<ToUserName>{_cdata(to_user)}</ToUserName>"
            f"<FromUserName>{_cdata(from_user)}</FromUserName>"
            f"<CreateTime>{int(time.time()) if now is None else now}</CreateTime>"
            "<MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{_cdata(content)}</Content>"
            "</xml>")


def encrypted_envelope(encrypt: str, msg_signature: str, timestamp: str, nonce: str) -> str:
    return ("<xml>"
            f"<Encrypt>{_cdata(encrypt)}</Encrypt>"
            f"<MsgSignature>{_cdata(msg_signature)}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce>{_cdata(nonce)}</Nonce>"
            "</xml>")
