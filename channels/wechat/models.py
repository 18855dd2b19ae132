"""The WeChat Official Accounts this deployment serves, their access tokens, and the delivery queue."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime, utcnow

PLAINTEXT, COMPATIBLE, SAFE = "plaintext", "compatible", "safe"   # 明文 / 兼容 / 安全模式
MODES = (PLAINTEXT, COMPATIBLE, SAFE)


class WechatAccount(Base):
    __tablename__ = "wechat_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)    # the {account} in /wechat/{account}
    app_id: Mapped[str] = mapped_column(String(64))
    app_secret: Mapped[str] = mapped_column(String(128))
    token: Mapped[str] = mapped_column(String(64))
    encoding_aes_key: Mapped[str | None] = mapped_column(String(43))
    mode: Mapped[str] = mapped_column(String(16), default=PLAINTEXT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Delivery status: pending → sending (claimed by one worker) → delivered | undeliverable;
# a failed try goes back to pending with a later next_attempt_at.
PENDING, SENDING, DELIVERED, UNDELIVERABLE = "pending", "sending", "delivered", "undeliverable"


class Delivery(Base):
    """One stored reply to send through the customer-service API (客服消息)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_deliveries_recipient", "account", "to_user", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The out message to deliver; unique, so a reply is never queued twice.
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    account: Mapped[str] = mapped_column(String(64))
    to_user: Mapped[str] = mapped_column(String(128))          # the citizen's openid
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Parts of a split text already sent, so a retry does not repeat them.
    parts_sent: Mapped[int] = mapped_column(Integer, default=0)
    # When a pending delivery is due; while sending, when its claim lapses (the worker died).
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WechatToken(Base):
    """The access token per app id, shared by every instance (each fetch replaces the last)."""

    __tablename__ = "wechat_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str | None] = mapped_column(String(512))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
