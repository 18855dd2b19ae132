"""The conversation log: one conversation per citizen per channel, every message in and out.

The gateway owns these tables; channels and consoles reach them through `bot.api`.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime, utcnow

# Conversation states: who answers the citizen next.
BOT = "bot"
STAFF = "staff"          # handed off: the bot stays silent until staff return it


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "account", "sender"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64), default="")
    sender: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default=BOT)
    handoff_reason: Mapped[str | None] = mapped_column(String(32))
    handoff_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The staff member answering it (one at a time, claimed in bot/handoff.py), and since when.
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# Inbound message status: persisted first as RECEIVED, then settled exactly once.
RECEIVED = "received"
ANSWERED = "answered"
QUEUED = "queued_for_staff"
UNSETTLED = sql_text(f"status = '{RECEIVED}'")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A channel's own message id (WeChat MsgId, the web chat's message_id) arrives once.
        UniqueConstraint("channel", "account", "external_id"),
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        # The recovery sweep (every 10 s) looks for messages left `received`: a handful at most,
        # found without reading the whole table. The late-reply sweep reads the last 48 hours.
        Index("ix_messages_unsettled", "created_at",
              sqlite_where=UNSETTLED, postgresql_where=UNSETTLED),
        Index("ix_messages_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64), default="")
    external_id: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(3))          # "in" or "out"
    source: Mapped[str] = mapped_column(String(16))            # citizen, bot, staff, system
    kind: Mapped[str | None] = mapped_column(String(16))       # reply kind, for "out"
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str | None] = mapped_column(String(24))     # inbound only
    # What a reply came from: "qa:SB-001@3" (entry and version), "case:ZJ…", "rasa:utter_greet".
    source_ref: Mapped[str | None] = mapped_column(String(128))
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    in_reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConversationNote(Base):
    """Staff's internal note on a conversation: read by colleagues, never sent to the citizen."""

    __tablename__ = "conversation_notes"
    __table_args__ = (Index("ix_conversation_notes_conversation", "conversation_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
