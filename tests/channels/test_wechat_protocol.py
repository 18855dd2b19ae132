"""WeChat's crypto and XML checked against wechatpy, an independent implementation."""
from __future__ import annotations

import base64

import pytest
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto
from wechatpy.utils import WeChatSigner

from channels.wechat.crypto import AppIdMismatch, Cipher, CryptoError, aes_key, signature, signature_ok
from channels.wechat.inbound import ASK_TO_TYPE, MENU, plan_for
from channels.wechat.messages import MalformedMessage, WechatMessage, parse_fields, text_reply

AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")   # 43 characters
APP_ID = "wx0123456789abcdef"
XML = "<xml><Content><![CDATA[社保卡丢了怎么补办]]></Content></xml>"


def test_signature_is_wechats():
    signer = WeChatSigner()
    signer.add_data("tok", "1700000000", "nonce", "payload")
    assert signature("tok", "1700000000", "nonce", "payload") == signer.signature
    assert signature_ok(signer.signature.upper(), "payload", "nonce", "1700000000", "tok")
    assert not signature_ok("", "tok", "1", "n") and not signature_ok(None, "tok", "1", "n")


def test_encryption_round_trips_with_wechatpy():
    theirs = PrpCrypto(aes_key(AES_KEY))
    assert Cipher(AES_KEY).decrypt(theirs.encrypt(XML, APP_ID).decode(), APP_ID) == XML
    assert theirs.decrypt(Cipher(AES_KEY).encrypt(XML, APP_ID), APP_ID) == XML


def test_decrypt_checks_app_id_padding_and_length():
    payload = Cipher(AES_KEY).encrypt(XML, APP_ID)
    with pytest.raises(AppIdMismatch):
        Cipher(AES_KEY).decrypt(payload, "wxsomeoneelse0000")
    other_key = base64.b64encode(bytes(range(1, 33))).decode().rstrip("=")
    with pytest.raises(CryptoError):
        Cipher(other_key).decrypt(payload, APP_ID)
    raw = base64.b64decode(payload)
    for bad in (base64.b64encode(raw[:-3]).decode(), "not base64!", "", base64.b64encode(raw[:16]).decode()):
        with pytest.raises(CryptoError):
            Cipher(AES_KEY).decrypt(bad, APP_ID)


@pytest.mark.parametrize("key", ["short", AES_KEY[:-1] + "!", AES_KEY + "A"])
def test_a_malformed_encoding_aes_key_is_refused(key):
    with pytest.raises(CryptoError):
        aes_key(key)


def test_a_passive_reply_survives_cdata_terminators():
    content = "注意 ]]> 这里 <b>&amp;</b>"
    msg = parse_message(text_reply("oCitizen", "gh_account", content, now=1700000000))
    assert (msg.type, msg.content, msg.target, msg.source) == ("text", content, "oCitizen", "gh_account")


@pytest.mark.parametrize("raw", [
    b"<xml><a>1</a>",
    b"not xml",
    b"<root><a>1</a></root>",
    b'<!DOCTYPE xml [<!ENTITY a "b">]><xml><a>&a;</a></xml>',
    b'<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd"><xml><a>1</a></xml>',
])
def test_xml_that_is_not_wechats_is_refused(raw):
    with pytest.raises(MalformedMessage):
        parse_fields(raw)


def test_a_message_needs_its_envelope_fields():
    with pytest.raises(MalformedMessage, match="FromUserName"):
        WechatMessage.from_fields({"ToUserName": "gh", "CreateTime": "1", "MsgType": "text"})
    with pytest.raises(MalformedMessage, match="CreateTime"):
        WechatMessage.from_fields({"ToUserName": "gh", "FromUserName": "o", "CreateTime": "x",
                                   "MsgType": "text"})


def _msg(**fields) -> WechatMessage:
    return WechatMessage(to_user="gh", from_user="o1", create_time=1700000000, **fields)


def test_what_each_message_becomes():
    assert plan_for(_msg(msg_type="text", content="你好")).text == "你好"
    assert plan_for(_msg(msg_type="voice", recognition="我要投诉")).text == "我要投诉"
    assert plan_for(_msg(msg_type="voice")).reply == ASK_TO_TYPE
    image = plan_for(_msg(msg_type="image", pic_url="http://x/1.jpg"))
    assert image.text == "[图片]" and image.media == {"kind": "image", "url": "http://x/1.jpg"}
    place = plan_for(_msg(msg_type="location", location_x="30.75", location_y="120.76", label="嘉兴市南湖区"))
    assert place.text == "[位置] 嘉兴市南湖区 (30.75,120.76)"
    assert place.media == {"kind": "location", "label": "嘉兴市南湖区", "latitude": 30.75,
                           "longitude": 120.76}
    link = plan_for(_msg(msg_type="link", title="占道经营", url="http://x/a"))
    assert link.text == "[链接] 占道经营 http://x/a" and link.media["url"] == "http://x/a"
    assert plan_for(_msg(msg_type="shortvideo", media_id="v1")).media == {"kind": "video", "media_id": "v1"}
    for key, text in MENU.items():
        assert plan_for(_msg(msg_type="event", event="CLICK", event_key=key)).text == text
    assert plan_for(_msg(msg_type="event", event="unsubscribe")).unsubscribed
    for event in ("SCAN", "VIEW", "LOCATION"):
        plan = plan_for(_msg(msg_type="event", event=event))
        assert plan.text is None and plan.reply is None and not plan.unsubscribed
    assert _msg(msg_type="event", event="subscribe").external_id == "o1:1700000000"


def test_settings_name_the_default_account_and_keep_secrets_out_of_logs():
    from server.config import ConfigError, load_config

    config = load_config({"WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": "TOPSECRET",
                          "WECHAT_TOKEN": "tok123", "WECHAT_ENCODING_AES_KEY": AES_KEY})
    assert (config.wechat_mode, config.wechat_reply_budget, config.wechat_max_skew) == ("safe", 4.0, 300)
    assert "TOPSECRET" not in repr(config) and AES_KEY not in repr(config)
    assert load_config({}).wechat_mode == "plaintext"
    for env, words in (({"WECHAT_MODE": "secret"}, "WECHAT_MODE"),
                       ({"WECHAT_MODE": "compatible"}, "needs WECHAT_ENCODING_AES_KEY"),
                       ({"WECHAT_ENCODING_AES_KEY": "short"}, "43 characters"),
                       ({"WECHAT_REPLY_BUDGET": "5"}, "under 5 seconds"),
                       ({"WECHAT_MAX_SKEW": "soon"}, "WECHAT_MAX_SKEW")):
        with pytest.raises(ConfigError, match=words):
            load_config(env)


def test_menu_and_welcome_phrases_are_training_examples_of_their_intents():
    # If the NLU data changes, these must still land on the intended intent.
    import yaml

    from channels.wechat.inbound import SUBSCRIBE_TEXT
    from server.config import ROOT

    nlu = yaml.safe_load((ROOT / "bot" / "rasa" / "data" / "nlu.yml").read_text(encoding="utf-8"))
    examples = {block["intent"]: {line[2:].strip() for line in block["examples"].splitlines()
                                  if line.startswith("- ")}
                for block in nlu["nlu"] if "intent" in block}
    expected = {SUBSCRIBE_TEXT: "greet", MENU["咨询"]: "greet", MENU["投诉"]: "complain",
                MENU["举报"]: "report", MENU["查询进度"]: "query_case", MENU["人工服务"]: "request_human"}
    for text, intent in expected.items():
        assert text in examples[intent], (text, intent)
