"""The WeChat Official Accounts this deployment serves (many units run their own)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
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
