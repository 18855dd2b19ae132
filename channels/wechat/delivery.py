"""The delivery queue: replies that missed the passive-reply budget, sent later as 客服消息.

Rows live in `deliveries` (one per stored reply, unique, so nothing is sent twice). A worker
in every server instance claims due rows — `FOR UPDATE SKIP LOCKED` on PostgreSQL, a
conditional UPDATE on SQLite — and sends them one citizen at a time, in order. Every end is
recorded: `delivered` with a `reply_delivered` event, or `undeliverable` with a
`delivery_failed` event naming the reason, so staff and the timeliness reports see it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from aiohttp import web
from sqlalchemy import and_, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from bot.models import RECEIVED, Conversation, Message
from casework import events
from channels.wechat import accounts
from channels.wechat.accounts import Account
from channels.wechat.api_client import (QUOTA_EXCEEDED, TOKEN_REJECTED, WINDOW_CLOSED, ApiError,
                                        Unreachable, WechatApi)
from channels.wechat.models import DELIVERED, PENDING, SENDING, UNDELIVERABLE, Delivery
from channels.wechat.split import split_text
from channels.wechat.tokens import TokenCache
from server.appkeys import CONFIG, DB
from server.config import Config
from server import metrics
from server.db import Database, utcnow

log = logging.getLogger(__name__)

CHANNEL = "wechat"
WINDOW = timedelta(hours=48)     # customer-service messages only this long after the citizen wrote
LEASE = timedelta(minutes=3)     # a claim lapses after this (its worker died): another may send
BATCH = 10
ORPHAN_AFTER = timedelta(seconds=10)
# WeChat's answers that no retry will change.
FINAL = {WINDOW_CLOSED: "window closed", QUOTA_EXCEEDED: "quota exceeded",
         40003: "invalid openid"}


async def enqueue(db: Database, message_ids: Iterable[int], *, account: str, to_user: str) -> int:
    """Queue stored replies for the citizen `to_user` (openid); returns how many were new."""
    queued = 0
    for message_id in message_ids:
        try:
            async with db.session() as session, session.begin():
                session.add(Delivery(message_id=message_id, account=account, to_user=to_user,
                                     status=PENDING, next_attempt_at=utcnow()))
            queued += 1
        except IntegrityError:      # queued before (a retry of the same WeChat message)
            pass
    return queued


async def enqueue_orphans(db: Database, budget: float, now: datetime | None = None) -> int:
    """Queue replies that missed the passive budget but were never queued: the server that
    stored them died before `routes._queue_late` ran (tests/faults). A reply stored more than
    `budget` after its message cannot have gone out passively. Returns how many were queued."""
    now = now or utcnow()
    replies = await _orphans(db, budget, now)
    queued = 0
    for message_id, account, openid in replies:
        queued += await enqueue(db, [message_id], account=account, to_user=openid)
    if queued:
        log.warning("wechat: queued %d late replies a stopped server left unsent", queued)
    return queued


async def _orphans(db: Database, budget: float, now: datetime) -> list[tuple[int, str, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Message.id, Message.account, Conversation.sender)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .outerjoin(Delivery, Delivery.message_id == Message.id)
            .where(Message.channel == CHANNEL, Message.direction == "out",
                   Message.in_reply_to_id.is_not(None), Message.latency_ms > budget * 1000,
                   # Older than a live server takes to queue it; young enough to still matter.
                   Message.created_at < now - ORPHAN_AFTER, Message.created_at > now - WINDOW,
                   Delivery.id.is_(None))
            .order_by(Message.id))
        return [tuple(row) for row in rows]


def _due(now: datetime):
    return and_(Delivery.status.in_((PENDING, SENDING)), Delivery.next_attempt_at <= now)


def _first_in_line():
    # A citizen's replies go out in order: none while an older one is still waiting or sending.
    older = aliased(Delivery)
    return ~exists().where(older.account == Delivery.account, older.to_user == Delivery.to_user,
                           older.status.in_((PENDING, SENDING)), older.id < Delivery.id)


async def claim(db: Database, limit: int = BATCH) -> list[int]:
    """Mark up to `limit` due deliveries as ours (sending); no two workers get the same one."""
    now = utcnow()
    lease = dict(status=SENDING, attempts=Delivery.attempts + 1, next_attempt_at=now + LEASE)
    query = (select(Delivery.id).where(_due(now), _first_in_line())
             .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
    if db.dialect == "postgresql":
        async with db.session() as session, session.begin():
            ids = list(await session.scalars(query.with_for_update(skip_locked=True)))
            if ids:
                await session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(**lease))
        return ids
    # SQLite has no row locks: each claim is an UPDATE that only one writer can win.
    async with db.session() as session:
        candidates = list(await session.scalars(query))
    claimed = []
    for delivery_id in candidates:
        async with db.session() as session, session.begin():
            result = await session.execute(
                update(Delivery).where(Delivery.id == delivery_id, _due(now), _first_in_line())
                .values(**lease))
        if result.rowcount == 1:
            claimed.append(delivery_id)
    return claimed


@dataclass(frozen=True)
class LateReply:
    """A stored reply to one WeChat message and how its delivery stands."""
    message_id: int
    text: str
    status: str | None          # the delivery's status; None: not queued
    last_error: str | None      # undeliverable: the reason; pending: the last try's error

    @property
    def settled(self) -> bool:
        return self.status in (DELIVERED, UNDELIVERABLE)


async def replies_to(db: Database, account: str, external_id: str) -> list[LateReply] | None:
    """The replies to the account's message `external_id` (its MsgId) with their deliveries,
    oldest first; None while the message is not answered yet (or not stored)."""
    inbound = aliased(Message)
    async with db.session() as session:
        status = await session.scalar(select(Message.status).where(
            Message.channel == CHANNEL, Message.account == account,
            Message.external_id == external_id))
        if status in (None, RECEIVED):
            return None
        rows = await session.execute(
            select(Message.id, Message.text, Delivery.status, Delivery.last_error)
            .join(inbound, Message.in_reply_to_id == inbound.id)
            .outerjoin(Delivery, Delivery.message_id == Message.id)
            .where(inbound.channel == CHANNEL, inbound.account == account,
                   inbound.external_id == external_id)
            .order_by(Message.id))
        return [LateReply(*row) for row in rows]


async def delivery_states(db: Database,
                          message_ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
    """For the staff inbox: message id → (delivery status, last error) of those queued here."""
    ids = list(message_ids)
    if not ids:
        return {}
    async with db.session() as session:
        rows = await session.execute(select(Delivery.message_id, Delivery.status,
                                            Delivery.last_error).where(Delivery.message_id.in_(ids)))
        return {message_id: (status, error) for message_id, status, error in rows}


class Undeliverable(Exception):
    """The reply cannot reach the citizen; the message is the reason staff will read."""


class DeliveryWorker:
    def __init__(self, db: Database, config: Config, api: WechatApi) -> None:
        self.db = db
        self.config = config
        self.api = api
        self.tokens = TokenCache(db, api)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was queued here: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                busy = await self.run_once()
            except Exception:   # the database may be away for a moment; the rows wait
                log.exception("wechat delivery: could not claim from the queue")
                busy = 0
            if not busy:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation
                # that arrives as the event is set (a reply queued during shutdown), and the
                # worker would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.wechat_delivery_poll):
                        await self._wake.wait()

    async def run_once(self) -> int:
        """Claim what is due and try each once; returns how many were tried."""
        ids = await claim(self.db)
        await asyncio.gather(*(self._try(i) for i in ids))
        return len(ids)

    async def _try(self, delivery_id: int) -> None:
        try:
            await self.deliver(delivery_id)
        except Exception as exc:
            log.exception("wechat delivery %s failed unexpectedly", delivery_id)
            with contextlib.suppress(Exception):    # else the lease lapses and it is tried again
                await self._retry(delivery_id, f"{type(exc).__name__}: {exc}")

    async def deliver(self, delivery_id: int) -> None:
        """Send one claimed delivery (all its parts) and record how it ended."""
        async with self.db.session() as session:
            delivery = await session.get(Delivery, delivery_id)
            message = await session.get(Message, delivery.message_id)
            last_in = await session.scalar(select(Conversation.last_message_at).where(
                Conversation.id == message.conversation_id))
        try:
            account = await self._account(delivery.account)
            if utcnow() - last_in > WINDOW:     # known here: spare WeChat the call
                raise Undeliverable(FINAL[WINDOW_CLOSED])
            parts = split_text(message.text)
            for index in range(delivery.parts_sent, len(parts)):
                await self._send(account, delivery.to_user, parts[index])
                await self._progress(delivery, index + 1)
        except Undeliverable as exc:
            await self._finish(delivery, message, UNDELIVERABLE, reason=str(exc))
        except ApiError as exc:
            if exc.errcode in FINAL:
                await self._finish(delivery, message, UNDELIVERABLE, reason=FINAL[exc.errcode],
                                   errcode=exc.errcode)
            else:   # -1 "system busy", an IP not on the allow-list yet…: may pass
                await self._retry(delivery_id, str(exc))
        except Unreachable as exc:
            await self._retry(delivery_id, str(exc))
        else:
            await self._finish(delivery, message, DELIVERED, parts=len(parts))

    async def _account(self, name: str) -> Account:
        account = await accounts.find(self.db, self.config, name)
        if account is None:
            raise Undeliverable(f"no WeChat account named {name!r}")
        if not account.app_secret:
            raise Undeliverable("the account has no AppSecret")
        return account

    async def _send(self, account: Account, openid: str, text: str) -> None:
        token = await self.tokens.get(account)
        try:
            await self.api.send_text(token, openid, text)
        except ApiError as exc:
            if exc.errcode not in TOKEN_REJECTED:
                raise
            # Expired or replaced by a fetch elsewhere: refresh once and try again.
            log.info("wechat: token for %s rejected (%s); refreshing", account.app_id, exc.errcode)
            token = await self.tokens.get(account, rejected=token)
            await self.api.send_text(token, openid, text)

    async def _progress(self, delivery: Delivery, parts_sent: int) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(update(Delivery).where(Delivery.id == delivery.id)
                                  .values(parts_sent=parts_sent))

    async def _retry(self, delivery_id: int, error: str) -> None:
        async with self.db.session() as session:
            delivery = await session.get(Delivery, delivery_id)
            message = await session.get(Message, delivery.message_id)
        if delivery.attempts >= self.config.wechat_delivery_attempts:
            await self._finish(delivery, message, UNDELIVERABLE,
                               reason=f"gave up after {delivery.attempts} attempts", error=error)
            return
        delay = self.config.wechat_delivery_backoff * 2 ** (delivery.attempts - 1)
        metrics.delivery_retried()
        log.warning("wechat delivery %s: %s; try %d in %.1f s", delivery_id, error,
                    delivery.attempts + 1, delay)
        async with self.db.session() as session, session.begin():
            await session.execute(update(Delivery).where(
                Delivery.id == delivery_id, Delivery.status == SENDING,
                Delivery.attempts == delivery.attempts).values(
                status=PENDING, last_error=error[:200],
                next_attempt_at=utcnow() + timedelta(seconds=delay)))

    async def _finish(self, delivery: Delivery, message: Message, status: str, *,
                      reason: str | None = None, **detail) -> None:
        now = utcnow()
        async with self.db.session() as session, session.begin():
            # Only while our claim holds: the outcome (and its event) is written once.
            result = await session.execute(update(Delivery).where(
                Delivery.id == delivery.id, Delivery.status == SENDING,
                Delivery.attempts == delivery.attempts).values(
                status=status, last_error=reason,
                delivered_at=now if status == DELIVERED else None))
            if result.rowcount != 1:
                return
            metrics.delivery_finished(status)
            if status == DELIVERED:
                events.record(session, events.REPLY_DELIVERED, at=now, since=message.created_at,
                              conversation_id=message.conversation_id, channel=CHANNEL,
                              message_id=message.id, attempts=delivery.attempts, **detail)
            else:
                events.record(session, events.DELIVERY_FAILED, at=now,
                              conversation_id=message.conversation_id, channel=CHANNEL,
                              message_id=message.id, reason=reason, **detail)
        if status == UNDELIVERABLE:
            log.warning("wechat delivery %s undeliverable: %s", delivery.id, reason)


WORKER = web.AppKey("wechat_delivery", DeliveryWorker)


async def worker_context(app: web.Application) -> AsyncIterator[None]:
    """The delivery worker runs as long as the app; rows it leaves wait for the next start."""
    config = app[CONFIG]
    http = aiohttp.ClientSession()
    app[WORKER] = DeliveryWorker(app[DB], config, WechatApi(config.wechat_api_base, http))
    task = asyncio.create_task(app[WORKER].run(), name="wechat-delivery")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await http.close()
