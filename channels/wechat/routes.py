"""`/wechat` and `/wechat/{account}`: URL verification (GET) and messages (POST).

The door checks everything before anything is stored: account, signature, timestamp window,
body size, XML, msg_signature and app id in the encrypted modes. Then the message goes to the
gateway, which stores it first and dedups WeChat's retries by MsgId in the database.
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator

from aiohttp import web

from bot import api as bot_api
from bot.gateway import Inbound, InputRejected, Outcome, Reply
from casework import events
from channels.wechat import accounts, delivery
from channels.wechat.accounts import Account
from channels.wechat.crypto import AppIdMismatch, Cipher, CryptoError, signature, signature_ok
from channels.wechat.inbound import Plan, plan_for
from channels.wechat.messages import (MalformedMessage, WechatMessage, encrypted_envelope,
                                      parse_fields, text_reply)
from channels.wechat.models import PLAINTEXT, SAFE
from server import metrics
from server.appkeys import CONFIG, DB, GATEWAY

log = logging.getLogger(__name__)

CHANNEL = "wechat"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
MAX_BODY = 64 * 1024        # WeChat's messages are a few KB; anything bigger is not from WeChat
UNSUBSCRIBED = "wechat_unsubscribed"
# Gateway work still running after its passive-reply budget: kept so it is neither garbage
# collected nor cut off at shutdown.
TASKS = web.AppKey("wechat_tasks", set)


class Rejected(Exception):
    """A request that is not (provably) from WeChat, or not for this account."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _success() -> web.Response:
    # WeChat's "received, nothing to say": no message reaches the citizen, and no retry.
    return web.Response(text="success", content_type="text/plain")


def _refuse(request: web.Request, exc: Rejected) -> web.Response:
    log.warning("wechat: refused %s %s: %s", request.method, request.path, exc.reason)
    return web.Response(status=exc.status, text=exc.reason, content_type="text/plain")


async def _account(request: web.Request) -> Account:
    name = request.match_info.get("account", accounts.DEFAULT)
    account = await accounts.find(request.app[DB], request.app[CONFIG], name)
    if account is None:
        raise Rejected(404, f"no WeChat account named {name!r}")
    return account


def _timestamp(request: web.Request) -> tuple[str, str]:
    """The signed timestamp and nonce; the timestamp must be within the replay window."""
    ts, nonce = request.query.get("timestamp", ""), request.query.get("nonce", "")
    # ASCII digits, bounded: str.isdigit() also passes "²" (int() then fails: a 500) and
    # int() of thousands of digits raises too.
    if not _TIMESTAMP.fullmatch(ts) or not nonce:
        raise Rejected(400, "timestamp and nonce are required")
    if abs(time.time() - int(ts)) > request.app[CONFIG].wechat_max_skew:
        raise Rejected(401, "timestamp outside the allowed window")
    return ts, nonce


async def verify(request: web.Request) -> web.Response:
    """WeChat checks the server URL: echo `echostr` (decrypted, when sent encrypted)."""
    try:
        account = await _account(request)
        q = request.query
        echostr = q.get("echostr", "")
        if not echostr:
            raise Rejected(400, "echostr is required")
        if "msg_signature" in q:
            if not account.encoding_aes_key:
                raise Rejected(400, "encrypted verification for an account without EncodingAESKey")
            ts, nonce = _timestamp(request)
            if not signature_ok(q["msg_signature"], account.token, ts, nonce, echostr):
                raise Rejected(401, "msg_signature does not match")
            echo = _decrypt(account, echostr)
        else:
            ts, nonce = _timestamp(request)
            if not signature_ok(q.get("signature"), account.token, ts, nonce):
                raise Rejected(401, "signature does not match")
            echo = echostr
    except Rejected as exc:
        return _refuse(request, exc)
    return web.Response(text=echo, content_type="text/plain")


def _decrypt(account: Account, payload: str) -> str:
    try:
        return Cipher(account.encoding_aes_key).decrypt(payload, account.app_id)
    except AppIdMismatch as exc:
        raise Rejected(403, str(exc)) from None
    except CryptoError as exc:
        raise Rejected(400, f"cannot decrypt: {exc}") from None


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Rejected(413, f"body over {MAX_BODY} bytes")
    body = bytearray()
    while chunk := await request.content.readany():    # chunked bodies have no length up front
        body += chunk
        if len(body) > MAX_BODY:
            raise Rejected(413, f"body over {MAX_BODY} bytes")
    return bytes(body)


async def receive(request: web.Request) -> web.Response:
    try:
        account = await _account(request)
        q = request.query
        ts, nonce = _timestamp(request)
        if not signature_ok(q.get("signature"), account.token, ts, nonce):
            raise Rejected(401, "signature does not match")
        fields = _parse(await _read_body(request))
        encrypted = q.get("encrypt_type") == "aes"
        if encrypted:
            if account.mode == PLAINTEXT or not account.encoding_aes_key:
                raise Rejected(400, "encrypted message for a plaintext-mode account")
            payload = fields.get("Encrypt", "")
            if not payload:
                raise Rejected(400, "encrypt_type=aes without <Encrypt>")
            if not signature_ok(q.get("msg_signature"), account.token, ts, nonce, payload):
                raise Rejected(401, "msg_signature does not match")
            fields = _parse(_decrypt(account, payload).encode())
        elif account.mode == SAFE:
            raise Rejected(400, "safe-mode account received a plaintext message")
        try:
            msg = WechatMessage.from_fields(fields)
        except MalformedMessage as exc:
            raise Rejected(400, str(exc)) from None
    except Rejected as exc:
        return _refuse(request, exc)

    text = await _answer(request.app, account, msg, plan_for(msg))
    if text is None:
        return _success()
    xml = text_reply(msg.from_user, msg.to_user, text)
    if encrypted:
        xml = _envelope(account, xml)
    return web.Response(text=xml, content_type="text/xml")


def _parse(body: bytes) -> dict[str, str]:
    try:
        return parse_fields(body)
    except MalformedMessage as exc:
        raise Rejected(400, str(exc)) from None


def _envelope(account: Account, xml: str) -> str:
    encrypt = Cipher(account.encoding_aes_key).encrypt(xml, account.app_id)
    ts, nonce = str(int(time.time())), secrets.token_hex(8)
    return encrypted_envelope(encrypt, signature(account.token, ts, nonce, encrypt), ts, nonce)


async def _answer(app: web.Application, account: Account, msg: WechatMessage,
                  plan: Plan) -> str | None:
    """The passive reply's text, or None for `success`."""
    if plan.unsubscribed:
        await _record_unsubscribe(app, account, msg)
        return None
    if plan.text is None:
        return plan.reply
    inbound = Inbound(channel=CHANNEL, account=account.name, sender=msg.from_user,
                      text=plan.text, external_id=msg.external_id, media=plan.media)
    task = _track(app, asyncio.ensure_future(_through_gateway(app, inbound)))
    try:
        # shield: when the budget runs out the gateway carries on and stores its replies.
        outcome = await asyncio.wait_for(asyncio.shield(task), app[CONFIG].wechat_reply_budget)
    except asyncio.TimeoutError:
        metrics.passive_missed()
        log.info("wechat: %s/%s not answered within the budget; replying success",
                 account.name, inbound.external_id)
        _track(app, asyncio.ensure_future(_queue_late(app, account, msg.from_user, task)))
        return None
    if outcome.duplicate and _missed_the_budget(app, outcome):
        # A retry of a message whose first try answered `success` (WeChat gave up on it before
        # it arrived): those replies go by customer-service message, queued once. Repeating them
        # here as well would show the citizen the same answer twice.
        await _queue(app, account, msg.from_user, [r.id for r in outcome.replies])
        return None
    return "\n\n".join(reply.text for reply in outcome.replies) or None


def _missed_the_budget(app: web.Application, outcome: Outcome) -> bool:
    budget_ms = app[CONFIG].wechat_reply_budget * 1000
    return any(r.latency_ms is not None and r.latency_ms > budget_ms for r in outcome.replies)


def _track(app: web.Application, task: asyncio.Future) -> asyncio.Future:
    app[TASKS].add(task)
    task.add_done_callback(lambda t: _finished(app, t))
    return task


def _finished(app: web.Application, task: asyncio.Task) -> None:
    app[TASKS].discard(task)
    if not task.cancelled():
        task.exception()    # logged where raised; fetched so asyncio does not warn again


async def _through_gateway(app: web.Application, inbound: Inbound) -> Outcome:
    try:
        return await app[GATEWAY].handle(inbound)
    except InputRejected as exc:     # too long, too fast: say so in the passive reply
        return Outcome([Reply(exc.message)], "bot")
    except Exception:
        log.exception("wechat: gateway failed on %s/%s", inbound.account, inbound.external_id)
        raise


async def _queue_late(app: web.Application, account: Account, openid: str,
                      task: asyncio.Future) -> None:
    """The answer missed the passive reply: queue its stored replies for the 客服消息 API."""
    try:
        outcome = await task
    except Exception:       # logged in _through_gateway
        return
    if outcome.duplicate:
        # A retry: the first delivery of this MsgId answered passively or queued the replies.
        return
    await _queue(app, account, openid, [reply.id for reply in outcome.replies])


async def _queue(app: web.Application, account: Account, openid: str,
                 ids: list[int | None]) -> None:
    """Queue stored replies for the customer-service API (once: enqueue ignores repeats)."""
    stored = [i for i in ids if i is not None]
    if len(stored) < len(ids):     # a refusal (too fast) is not stored: nothing to send
        log.warning("wechat: %s/%s late reply was not stored; not delivered", account.name, openid)
    try:
        if stored and await delivery.enqueue(app[DB], stored, account=account.name, to_user=openid):
            if (worker := app.get(delivery.WORKER)) is not None:
                worker.wake()
    except Exception:
        log.exception("wechat: could not queue the late replies %s", stored)
        raise


async def _record_unsubscribe(app: web.Application, account: Account, msg: WechatMessage) -> None:
    conv = await bot_api.open_conversation(app[DB], CHANNEL, account.name, msg.from_user)
    async with app[DB].session() as session, session.begin():
        events.record(session, UNSUBSCRIBED, conversation_id=conv.id, channel=CHANNEL)


async def _background(app: web.Application) -> AsyncIterator[None]:
    app[TASKS] = set()
    yield
    # Let late answers finish storing before the database closes.
    if app[TASKS]:
        await asyncio.wait(app[TASKS], timeout=app[CONFIG].rasa_timeout + 2)


def setup_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_background)
    app.router.add_get("/wechat", verify, name="wechat-verify")
    app.router.add_post("/wechat", receive, name="wechat-receive")
    app.router.add_get("/wechat/{account}", verify, name="wechat-account-verify")
    app.router.add_post("/wechat/{account}", receive, name="wechat-account-receive")
