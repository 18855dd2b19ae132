"""The conversation gateway: every channel hands each citizen message to `Gateway.handle`.

Order matters and is the promise to citizens: persist the message first, then decide who
answers (staff hold the conversation → the bot stays silent), then ask Rasa with a timeout,
then persist every reply with its timing and source. If Rasa is down or slow the citizen gets
an apology and the conversation is queued for staff: nothing is lost.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot import api, harmful
from bot.models import ANSWERED, BOT, QUEUED, RECEIVED, STAFF, Conversation, Message
from bot.rasa_client import RasaClient, RasaUnavailable
from casework import events
from knowledge_base import curation
from knowledge_base.search import Decision
from server import logs, metrics
from server.db import Database, utcnow

log = logging.getLogger(__name__)

# Rasa is unavailable: the Q&A base's answer fields and its search decision, or None.
WithoutRasa = Callable[[str], tuple[dict, Decision] | None]
APOLOGY = "抱歉，智能助手暂时无法回复。您的留言已记录并转交人工客服，工作人员会尽快回复您。"
KINDS = ("answer", "clarify", "fallback", "form", "case", "handoff", "info")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A bare choice after a clarification: "2", "第2个", "２".
_CHOICE = re.compile(r"^\s*第?\s*([1-9])\s*(个|条|项)?\s*[。.]?\s*$")
# A message still `received` this long after Rasa's timeout has no one working on it: its
# server died between storing and settling it (tests/faults). A retry of it, or the recovery
# sweep, then answers it; `_settle` is conditional, so it is answered once either way.
STALE_MARGIN = 3.0
# WeChat re-sends an unanswered message for about 15 s: its retries get the first go, then the
# sweep takes what is left (a message WeChat was told `success` for is never re-sent).
RETRY_WINDOW = 15.0


class InputRejected(Exception):
    """The message was not accepted; `message` is for the citizen, in Chinese."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Inbound:
    channel: str
    sender: str
    text: str
    account: str = ""
    external_id: str | None = None      # the channel's message id, for retries
    received_at: datetime = field(default_factory=utcnow)
    # An image, video, link or location (WeChat): kept with the message; `text` says what it is.
    media: dict | None = None


def rasa_text(inbound: Inbound) -> str | None:
    """What Rasa is told of a media message: an intent the server sends, never NLU on "[图片]"."""
    media = inbound.media
    if not media:
        return None
    if media.get("kind") == "location":
        return "/share_location" + json.dumps({"place": media.get("label") or "（微信位置）"},
                                              ensure_ascii=False)
    return "/share_media" + json.dumps({"media_kind": media.get("kind", "")}, ensure_ascii=False)


@dataclass
class Reply:
    text: str
    kind: str = "info"
    options: list[dict] | None = None   # [{"title", "payload", "faq_id"}] on clarifications
    case_no: str | None = None
    qa_id: str | None = None
    source_ref: str | None = None
    id: int | None = None               # the stored message's id, once settled (for feedback)
    latency_ms: int | None = None       # stored: how long after its message it was settled

    def public(self) -> dict:
        """The reply as channels show it (no internal references)."""
        out = {"text": self.text, "kind": self.kind}
        if self.id is not None:
            out["id"] = self.id
        if self.options:
            out["options"] = [{"title": o["title"], "payload": o["payload"]} for o in self.options]
        if self.case_no:
            out["case_no"] = self.case_no
        if self.qa_id:
            out["qa_id"] = self.qa_id
        return out

    @classmethod
    def from_rasa(cls, message: dict) -> "Reply | None":
        custom = message.get("custom")
        if isinstance(custom, dict) and custom.get("text"):
            kind = custom.get("kind") if custom.get("kind") in KINDS else "info"
            return cls(text=custom["text"], kind=kind, options=custom.get("options"),
                       case_no=custom.get("case_no"), qa_id=custom.get("qa_id"),
                       source_ref=custom.get("source_ref"))
        if message.get("text"):
            return cls(text=message["text"], kind="info", source_ref="rasa")
        return None

    @classmethod
    def from_row(cls, row: Message) -> "Reply":
        meta = row.meta or {}
        return cls(text=row.text, kind=row.kind or "info", options=meta.get("options"),
                   case_no=meta.get("case_no"), qa_id=meta.get("qa_id"), source_ref=row.source_ref,
                   id=row.id, latency_ms=row.latency_ms)


@dataclass
class Outcome:
    replies: list[Reply]
    status: str                 # "bot" or "with_staff"
    duplicate: bool = False     # a retry of a message already handled


class Gateway:
    def __init__(self, db: Database, rasa: RasaClient, *, max_chars: int, rate_limit: int,
                 max_in_flight: int = 8, without_rasa: WithoutRasa | None = None) -> None:
        self.db = db
        self.rasa = rasa
        # Rasa down or too slow: a question the Q&A base answers confidently is still answered
        # (bot/actions/faq.answer_without_rasa); anything else gets the apology and a person.
        self.without_rasa = without_rasa
        self.max_chars = max_chars
        self.rate_limit = rate_limit
        # Admission control (GOVCHAT_MAX_IN_FLIGHT): at most this many messages are with Rasa
        # at once. Beyond it a message, already stored, waits its turn in memory instead of
        # piling requests on Rasa and the database pool, which under a burst ran the pool dry
        # and left messages unanswered (docs/performance.md); WeChat gets `success` at its
        # budget and the reply later.
        self._slots = asyncio.Semaphore(max_in_flight)
        # Messages this process is answering or holding for a slot: their retries wait on the
        # event instead of polling the database, and no retry or sweep takes them over.
        self._working: dict[int, asyncio.Event] = {}
        # Rasa's timeout bounds how long a live handler takes (a fake Rasa in tests has none).
        self.stale_after = timedelta(seconds=getattr(rasa, "timeout", 8.0) + STALE_MARGIN)

    def check_text(self, text: str) -> str:
        # U+0000 cannot be stored in PostgreSQL text (asyncpg refuses it: a 503) and means
        # nothing to a reader: dropped. A lone surrogate (JSON "\ud800") is no text at all and
        # cannot be encoded for either database (a 500): refused.
        text = (text or "").replace("\x00", "").strip()
        if _SURROGATE.search(text):
            raise InputRejected(400, "消息包含无法识别的字符，请检查后重新发送。")
        if not text:
            raise InputRejected(400, "消息内容为空，请输入您要咨询的问题。")
        if len(text) > self.max_chars:
            raise InputRejected(
                413, f"消息太长了（{len(text)}字），请精简到{self.max_chars}字以内，或分几条发送。")
        return text

    async def handle(self, inbound: Inbound) -> Outcome:
        inbound.text = self.check_text(inbound.text)
        conv = await api.open_conversation(self.db, inbound.channel, inbound.account, inbound.sender)
        logs.bind(conversation_id=conv.id, channel=inbound.channel)
        # A retry is answered from what is stored, before the rate limit could refuse it.
        if inbound.external_id and await self._stored(inbound) is not None:
            return await self._replay(inbound)
        await self._check_rate(conv.id, inbound.received_at)
        message_id = await self._persist_inbound(conv, inbound)
        if message_id is None:
            return await self._replay(inbound)
        metrics.received(inbound.channel)
        return await self._work(conv, message_id, inbound, new=True)

    async def _work(self, conv: Conversation, message_id: int, inbound: Inbound, *,
                    new: bool = False) -> Outcome:
        """`_process` within the in-flight bound, known to this process from the moment it was
        stored (`new`) until it is settled."""
        done = self._working.setdefault(message_id, asyncio.Event())
        try:
            if new:
                await harmful.flag_message(self.db, message_id, conv.id, inbound.text)  # art. 24
            async with self._slots:
                return await self._process(conv, message_id, inbound)
        finally:
            done.set()
            self._working.pop(message_id, None)

    async def _process(self, conv: Conversation, message_id: int, inbound: Inbound) -> Outcome:
        """Answer the stored message `message_id` (still `received`) and settle it."""
        if conv.state == STAFF and conv.handoff_reason != api.BOT_UNAVAILABLE:
            if await self._settle(message_id, QUEUED, [], inbound, conv) is None:
                return await self._answered_elsewhere(message_id)
            return Outcome([], "with_staff")

        text = rasa_text(inbound) or await self._rewrite_choice(conv.id, inbound.text)
        try:
            raw = await self.rasa.send(str(conv.id), text, {"channel": inbound.channel})
        except RasaUnavailable as exc:
            log.warning("Rasa unavailable for conversation %s: %s", conv.id, exc)
            if (outcome := await self._answer_without_rasa(conv, message_id, inbound)) is not None:
                return outcome
            return await self._apologise(conv, message_id, inbound, str(exc))

        replies = [r for r in map(Reply.from_rasa, raw) if r is not None]
        if not replies:
            # Rasa answered nothing at all: never leave the citizen in silence.
            log.error("Rasa returned no reply for conversation %s", conv.id)
            return await self._apologise(conv, message_id, inbound, "empty reply")
        await harmful.mask_replies(self.db, replies)      # the bot never repeats harmful terms
        state = await self._settle(message_id, ANSWERED, replies, inbound, conv, bot_back=True)
        if state is None:
            return await self._answered_elsewhere(message_id)
        return Outcome(replies, "with_staff" if state == STAFF else "bot")

    async def recover(self, now: datetime | None = None) -> list[tuple[Conversation, Outcome]]:
        """Answer the messages whose server died before settling them and that no retry took
        over (within WeChat's 48-hour window); the channel delivers the replies returned."""
        now = now or utcnow()
        async with self.db.session() as session:
            stale = list(await session.scalars(select(Message).where(
                Message.direction == "in", Message.status == RECEIVED,
                Message.created_at < now - self.stale_after - timedelta(seconds=RETRY_WINDOW),
                Message.created_at > now - timedelta(hours=48)).order_by(Message.id)))
        answered = []
        for message in stale:
            if message.id in self._working:         # waiting for a slot here: not abandoned
                continue
            async with self.db.session() as session:
                conv = await session.get(Conversation, message.conversation_id)
            log.warning("message %s was left unanswered (its server stopped?); answering it now",
                        message.id)
            outcome = await self._work(conv, message.id, _inbound_of(message, conv))
            if not outcome.duplicate:
                answered.append((conv, outcome))
        return answered

    async def _check_rate(self, conversation_id: int, now: datetime) -> None:
        async with self.db.session() as session:
            recent = await session.scalar(
                select(func.count()).select_from(Message).where(
                    Message.conversation_id == conversation_id, Message.direction == "in",
                    Message.created_at >= now - timedelta(minutes=1)))
        if recent >= self.rate_limit:
            raise InputRejected(429, "您发送消息太频繁了，请稍等一分钟再试。")

    async def _persist_inbound(self, conv: Conversation, inbound: Inbound) -> int | None:
        """Store the citizen's message before anything else; None if it was stored before."""
        try:
            async with self.db.session() as session, session.begin():
                row = Message(
                    conversation_id=conv.id, channel=inbound.channel, account=inbound.account,
                    external_id=inbound.external_id, direction="in", source="citizen",
                    text=inbound.text, status=RECEIVED, created_at=inbound.received_at,
                    meta={"media": inbound.media} if inbound.media else {})
                session.add(row)
                await session.execute(update(Conversation).where(Conversation.id == conv.id)
                                      .values(last_message_at=inbound.received_at))
                events.record(session, events.MESSAGE_RECEIVED, at=inbound.received_at,
                              conversation_id=conv.id, channel=inbound.channel)
                await session.flush()
                return row.id
        except IntegrityError:
            if inbound.external_id is None:
                raise
            return None

    async def _stored(self, inbound: Inbound) -> Message | None:
        """The stored message with this channel message id, if any."""
        async with self.db.session() as session:
            return await session.scalar(select(Message).where(
                Message.channel == inbound.channel, Message.account == inbound.account,
                Message.external_id == inbound.external_id))

    async def _replay(self, inbound: Inbound) -> Outcome:
        """A retry of a message we already have: wait for its replies, send the same ones. If
        no one is answering it any more (its server died), this retry answers it."""
        while True:
            first = await self._stored(inbound)
            if first.status != RECEIVED:
                return await self._answered_elsewhere(first.id)
            if (working := self._working.get(first.id)) is not None:
                await working.wait()                # answered here: no polling, no takeover
                continue
            if utcnow() - first.created_at > self.stale_after:
                async with self.db.session() as session:
                    conv = await session.get(Conversation, first.conversation_id)
                log.warning("message %s was left unanswered (its server stopped?); the retry "
                            "answers it", first.id)
                # Timed from this retry: WeChat waits on it, and a reply stored within its
                # budget went out passively (delivery.enqueue_orphans reads the latency so).
                return await self._work(conv, first.id,
                                        _inbound_of(first, conv, inbound.received_at))
            await asyncio.sleep(0.25)               # another instance is answering it

    async def _answered_elsewhere(self, message_id: int) -> Outcome:
        """The replies another handler stored for the message (a retry's view of it)."""
        async with self.db.session() as session:
            first = await session.get(Message, message_id)
            conv = await session.get(Conversation, first.conversation_id)
            rows = await session.scalars(select(Message).where(
                Message.in_reply_to_id == message_id).order_by(Message.id))
            status = "with_staff" if conv.state == STAFF else "bot"
            return Outcome([Reply.from_row(r) for r in rows], status, duplicate=True)

    async def _rewrite_choice(self, conversation_id: int, text: str) -> str:
        """After a clarification, "2" means the second candidate: tell Rasa which entry.

        Any other message leaves the clarification behind: the curation loop counts it abandoned.
        """
        async with self.db.session() as session:
            last = await api.last_bot_reply(session, conversation_id)
        if not last or last.kind != "clarify":
            return text
        options = (last.meta or {}).get("options") or []
        match = _CHOICE.match(text)
        index = int(match.group(1)) - 1 if match else len(options)
        if index < len(options):
            return "/choose_faq" + json.dumps({"faq_id": options[index]["faq_id"]}, ensure_ascii=False)
        if not text.startswith("/choose_faq"):
            try:
                async with self.db.session() as session, session.begin():
                    await curation.mark_abandoned(session, conversation_id)
            except SQLAlchemyError:  # bookkeeping only: the citizen still gets an answer
                log.exception("could not mark the clarification in conversation %s abandoned",
                              conversation_id)
        return text

    async def _answer_without_rasa(self, conv: Conversation, message_id: int,
                                   inbound: Inbound) -> Outcome | None:
        if self.without_rasa is None or inbound.media:
            return None
        found = self.without_rasa(inbound.text)
        if found is None:
            return None
        fields, decision = found
        reply = Reply(kind="answer", **fields)
        state = await self._settle(message_id, ANSWERED, [reply], inbound, conv)
        if state is None:
            return await self._answered_elsewhere(message_id)
        async with self.db.session() as session, session.begin():
            events.record(session, events.ANSWERED_WITHOUT_BOT, conversation_id=conv.id,
                          channel=inbound.channel, qa_id=fields["qa_id"])
            curation.log_query(session, conv.id, inbound.text, decision)
        return Outcome([reply], "with_staff" if state == STAFF else "bot")

    async def _apologise(self, conv: Conversation, message_id: int, inbound: Inbound,
                         reason: str) -> Outcome:
        await api.request_handoff(self.db, conv.id, api.BOT_UNAVAILABLE)
        async with self.db.session() as session, session.begin():
            events.record(session, events.BOT_UNAVAILABLE, conversation_id=conv.id,
                          channel=inbound.channel, reason=reason[:200])
        reply = Reply(APOLOGY, kind="handoff", source_ref="system:bot_unavailable")
        if await self._settle(message_id, QUEUED, [reply], inbound, conv, source="system") is None:
            return await self._answered_elsewhere(message_id)
        return Outcome([reply], "with_staff")

    async def _settle(self, message_id: int, status: str, replies: list[Reply], inbound: Inbound,
                      conv: Conversation, source: str = "bot", bot_back: bool = False) -> str | None:
        """Persist the replies and the inbound message's final status in one transaction.

        Returns the conversation's state afterwards (an action may have handed it off), or None
        when another handler settled the message first (a retry took over a stale message):
        then nothing is written, so no message is answered twice.
        """
        now = utcnow()
        latency_ms = int((now - inbound.received_at).total_seconds() * 1000)
        async with self.db.session() as session, session.begin():
            settled = await session.execute(update(Message).where(
                Message.id == message_id, Message.status == RECEIVED).values(status=status))
            if settled.rowcount != 1:
                return None
            rows = []
            for reply in replies:
                meta = {k: v for k, v in asdict(reply).items()
                        if k in ("options", "case_no", "qa_id") and v}
                rows.append(Message(
                    conversation_id=conv.id, channel=inbound.channel, account=inbound.account,
                    direction="out", source=source, kind=reply.kind, text=reply.text,
                    source_ref=reply.source_ref, meta=meta, in_reply_to_id=message_id,
                    latency_ms=latency_ms, created_at=now))
            session.add_all(rows)
            await session.flush()
            for reply, row in zip(replies, rows):
                reply.id = row.id      # channels hand it out so the citizen can rate the reply
            current = await session.get(Conversation, conv.id, populate_existing=True)
            if bot_back and current.state == STAFF and current.handoff_reason == api.BOT_UNAVAILABLE:
                # Rasa is serving again and no person took the conversation: the bot resumes.
                await api.return_to_bot(session, conv.id)
                current.state = BOT
            if replies and source == "bot":
                events.record(session, events.BOT_REPLIED, at=now, since=inbound.received_at,
                              conversation_id=conv.id, channel=inbound.channel)
            metrics.replied(inbound.channel, source, len(replies), latency_ms / 1000)
            return current.state


def _inbound_of(message: Message, conv: Conversation,
                received_at: datetime | None = None) -> Inbound:
    """A stored citizen message as the channel handed it in (to answer it again)."""
    return Inbound(channel=message.channel, account=message.account, sender=conv.sender,
                   text=message.text, external_id=message.external_id,
                   received_at=received_at or message.created_at,
                   media=(message.meta or {}).get("media"))
