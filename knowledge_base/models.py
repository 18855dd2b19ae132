"""The Q&A base: an entry is a stable external id; every change makes a new version.

Only a published version is ever served (workflow.py holds the review steps). The curation
loop writes `Query` (what citizens asked and how it ended) and `Feedback` (thumbs up/down).
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime, utcnow

DRAFT = "draft"
IN_REVIEW = "in_review"
PUBLISHED = "published"
RETIRED = "retired"


class Entry(Base):
    __tablename__ = "kb_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Version(Base):
    __tablename__ = "kb_versions"
    __table_args__ = (
        UniqueConstraint("entry_id", "number"),
        # At most one published version per entry: that is the one citizens are served.
        Index(
            "uq_kb_versions_one_published", "entry_id", unique=True,
            sqlite_where=text("status = 'published'"),
            postgresql_where=text("status = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("kb_entries.id"))
    number: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    similar_questions: Mapped[list] = mapped_column(JSON, default=list)
    answer: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64), default="")
    unit: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    author: Mapped[str | None] = mapped_column(String(64))
    reviewer: Mapped[str | None] = mapped_column(String(64))
    review_comment: Mapped[str | None] = mapped_column(Text)     # why a reviewer sent it back
    tags: Mapped[list] = mapped_column(JSON, default=list)
    # Art. 15 urgent notice (rumour rebuttal, emergency instruction): while published and
    # before this moment it wins for matching questions and is offered in the welcome.
    notice_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# How a searched consultation ended, for hit counts and the gaps report.
ANSWERED = "answered"        # the bot answered with an entry outright
CLARIFIED = "clarified"      # the bot offered candidates; waiting for the citizen's choice
CHOSEN = "chosen"            # the citizen picked a candidate (entry_id is the one chosen)
ABANDONED = "abandoned"      # the citizen moved on without picking
UNANSWERED = "unanswered"    # nothing matched well enough


class Query(Base):
    """One consultation the bot searched the base for, and how it ended."""

    __tablename__ = "kb_queries"
    __table_args__ = (
        Index("ix_kb_queries_outcome_at", "outcome", "at"),
        Index("ix_kb_queries_entry_at", "entry_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    text: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    entry_id: Mapped[str | None] = mapped_column(String(64))       # external id served
    version_id: Mapped[int | None] = mapped_column(ForeignKey("kb_versions.id"))
    score: Mapped[float | None] = mapped_column(Float)


class Feedback(Base):
    """A citizen's thumbs up or down on one answer, against the version that answered."""

    __tablename__ = "kb_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("kb_versions.id"))
    entry_id: Mapped[str] = mapped_column(String(64))
    helpful: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
