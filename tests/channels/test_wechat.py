"""The WeChat channel over real HTTP, driven by wechatpy as WeChat's side, with a fake Rasa."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import time

import pytest
import xmltodict
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.models import Conversation, Message
from casework.models import Event
from channels.wechat import accounts
from channels.wechat.inbound import ASK_TO_TYPE
from channels.wechat.models import Delivery
from server.app import create_app
from server.config import Config
from server.cli import main
from tests.conftest import free_port

APP_ID, TOKEN = "wx0123456789abcdef", "govchatToken1"
SAFE_APP_ID, SAFE_TOKEN = "wxsafe0000000000a", "safeToken2"
UNIT_APP_ID, UNIT_TOKEN = "wxunit0000000000b", "unitToken3"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
GH, OPENID = "gh_0123456789ab", "oCitizen0123456789"

WELCOME = "您好！我是嘉禾市政务服务智能助手"
RASA_SAYS = {
    "居住证怎么办理": [{"custom": {"kind": "answer", "text": "携带身份证到派出所申请。",
                                "qa_id": "HJ-005", "source_ref": "qa:HJ-005@1"}}],
    "你好": [{"custom": {"kind": "info", "text": WELCOME}}],
    "人工服务": [{"custom": {"kind": "handoff", "text": "已为您转接人工客服，请稍候。"}}],
    "护照": [{"text": "第一条。"}, {"text": "第二条。"}],
}
DEFAULT_SAYS = [{"text": "抱歉，暂时没有找到答案。"}]


class FakeRasa:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.delay = 0.0

    async def webhook(self, request: web.Request) -> web.Response:
        text = (await request.json())["message"]
        self.calls.append(text)
        await asyncio.sleep(self.delay)
        return web.json_response(RASA_SAYS.get(text, DEFAULT_SAYS))


class WeChat:
    """WeChat's servers as far as one account is concerned: wechatpy signs, encrypts, decrypts."""

    def __init__(self, http: TestClient, path: str, token: str, app_id: str,
                 aes_key: str | None = None) -> None:
        self.http, self.path, self.token, self.app_id = http, path, token, app_id
        self.crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None

    def signed(self, ts: int | None = None, nonce: str = "1234567890") -> dict:
        ts = str(int(time.time()) if ts is None else ts)
        signer = WeChatSigner()
        signer.add_data(self.token, ts, nonce)
        return {"signature": signer.signature, "timestamp": ts, "nonce": nonce, "openid": OPENID}

    async def post(self, fields: dict, *, encrypt: bool = False, ts: int | None = None,
                   crypto: WeChatCrypto | None = None, body: bytes | None = None):
        query = self.signed(ts)
        if body is None:
            xml = xmltodict.unparse({"xml": fields}, full_document=False)
            if encrypt:
                sealed = xmltodict.parse((crypto or self.crypto).encrypt_message(
                    xml, query["nonce"], query["timestamp"]))["xml"]
                query.update(encrypt_type="aes", msg_signature=sealed["MsgSignature"])
                xml = xmltodict.unparse({"xml": {"ToUserName": GH, "Encrypt": sealed["Encrypt"]}},
                                        full_document=False)
            body = xml.encode()
        return await self.http.post(self.path, params=query, data=body,
                                    headers={"Content-Type": "text/xml"})

    async def send(self, fields: dict, *, encrypt: bool = False) -> str:
        """The passive reply's text, or "success"."""
        resp = await self.post(fields, encrypt=encrypt)
        text = await resp.text()
        assert resp.status == 200, text
        if text == "success":
            return text
        if encrypt:
            env = xmltodict.parse(text)["xml"]
            text = self.crypto.decrypt_message(text, env["MsgSignature"], env["TimeStamp"], env["Nonce"])
        reply = parse_message(text)
        assert (reply.type, reply.target, reply.source) == ("text", fields["FromUserName"], GH)
        return reply.content


def text_msg(content: str, msg_id: str = "6800000000000000001", user: str = OPENID) -> dict:
    return {"ToUserName": GH, "FromUserName": user, "CreateTime": str(int(time.time())),
            "MsgType": "text", "Content": content, "MsgId": msg_id}


def event_msg(event: str, key: str | None = None) -> dict:
    fields = {"ToUserName": GH, "FromUserName": OPENID, "CreateTime": str(int(time.time())),
              "MsgType": "event", "Event": event}
    if key is not None:
        fields["EventKey"] = key
    return fields


@contextlib.asynccontextmanager
async def serve(db, tmp_path, budget: float = 4.0, **settings):
    async with db.session() as session, session.begin():
        await accounts.add(session, "safe-unit", app_id=SAFE_APP_ID, app_secret="s2",
                           token=SAFE_TOKEN, encoding_aes_key=AES_KEY, mode="safe")
        await accounts.add(session, "compat-unit", app_id=SAFE_APP_ID, app_secret="s2",
                           token=SAFE_TOKEN, encoding_aes_key=AES_KEY, mode="compatible")
        await accounts.add(session, "unit2", app_id=UNIT_APP_ID, app_secret="s3", token=UNIT_TOKEN)
    # Late replies are sent to WeChat's API: never the real one from tests.
    settings.setdefault("wechat_api_base", f"http://127.0.0.1:{free_port()}")
    rasa = FakeRasa()
    rasa_app = web.Application()
    rasa_app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
    async with TestServer(rasa_app, host="127.0.0.1") as fake_rasa:
        config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                        rasa_url=str(fake_rasa.make_url("/")).rstrip("/"),
                        wechat_app_id=APP_ID, wechat_app_secret="s1", wechat_token=TOKEN,
                        wechat_reply_budget=budget, **settings)
        async with TestClient(TestServer(create_app(config))) as http:
            yield http, rasa


@pytest.fixture
async def served(db, tmp_path):
    async with serve(db, tmp_path) as pair:
        yield pair


@pytest.fixture
def http(served):
    return served[0]


@pytest.fixture
def rasa(served):
    return served[1]


@pytest.fixture
def plain(http):
    return WeChat(http, "/wechat", TOKEN, APP_ID)


@pytest.fixture
def safe(http):
    return WeChat(http, "/wechat/safe-unit", SAFE_TOKEN, SAFE_APP_ID, AES_KEY)


async def count(db, model=Message) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def stored(db) -> list[tuple]:
    async with db.session() as session:
        rows = await session.scalars(select(Message).order_by(Message.id))
        return [(m.channel, m.account, m.external_id, m.direction, m.text) for m in rows]


# --- URL verification -------------------------------------------------------------------------

async def test_url_verification_echoes_echostr_when_signed(http, plain):
    resp = await http.get("/wechat", params={**plain.signed(), "echostr": "8457135468871"})
    assert (resp.status, await resp.text()) == (200, "8457135468871")
    forged = {**plain.signed(), "echostr": "8457135468871", "signature": "0" * 40}
    resp = await http.get("/wechat", params=forged)
    assert resp.status == 401 and await resp.text() != "8457135468871"


async def test_url_verification_in_safe_mode_both_ways(http, safe):
    # Plain signature + echostr, as the Official Account console sends it in every mode …
    resp = await http.get(safe.path, params={**safe.signed(), "echostr": "echo-1"})
    assert (resp.status, await resp.text()) == (200, "echo-1")
    # … and an encrypted echostr with msg_signature: the answer is the decrypted text.
    query = safe.signed()
    echostr = PrpCrypto(base64.b64decode(AES_KEY + "=")).encrypt("echo-2", SAFE_APP_ID).decode()
    signer = WeChatSigner()
    signer.add_data(SAFE_TOKEN, query["timestamp"], query["nonce"], echostr)
    resp = await http.get(safe.path, params={**query, "echostr": echostr,
                                             "msg_signature": signer.signature})
    assert (resp.status, await resp.text()) == (200, "echo-2")
    resp = await http.get(safe.path, params={**query, "echostr": echostr, "msg_signature": "f" * 40})
    assert resp.status == 401


# --- messages -----------------------------------------------------------------------------------

async def test_a_text_message_gets_the_bot_answer_passively(plain, rasa, db):
    assert await plain.send(text_msg("居住证怎么办理")) == "携带身份证到派出所申请。"
    assert rasa.calls == ["居住证怎么办理"]
    assert await stored(db) == [
        ("wechat", "default", "6800000000000000001", "in", "居住证怎么办理"),
        ("wechat", "default", None, "out", "携带身份证到派出所申请。")]


async def test_several_replies_are_joined_into_one_passive_text(plain):
    assert await plain.send(text_msg("护照")) == "第一条。\n\n第二条。"


async def test_safe_mode_decrypts_the_message_and_encrypts_the_reply(safe, db):
    assert await safe.send(text_msg("居住证怎么办理"), encrypt=True) == "携带身份证到派出所申请。"
    assert (await stored(db))[0] == ("wechat", "safe-unit", "6800000000000000001", "in", "居住证怎么办理")


async def test_compatible_mode_takes_both(http, db):
    compat = WeChat(http, "/wechat/compat-unit", SAFE_TOKEN, SAFE_APP_ID, AES_KEY)
    assert await compat.send(text_msg("居住证怎么办理", msg_id="c1"), encrypt=True) == "携带身份证到派出所申请。"
    assert await compat.send(text_msg("居住证怎么办理", msg_id="c2")) == "携带身份证到派出所申请。"


async def test_voice_uses_wechats_recognition_or_asks_to_type(plain, rasa, db):
    voice = {**text_msg("", msg_id="v1"), "MsgType": "voice", "MediaId": "m1", "Format": "amr"}
    del voice["Content"]
    assert await plain.send({**voice, "Recognition": "居住证怎么办理"}) == "携带身份证到派出所申请。"
    assert await plain.send({**voice, "MsgId": "v2"}) == ASK_TO_TYPE
    assert rasa.calls == ["居住证怎么办理"]
    assert await count(db) == 2     # the unrecognised voice stores nothing


async def test_an_image_goes_to_the_bot_as_media_and_is_kept_in_the_conversation(plain, rasa, db):
    image = {**text_msg("", msg_id="i1"), "MsgType": "image", "PicUrl": "http://mmbiz/1.jpg",
             "MediaId": "media-1"}
    del image["Content"]
    await plain.send(image)
    # Rasa is told an image came (an intent the server sends), not NLU on "[图片]".
    assert rasa.calls == ['/share_media{"media_kind": "image"}']
    assert (await stored(db))[0][3:] == ("in", "[图片]")
    async with db.session() as session:
        kept = await session.scalar(select(Message).where(Message.external_id == "i1"))
    assert kept.meta["media"] == {"kind": "image", "media_id": "media-1", "url": "http://mmbiz/1.jpg"}


async def test_subscribe_gets_the_welcome(plain, rasa, db):
    subscribe = event_msg("subscribe")
    assert await plain.send(subscribe) == WELCOME
    assert rasa.calls == ["你好"]
    assert (await stored(db))[0][2] == f"{OPENID}:{subscribe['CreateTime']}"


async def test_the_menu_button_for_a_person_hands_off(plain, rasa):
    assert await plain.send(event_msg("CLICK", "人工服务")) == "已为您转接人工客服，请稍候。"
    assert rasa.calls == ["人工服务"]


async def test_unsubscribe_is_recorded_and_scan_view_need_no_answer(plain, rasa, db):
    assert await plain.send(event_msg("unsubscribe")) == "success"
    for event, key in (("SCAN", "123"), ("VIEW", "https://gov.example/"), ("CLICK", "no-such-key")):
        assert await plain.send(event_msg(event, key)) == "success"
    assert rasa.calls == [] and await count(db) == 0
    async with db.session() as session:
        assert (await session.scalars(select(Event.name))).all() == ["wechat_unsubscribed"]


async def test_a_second_account_has_its_own_token(http, plain, db):
    unit = WeChat(http, "/wechat/unit2", UNIT_TOKEN, UNIT_APP_ID)
    assert await unit.send(text_msg("居住证怎么办理")) == "携带身份证到派出所申请。"
    resp = await WeChat(http, "/wechat/unit2", TOKEN, APP_ID).post(text_msg("居住证怎么办理", msg_id="x"))
    assert resp.status == 401
    # The same MsgId on another account is another message.
    assert await plain.send(text_msg("居住证怎么办理")) == "携带身份证到派出所申请。"
    async with db.session() as session:
        assert sorted((await session.scalars(select(Conversation.account))).all()) == ["default", "unit2"]


# --- refused: the right status, nothing stored ------------------------------------------------

BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "哈哈哈哈哈哈哈哈哈哈">'
                  + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
                  + f']><xml><ToUserName>{GH}</ToUserName><FromUserName>{OPENID}</FromUserName>'
                  '<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&i;</Content>'
                  '<MsgId>9</MsgId></xml>').encode()


async def _chunked(data: bytes):
    for i in range(0, len(data), 8192):
        yield data[i:i + 8192]


@pytest.mark.parametrize("case, status", [
    ("forged signature", 401), ("stale timestamp", 401), ("wrong app id", 403),
    ("bad msg_signature", 401), ("plaintext to a safe account", 400), ("malformed XML", 400),
    ("missing fields", 400), ("billion laughs", 400), ("oversized", 413),
    ("oversized, chunked", 413), ("unknown account", 404), ("no signature", 400),
])
async def test_bad_requests_are_refused_and_nothing_is_stored(http, plain, safe, rasa, db, case, status):
    msg = text_msg("居住证怎么办理")
    if case == "forged signature":
        resp = await WeChat(http, "/wechat", "notTheToken", APP_ID).post(msg)
    elif case == "stale timestamp":
        resp = await plain.post(msg, ts=int(time.time()) - 3600)
    elif case == "wrong app id":
        resp = await safe.post(msg, encrypt=True, crypto=WeChatCrypto(SAFE_TOKEN, AES_KEY, "wxother00000000"))
    elif case == "bad msg_signature":
        forger = WeChat(http, safe.path, SAFE_TOKEN, SAFE_APP_ID, AES_KEY)
        forger.crypto = WeChatCrypto("otherToken", AES_KEY, SAFE_APP_ID)
        resp = await forger.post(msg, encrypt=True)
    elif case == "plaintext to a safe account":
        resp = await safe.post(msg)
    elif case == "malformed XML":
        resp = await plain.post(msg, body=b"<xml><ToUserName>gh</ToUserName")
    elif case == "missing fields":
        resp = await plain.post({"Content": "居住证怎么办理"})
    elif case == "billion laughs":
        resp = await plain.post(msg, body=BILLION_LAUGHS)
    elif case == "oversized":
        resp = await plain.post({**msg, "Content": "长" * 30000})
    elif case == "oversized, chunked":
        big = xmltodict.unparse({"xml": {**msg, "Content": "长" * 30000}}, full_document=False)
        resp = await http.post("/wechat", params=plain.signed(), data=_chunked(big.encode()))
    elif case == "unknown account":
        resp = await WeChat(http, "/wechat/nobody", TOKEN, APP_ID).post(msg)
    else:
        resp = await http.post("/wechat", data=xmltodict.unparse({"xml": msg}).encode())
    assert resp.status == status, await resp.text()
    assert rasa.calls == []
    assert await count(db) == 0 and await count(db, Conversation) == 0


# --- retries and timing -----------------------------------------------------------------------

async def test_three_concurrent_deliveries_of_one_msgid_are_processed_once(plain, rasa, db):
    rasa.delay = 0.5    # the retries arrive while the first is still with Rasa
    replies = await asyncio.gather(*(plain.send(text_msg("居住证怎么办理", msg_id="777")) for _ in range(3)))
    assert replies == ["携带身份证到派出所申请。"] * 3
    assert rasa.calls == ["居住证怎么办理"]
    assert [r[3] for r in await stored(db)] == ["in", "out"]


async def test_a_retry_after_the_answer_gets_the_same_answer(plain, rasa, db):
    first = await plain.send(text_msg("护照", msg_id="888"))
    assert await plain.send(text_msg("护照", msg_id="888")) == first
    assert rasa.calls == ["护照"] and await count(db) == 3


async def test_a_bot_slower_than_the_budget_gets_success_and_the_reply_is_stored(db, tmp_path):
    async with serve(db, tmp_path, budget=0.3) as (http, rasa):
        rasa.delay = 1.0
        started = time.monotonic()
        assert await WeChat(http, "/wechat", TOKEN, APP_ID).send(text_msg("居住证怎么办理")) == "success"
        assert time.monotonic() - started < 0.9
        assert [r[3] for r in await stored(db)] == ["in"]
        for _ in range(50):
            if len(await stored(db)) == 2:
                break
            await asyncio.sleep(0.1)
        assert (await stored(db))[1][3:] == ("out", "携带身份证到派出所申请。")
        # WeChat's retry of the same MsgId: Rasa is not asked again, and the answer is not given
        # passively as well — it goes once, by customer-service message (WeChat had given up
        # on the first try, which answered `success`).
        again = await WeChat(http, "/wechat", TOKEN, APP_ID).send(text_msg("居住证怎么办理"))
        assert again == "success" and rasa.calls == ["居住证怎么办理"]
        async with db.session() as session:
            queued = (await session.scalars(select(Delivery.message_id))).all()
            reply = await session.scalar(select(Message.id).where(Message.direction == "out"))
        assert queued == [reply]


async def test_a_retry_of_a_message_answered_within_the_budget_gets_the_answer_again(db, tmp_path):
    """The first answer went out passively but never reached WeChat: the retry repeats it."""
    async with serve(db, tmp_path) as (http, rasa):
        first = await WeChat(http, "/wechat", TOKEN, APP_ID).send(text_msg("居住证怎么办理"))
        again = await WeChat(http, "/wechat", TOKEN, APP_ID).send(text_msg("居住证怎么办理"))
        assert first == again == "携带身份证到派出所申请。" and rasa.calls == ["居住证怎么办理"]
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(Delivery)) == 0


# --- accounts on the command line -------------------------------------------------------------

async def test_cli_adds_lists_and_removes_accounts_without_showing_secrets(db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db.url)
    for name in ("WECHAT_APP_ID", "WECHAT_TOKEN", "WECHAT_ENCODING_AES_KEY", "WECHAT_MODE"):
        monkeypatch.delenv(name, raising=False)

    async def govchat(*argv: str) -> int:
        return await asyncio.to_thread(main, list(argv))

    assert await govchat("wechat", "account", "add", "unit3", "--app-id", "wx3333", "--secret",
                         "TOPSECRET", "--token", "tokenThree", "--aes-key", AES_KEY) == 0
    assert "/wechat/unit3" in capsys.readouterr().out
    assert await govchat("wechat", "account", "add", "unit3", "--app-id", "wx3", "--secret", "s",
                         "--token", "tok333") == 2
    assert "exists already" in capsys.readouterr().err
    assert await govchat("wechat", "account", "add", "unit4", "--app-id", "wx4", "--secret", "s",
                         "--token", "tok444", "--mode", "safe") == 2
    assert "EncodingAESKey" in capsys.readouterr().err
    assert await govchat("wechat", "account", "list") == 0
    out = capsys.readouterr().out
    assert "unit3" in out and "wx3333" in out and "safe" in out
    assert "TOPSECRET" not in out and "tokenThree" not in out and AES_KEY not in out
    assert await govchat("wechat", "account", "remove", "unit3") == 0
    assert await govchat("wechat", "account", "remove", "unit3") == 2
    async with db.session() as session:
        assert await accounts.all_rows(session) == []
