"""`govchat wechat simulate`: play WeChat's part against a running server, from a terminal.

Each line typed is sent as WeChat would send it for the account — signed, and encrypted in
safe or compatible mode — and the passive reply is decrypted and shown. When the server answers
`success` (the answer was not ready in time), the replies it later sends through the
customer-service API are read from the database (`follow`) and shown with how their delivery
ended. It is how an operator tries the bot (and checks the token and key) before connecting a
real account.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import aiohttp

from channels.wechat import delivery
from channels.wechat.accounts import Account
from channels.wechat.crypto import Cipher, signature, signature_ok
from channels.wechat.messages import _cdata, parse_fields
from channels.wechat.models import DELIVERED, PLAINTEXT, UNDELIVERABLE

ACCOUNT_ID = "gh_simulator00"
# The simulated openid is no WeChat user: the real API refuses to write to it.
LATE_NOTE = ("Late replies go through WeChat's customer-service API to the simulated openid, which "
             "is no real WeChat user: against the real API they end \"not delivered\" (invalid "
             "openid). Their text is shown here anyway.")


class SimulationError(RuntimeError):
    """The server refused the message or answered something WeChat would not accept."""


def text_message(openid: str, text: str, msg_id: str, now: int) -> str:
    return ("<xml>"
            f"<ToUserName>{_cdata(ACCOUNT_ID)}</ToUserName>"
            f"<FromUserName>{_cdata(openid)}</FromUserName>"
            f"<CreateTime>{now}</CreateTime>"
            "<MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{_cdata(text)}</Content>"
            f"<MsgId>{msg_id}</MsgId>"
            "</xml>")


def new_msg_id() -> str:
    return str(secrets.randbelow(9 * 10**18) + 10**18)


class Simulator:
    def __init__(self, http: aiohttp.ClientSession, url: str, account: Account, openid: str) -> None:
        self.http, self.url, self.account, self.openid = http, url, account, openid

    def _request(self, xml: str) -> tuple[dict, str]:
        ts, nonce = str(int(time.time())), secrets.token_hex(5)
        params = {"signature": signature(self.account.token, ts, nonce), "timestamp": ts,
                  "nonce": nonce, "openid": self.openid}
        if self.account.mode == PLAINTEXT:
            return params, xml
        encrypt = Cipher(self.account.encoding_aes_key).encrypt(xml, self.account.app_id)
        params.update(encrypt_type="aes", msg_signature=signature(self.account.token, ts, nonce, encrypt))
        return params, f"<xml><ToUserName>{_cdata(ACCOUNT_ID)}</ToUserName><Encrypt>{_cdata(encrypt)}</Encrypt></xml>"

    async def send(self, text: str, msg_id: str | None = None) -> str | None:
        """The passive reply's text; None when the server answered `success` (a reply that
        was not ready within WeChat's window follows through the customer-service API)."""
        msg_id = msg_id or new_msg_id()
        params, body = self._request(text_message(self.openid, text, msg_id, int(time.time())))
        async with self.http.post(self.url, params=params, data=body.encode(),
                                  headers={"Content-Type": "text/xml"}) as resp:
            reply = await resp.text()
            if resp.status != 200:
                raise SimulationError(f"the server refused the message: HTTP {resp.status} {reply[:200]}")
        if reply in ("success", ""):
            return None
        fields = parse_fields(reply)
        if self.account.mode != PLAINTEXT and "Encrypt" in fields:
            if not signature_ok(fields.get("MsgSignature"), self.account.token, fields.get("TimeStamp", ""),
                                fields.get("Nonce", ""), fields["Encrypt"]):
                raise SimulationError("the reply's msg_signature does not match the account's token")
            fields = parse_fields(Cipher(self.account.encoding_aes_key).decrypt(fields["Encrypt"], self.account.app_id))
        if fields.get("ToUserName") != self.openid:
            raise SimulationError("the reply is addressed to someone else")
        return fields.get("Content", "")


async def follow(db, account: str, msg_id: str, wait: float,
                 poll: float = 0.25) -> AsyncIterator[delivery.LateReply]:
    """The replies to the message `msg_id`, each as soon as its delivery settles (sent or not
    delivered); after `wait` seconds the rest as they stand. Returns early once all settled."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    shown: set[int] = set()
    while True:
        replies = await delivery.replies_to(db, account, msg_id)
        done = loop.time() >= deadline
        for reply in replies or []:
            if reply.message_id not in shown and (reply.settled or done):
                shown.add(reply.message_id)
                yield reply
        if done or (replies is not None and all(r.settled for r in replies)):
            return
        await asyncio.sleep(min(poll, max(0.0, deadline - loop.time())))


def late_line(reply: delivery.LateReply) -> str:
    """How the terminal shows a late reply: its delivery status, then its text."""
    if reply.status == DELIVERED:
        status = "sent"
    elif reply.status == UNDELIVERABLE:
        status = f"not delivered: {reply.last_error}"
    elif reply.status is None:
        status = "not queued for delivery"
    else:
        status = "pending" + (f", last try: {reply.last_error}" if reply.last_error else "")
    return f"公众号（客服消息，{status}）：{reply.text}"
