"""Fuzzing the WeChat door: whatever arrives at /wechat/{account}, the answer is a clean 4xx (or
WeChat's `success` / a passive reply for a message that is really valid), never a 500; memory
stays bounded; and a refused request stores nothing.

One server and one database per module (hypothesis runs many examples; per-example setup would
dominate). Example counts are modest here; HYPOTHESIS_PROFILE=long runs many more
(tests/fuzzing.py, docs/security.md).
"""
from __future__ import annotations

import base64
import struct
import time
import tracemalloc

import pytest
import xmltodict
from cryptography.hazmat.primitives.ciphers import Cipher as AES, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.models import Conversation, Message
from casework.models import Event
from channels.wechat.crypto import Cipher, signature
from channels.wechat.models import Delivery
from channels.wechat.routes import MAX_BODY
from tests.channels.test_wechat import (AES_KEY, APP_ID, GH, OPENID, SAFE_APP_ID, SAFE_TOKEN, TOKEN,
                                        WeChat, serve, text_msg)
from tests.fuzzing import fuzz, table_counts, fuzz_db  # noqa: F401 (a fixture)

TABLES = (Message, Conversation, Event, Delivery)
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode().rstrip("=")


@pytest.fixture(scope="module")
async def door(fuzz_db, tmp_path_factory):
    """(http client, plaintext WeChat, safe-mode WeChat) on one server for the whole module."""
    async with serve(fuzz_db, tmp_path_factory.mktemp("var")) as (http, _rasa):
        yield (http, WeChat(http, "/wechat", TOKEN, APP_ID),
               WeChat(http, "/wechat/safe-unit", SAFE_TOKEN, SAFE_APP_ID, AES_KEY))


async def counts(db) -> dict[str, int]:
    return await table_counts(db, *TABLES)


async def refused(db, send, *statuses: int) -> str:
    """Send once; the answer must be one of `statuses` (4xx) and nothing may be stored."""
    before = await counts(db)
    resp = await send()
    text = await resp.text()
    assert resp.status in statuses, (resp.status, text[:300])
    assert await counts(db) == before, text[:300]
    return text


async def never_500(db, send) -> int:
    """Send once; a 4xx stores nothing, a 200 is `success` or a passive reply."""
    before = await counts(db)
    resp = await send()
    text = await resp.text()
    assert resp.status < 500, (resp.status, text[:300])
    if resp.status >= 400:
        assert await counts(db) == before, text[:300]
    else:
        assert resp.status == 200 and (text == "success" or text.startswith("<xml>")), text[:300]
    return resp.status


def post_raw(http, wechat: WeChat, body, **query):
    return lambda: http.post(wechat.path, params={**wechat.signed(), **query}, data=body,
                             headers={"Content-Type": "text/xml"})


def post_encrypted(http, wechat: WeChat, payload: str):
    """A correctly signed safe-mode request around any `Encrypt` payload."""
    query = wechat.signed()
    msg_signature = signature(wechat.token, query["timestamp"], query["nonce"], payload)
    body = f"<xml><ToUserName>{GH}</ToUserName><Encrypt><![CDATA[{payload}]]></Encrypt></xml>"
    return lambda: http.post(wechat.path, data=body.encode(), headers={"Content-Type": "text/xml"},
                             params={**query, "encrypt_type": "aes", "msg_signature": msg_signature})


# --- random and malformed XML -------------------------------------------------------------------

@fuzz(100)
@given(body=st.binary(max_size=2048))
async def test_random_bytes_are_refused(door, fuzz_db, body):
    http, plain, _ = door
    await refused(fuzz_db, post_raw(http, plain, body), 400)


_TAGS = st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId",
                         "Event", "EventKey", "Location_X", "Location_Y", "Label", "PicUrl",
                         "MediaId", "Recognition", "Title", "Url", "Encrypt", "x", "xml"])
# XML 1.0 allows these; everything else (NUL, most C0 controls, lone surrogates) is unparsable.
_XML_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                    max_size=200)
_VALUES = st.one_of(
    _XML_TEXT,
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.sampled_from(["text", "event", "voice", "image", "location", "link", "video", "TEXT",
                     "subscribe", "unsubscribe", "CLICK", "咨询", "nan", "inf", "1e999", "-0",
                     "9" * 400, "\u202e\u202d", "😀" * 50, "<![CDATA[x]]>"]),
)


@fuzz(150)
@given(fields=st.dictionaries(_TAGS, _VALUES, max_size=10), cdata=st.booleans(),
       declaration=st.sampled_from(["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-8"?>',
                                    '<?xml version="1.1"?>']))
async def test_wechat_like_xml_with_any_fields_never_fails(door, fuzz_db, fields, cdata, declaration):
    http, plain, _ = door
    inner = "".join(
        f"<{k}><![CDATA[{v.replace(']]>', ']]]]><![CDATA[>')}]]></{k}>" if cdata
        else f"<{k}>{xmltodict.unparse({'a': v}, full_document=False)[3:-4]}</{k}>"
        for k, v in fields.items())
    await never_500(fuzz_db, post_raw(http, plain, (declaration + f"<xml>{inner}</xml>").encode()))


# Valid WeChat envelope, hostile values where WeChat only ever sends short ids and numbers.
_FIELD = st.sampled_from(["FromUserName", "ToUserName", "MsgId", "CreateTime", "MsgType",
                          "Location_X", "Location_Y", "Content", "Event", "EventKey", "PicUrl"])


@fuzz(150)
@given(field=_FIELD, value=_VALUES, msg_type=st.sampled_from(["text", "location", "image", "event"]),
       msg_id=st.integers(min_value=1, max_value=2**63))
async def test_one_hostile_field_in_a_signed_message_never_fails(door, fuzz_db, field, value,
                                                                 msg_type, msg_id):
    http, plain, _ = door
    fields = {**text_msg("你好", msg_id=str(msg_id), user="oFuzz" + str(msg_id % 997)),
              "MsgType": msg_type, "Location_X": "30.27", "Location_Y": "120.15", "Label": "市民中心",
              "PicUrl": "http://mmbiz.qpic.cn/x", "MediaId": "m1", "Event": "CLICK"}
    fields[field] = value
    body = xmltodict.unparse({"xml": fields}, full_document=False).encode()
    await never_500(fuzz_db, post_raw(http, plain, body))


@pytest.mark.parametrize("field, value", [
    ("MsgId", "9" * 400),                       # a huge MsgId (the column holds 128)
    ("FromUserName", "o" + "x" * 300),          # an OpenID is 28 characters
    ("ToUserName", "gh_" + "y" * 300),
    ("CreateTime", "9" * 5000),                 # over Python's int-from-string limit
    ("CreateTime", "1" * 40),
])
async def test_overlong_ids_are_refused_and_nothing_is_stored(door, fuzz_db, field, value):
    http, plain, _ = door
    fields = {**text_msg("你好", msg_id="6800000000000777001"), field: value}
    body = xmltodict.unparse({"xml": fields}, full_document=False).encode()
    await refused(fuzz_db, post_raw(http, plain, body), 400)


@pytest.mark.parametrize("x, y", [("nan", "nan"), ("inf", "-inf"), ("1e999", "0"), ("91", "181"),
                                  ("30.27", "120.15")])
async def test_a_location_with_impossible_coordinates_is_kept_without_them(door, fuzz_db, x, y):
    http, plain, _ = door
    fields = {**text_msg("", msg_id=f"68000000000007{len(x)}{len(y)}{x[:1]}"), "MsgType": "location",
              "Location_X": x, "Location_Y": y, "Label": "市民中心", "Scale": "15"}
    fields.pop("Content")
    body = xmltodict.unparse({"xml": fields}, full_document=False).encode()
    assert await never_500(fuzz_db, post_raw(http, plain, body)) == 200
    async with fuzz_db.session() as session:
        row = await session.scalar(select(Message).where(Message.external_id == fields["MsgId"]))
    media = row.meta["media"]
    if x == "30.27":
        assert (media["latitude"], media["longitude"]) == (30.27, 120.15)
    else:
        assert "latitude" not in media and "longitude" not in media


# --- entities -------------------------------------------------------------------------------------

BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "lol">'
                  + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
                  + f']><xml><ToUserName>{GH}</ToUserName><FromUserName>{OPENID}</FromUserName>'
                  '<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&j;</Content>'
                  '<MsgId>9</MsgId></xml>')


def _xxe(secret) -> list[str]:
    envelope = (f'<xml><ToUserName>{GH}</ToUserName><FromUserName>{OPENID}</FromUserName>'
                f'<CreateTime>{int(time.time())}</CreateTime><MsgType>text</MsgType>'
                '<Content>&x;</Content><MsgId>6800000000000999001</MsgId></xml>')
    return [
        f'<!DOCTYPE xml [<!ENTITY x SYSTEM "file://{secret}">]>' + envelope,
        '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + envelope,
        f'<!DOCTYPE xml [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>' + envelope.replace("&x;", ""),
        f'<!DOCTYPE xml SYSTEM "file://{secret}">' + envelope.replace("&x;", ""),
        '<!DOCTYPE xml [<!ENTITY x SYSTEM "http://127.0.0.1:9/xxe">]>' + envelope,
        '<!DOCTYPE xml [<!ENTITY x "内部实体">]>' + envelope,
    ]


async def test_entities_and_dtds_are_refused_in_plain_and_encrypted_bodies(door, fuzz_db, tmp_path):
    http, plain, safe = door
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    tracemalloc.start()
    try:
        for xml in [BILLION_LAUGHS, *_xxe(secret)]:
            text = await refused(fuzz_db, post_raw(http, plain, xml.encode()), 400)
            assert "TOP-SECRET-MARKER" not in text and "root:" not in text
            # The same inside a correctly encrypted and signed safe-mode payload.
            payload = Cipher(AES_KEY).encrypt(xml, SAFE_APP_ID)
            text = await refused(fuzz_db, post_encrypted(http, safe, payload), 400)
            assert "TOP-SECRET-MARKER" not in text and "root:" not in text
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, f"{peak} bytes at peak: an entity was expanded"
    async with fuzz_db.session() as session:
        texts = list(await session.scalars(select(Message.text)))
    assert not any("TOP-SECRET" in t or "root:" in t or "lollol" in t for t in texts)


# --- size ---------------------------------------------------------------------------------------

async def _chunks(size: int, chunk: int = 64 * 1024):
    piece = b"<xml>" + b"A" * (chunk - 5)
    for _ in range(size // chunk):
        yield piece


@pytest.mark.parametrize("how", ["content-length", "chunked", "unsigned"])
async def test_a_10_mb_body_is_refused_before_parsing_with_bounded_memory(door, fuzz_db, how):
    http, plain, _ = door
    ten_mb = 10 * 2**20
    tracemalloc.start()
    try:
        if how == "content-length":
            # Declared up front: refused on the header, the body is never read.
            send = lambda: http.post(plain.path, params=plain.signed(), data=_chunks(ten_mb),  # noqa: E731
                                     headers={"Content-Type": "text/xml",
                                              "Content-Length": str(ten_mb)})
        elif how == "chunked":
            send = post_raw(http, plain, _chunks(ten_mb))
        else:
            send = lambda: http.post(plain.path, data=_chunks(ten_mb))   # noqa: E731
        text = await refused(fuzz_db, send, 413, 400)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_BODY + 2**20, f"{peak} bytes at peak for a {ten_mb}-byte body"
    assert len(text) < 200


# --- encodings ------------------------------------------------------------------------------------

def _envelope(content: str, msg_id: str) -> str:
    return xmltodict.unparse({"xml": {**text_msg(content, msg_id=msg_id)}}, full_document=False)


@pytest.mark.parametrize("name, body, status", [
    ("GBK declared, GBK bytes", ('<?xml version="1.0" encoding="GBK"?>' + _envelope("社保", "68001"))
     .encode("gbk"), 400),
    ("GBK bytes, no declaration", _envelope("社保卡补办", "68002").encode("gbk"), 400),
    ("invalid UTF-8", _envelope("社保", "68003").encode().replace("社".encode(), b"\xff\xfe\xc3"), 400),
    ("overlong UTF-8", _envelope("a", "68004").encode().replace(b">a<", b">\xc0\xaf<"), 400),
    ("UTF-16 with BOM", ('<?xml version="1.0" encoding="UTF-16"?>' + _envelope("社保", "68005"))
     .encode("utf-16"), 200),
    ("UTF-16 without BOM", _envelope("社保", "68006").encode("utf-16-le"), 200),   # XML autodetects
    ("latin-1 declared", ('<?xml version="1.0" encoding="ISO-8859-1"?>' + _envelope("caf\xe9", "68007"))
     .encode("latin-1"), 200),
    ("NUL byte", _envelope("社\x00保", "68008").encode(), 400),
    ("C0 control as a reference", _envelope("x", "68009").replace(">x<", ">&#1;&#27;<").encode(), 400),
    ("lone surrogate reference", _envelope("x", "68010").replace(">x<", ">&#xD800;<").encode(), 400),
])
async def test_wrong_encodings_are_refused_or_read_correctly(door, fuzz_db, name, body, status):
    http, plain, _ = door
    if status == 400:
        await refused(fuzz_db, post_raw(http, plain, body), 400)
    else:
        assert await never_500(fuzz_db, post_raw(http, plain, body)) == 200
        async with fuzz_db.session() as session:
            texts = set(await session.scalars(select(Message.text).where(Message.direction == "in")))
        assert {"社保", "café"} & texts


# --- safe mode: AES -------------------------------------------------------------------------------

def _seal(plain: bytes) -> str:
    """Encrypt raw plaintext bytes with the account's key, padding them as WeChat does."""
    pad = 32 - len(plain) % 32
    return _raw_padded(plain + bytes([pad]) * pad)


def _raw_padded(plain: bytes) -> str:
    """Encrypt whole blocks as they are: whatever padding the caller chose."""
    key = base64.b64decode(AES_KEY + "=")
    enc = AES(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


@fuzz(100)
@given(raw=st.binary(max_size=512))
async def test_random_ciphertext_is_refused(door, fuzz_db, raw):
    http, _, safe = door
    await refused(fuzz_db, post_encrypted(http, safe, base64.b64encode(raw).decode()), 400)


@fuzz(100)
@given(inner=st.binary(max_size=300), declared=st.integers(min_value=0, max_value=2**32 - 1),
       tail=st.sampled_from([SAFE_APP_ID.encode(), b"", b"wxother", b"\xff\xfe"]))
async def test_any_plaintext_under_the_right_key_never_fails(door, fuzz_db, inner, declared, tail):
    """Padding right, everything inside hostile: declared length, bytes, app id."""
    http, _, safe = door
    payload = _seal(bytes(16) + struct.pack(">I", declared) + inner + tail)
    resp_status = await never_500(fuzz_db, post_encrypted(http, safe, payload))
    assert resp_status in (400, 403)


@pytest.mark.parametrize("case", ["wrong key", "truncated", "one block cut", "bad padding",
                                  "not base64", "padding over 32", "empty", "wrong app id"])
async def test_broken_encryption_is_refused(door, fuzz_db, case):
    http, _, safe = door
    msg = text_msg("居住证怎么办理", msg_id="6800000000000555001")
    good = Cipher(AES_KEY).encrypt(_envelope("居住证怎么办理", "6800000000000555001"), SAFE_APP_ID)
    raw = base64.b64decode(good)
    payload = {
        "wrong key": Cipher(OTHER_KEY).encrypt(_envelope("x", "1"), SAFE_APP_ID),
        "truncated": base64.b64encode(raw[:-5]).decode(),
        "one block cut": base64.b64encode(raw[:-16]).decode(),
        "bad padding": base64.b64encode(raw[:-32] + bytes(32)).decode(),
        "not base64": good[:-4] + "!!!!",
        "padding over 32": _raw_padded(bytes(48) + bytes([48]) * 16),
        "empty": "",
        "wrong app id": Cipher(AES_KEY).encrypt(_envelope("x", "2"), "wxsomeoneelse000"),
    }[case]
    if case == "empty":
        await refused(fuzz_db, post_raw(http, safe, xmltodict.unparse({"xml": msg}).encode(),
                                        encrypt_type="aes"), 400, 401)
    else:
        await refused(fuzz_db, post_encrypted(http, safe, payload), 400, 403)


async def test_a_signed_request_sealed_for_another_key_is_refused(door, fuzz_db):
    http, _, safe = door
    crypto = WeChatCrypto(SAFE_TOKEN, OTHER_KEY, SAFE_APP_ID)
    await refused(fuzz_db, lambda: safe.post(text_msg("你好", msg_id="6800000000000555002"),
                                             encrypt=True, crypto=crypto), 400)


# --- signatures and timestamps --------------------------------------------------------------------

@fuzz(100)
@given(offset=st.one_of(st.integers(min_value=301, max_value=10**9),
                        st.integers(min_value=-10**9, max_value=-301)))
async def test_replayed_and_future_timestamps_are_refused(door, fuzz_db, offset):
    _, plain, _ = door
    ts = max(0, int(time.time()) + offset)
    await refused(fuzz_db, lambda: plain.post(text_msg("你好", msg_id="6800000000000666001"), ts=ts),
                  401)


@fuzz(150)
@given(timestamp=st.one_of(st.text(max_size=30), st.sampled_from(
    ["²", "١٧٠٠٠٠٠٠٠٠", "１７００", "9" * 5000, "-1", "+1700000000", " 1700000000", "1e9", "0x10"])),
       nonce=st.text(max_size=30), sig=st.text(max_size=60))
async def test_any_signature_timestamp_and_nonce_are_refused_cleanly(door, fuzz_db, timestamp, nonce, sig):
    http, plain, _ = door
    body = _envelope("你好", "6800000000000666002").encode()
    send = lambda: http.post(plain.path, data=body, params={  # noqa: E731
        "timestamp": timestamp, "nonce": nonce, "signature": sig})
    await refused(fuzz_db, send, 400, 401)


@pytest.mark.parametrize("timestamp", ["²", "١٧٠٠٠٠٠٠٠٠", "9" * 5000])
async def test_a_timestamp_of_unicode_or_endless_digits_is_a_400_even_when_signed(door, fuzz_db, timestamp):
    http, plain, safe = door
    signer = WeChatSigner()
    signer.add_data(TOKEN, timestamp, "n1")
    query = {"timestamp": timestamp, "nonce": "n1", "signature": signer.signature}
    body = _envelope("你好", "6800000000000666003").encode()
    await refused(fuzz_db, lambda: http.post(plain.path, data=body, params=query), 400)
    resp = await http.get(plain.path, params={**query, "echostr": "e"})
    assert resp.status == 400


@fuzz(60)
@given(query=st.dictionaries(st.sampled_from(["signature", "timestamp", "nonce", "echostr",
                                              "msg_signature", "encrypt_type", "openid"]),
                             st.text(max_size=80), max_size=7))
async def test_url_verification_never_fails(door, query):
    http, _, safe = door
    for path in ("/wechat", safe.path, "/wechat/nobody"):
        resp = await http.get(path, params=query)
        assert resp.status in (400, 401, 404), (resp.status, await resp.text())


async def test_missing_fields_and_control_characters(door, fuzz_db):
    http, plain, _ = door
    full = text_msg("你好", msg_id="6800000000000888001")
    for missing in ("ToUserName", "FromUserName", "CreateTime", "MsgType"):
        fields = {k: v for k, v in full.items() if k != missing}
        body = xmltodict.unparse({"xml": fields}, full_document=False).encode()
        await refused(fuzz_db, post_raw(http, plain, body), 400)
    # Characters XML allows but a terminal or a page might misread: kept exactly.
    content = "\u202e反转\u202c 😀 𠮷 \t Ｓｅｌｅｃｔ' OR 1=1-- <script>alert(1)</script>"
    body = xmltodict.unparse({"xml": {**full, "Content": content}}, full_document=False).encode()
    assert await never_500(fuzz_db, post_raw(http, plain, body)) == 200
    async with fuzz_db.session() as session:
        stored = await session.scalar(select(Message.text).where(
            Message.external_id == "6800000000000888001"))
    assert stored == content.strip()
