"""Review before publishing (先审后发, art. 18–20): every change to an entry is a new version.

draft → in_review → published → retired. The reviewer must be another account than the author;
a rejection goes back to draft with a comment; publishing retires the version served before;
a rollback republishes an earlier version's content as a new version. Each function runs in
the caller's transaction and writes one audit row.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin.api import audit
from knowledge_base.models import DRAFT, IN_REVIEW, PUBLISHED, RETIRED, Entry, Version
from server.db import utcnow

EDITABLE = ("question", "similar_questions", "answer", "category", "unit", "valid_from", "valid_to",
            "tags", "notice_until")


class WorkflowError(ValueError):
    """A workflow step that is not allowed, in plain words for staff."""


async def _entry(session: AsyncSession, external_id: str) -> Entry:
    entry = await session.scalar(select(Entry).where(Entry.external_id == external_id))
    if entry is None:
        raise WorkflowError(f"no Q&A entry {external_id}")
    return entry


async def _version(session: AsyncSession, external_id: str, number: int) -> Version:
    entry = await _entry(session, external_id)
    version = await session.scalar(
        select(Version).where(Version.entry_id == entry.id, Version.number == number))
    if version is None:
        raise WorkflowError(f"{external_id} has no version {number}")
    return version


async def _in_review(session: AsyncSession, external_id: str, number: int) -> Version:
    version = await _version(session, external_id, number)
    if version.status != IN_REVIEW:
        raise WorkflowError(f"{external_id}@{number} is {version.status}, not in review")
    return version


async def versions(session: AsyncSession, external_id: str) -> list[Version]:
    entry = await _entry(session, external_id)
    return list(await session.scalars(
        select(Version).where(Version.entry_id == entry.id).order_by(Version.number)))


async def new_version(session: AsyncSession, external_id: str, author: str, **fields) -> Version:
    """A new draft version of the entry (the entry is created on its first version). No audit
    row: `save_draft` and bulk import record it their own way."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise WorkflowError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if not (fields.get("question") or "").strip() or not (fields.get("answer") or "").strip():
        raise WorkflowError("a draft needs a question and an answer")
    entry = await session.scalar(select(Entry).where(Entry.external_id == external_id))
    if entry is None:
        entry = Entry(external_id=external_id)
        session.add(entry)
        await session.flush()
    last = await session.scalar(select(func.max(Version.number)).where(Version.entry_id == entry.id))
    version = Version(entry_id=entry.id, number=(last or 0) + 1, author=author, status=DRAFT,
                      similar_questions=list(fields.pop("similar_questions", []) or []),
                      tags=list(fields.pop("tags", []) or []), **fields)
    session.add(version)
    await session.flush()
    return version


async def save_draft(session: AsyncSession, external_id: str, author: str, **fields) -> Version:
    version = await new_version(session, external_id, author, **fields)
    audit(session, author, "kb.draft", f"{external_id}@{version.number}")
    return version


async def submit(session: AsyncSession, external_id: str, number: int, actor: str) -> Version:
    version = await _version(session, external_id, number)
    if version.status != DRAFT:
        raise WorkflowError(f"{external_id}@{number} is {version.status}, only a draft can be submitted")
    version.status = IN_REVIEW
    audit(session, actor, "kb.submit", f"{external_id}@{number}")
    return version


async def approve(session: AsyncSession, external_id: str, number: int, reviewer: str) -> Version:
    """Publish a version in review; the one served before it is retired."""
    version = await _in_review(session, external_id, number)
    if reviewer == version.author:
        raise WorkflowError("the reviewer must be a different account from the author")
    await publish(session, version, reviewer)
    audit(session, reviewer, "kb.approve", f"{external_id}@{number}")
    return version


async def reject(session: AsyncSession, external_id: str, number: int, reviewer: str,
                 comment: str) -> Version:
    version = await _in_review(session, external_id, number)
    if not comment.strip():
        raise WorkflowError("a rejection needs a comment for the author")
    version.status = DRAFT
    version.review_comment = comment.strip()
    audit(session, reviewer, "kb.reject", f"{external_id}@{number}", comment=comment.strip())
    return version


async def retire(session: AsyncSession, external_id: str, actor: str) -> None:
    """Stop serving the entry."""
    entry = await _entry(session, external_id)
    served = await session.scalar(
        select(Version).where(Version.entry_id == entry.id, Version.status == PUBLISHED))
    if served is None:
        raise WorkflowError(f"{external_id} is not published")
    served.status = RETIRED
    audit(session, actor, "kb.retire", f"{external_id}@{served.number}")


async def rollback(session: AsyncSession, external_id: str, to_number: int, actor: str) -> Version:
    """Serve an earlier version's content again, as a new published version.

    The content was reviewed when it was first published; the rollback is recorded by who did it.
    """
    old = await _version(session, external_id, to_number)
    if old.reviewer is None:
        raise WorkflowError(f"{external_id}@{to_number} was never published; only reviewed content can be restored")
    last = await session.scalar(select(func.max(Version.number)).where(Version.entry_id == old.entry_id))
    version = Version(entry_id=old.entry_id, number=last + 1, author=actor, status=IN_REVIEW,
                      **{f: getattr(old, f) for f in EDITABLE})
    session.add(version)
    await session.flush()
    await publish(session, version, old.reviewer)
    audit(session, actor, "kb.rollback", f"{external_id}@{version.number}", restored=to_number)
    return version


async def publish(session: AsyncSession, version: Version, reviewer: str) -> None:
    """Serve this version from now on, approved by `reviewer` (checks are the caller's)."""
    for served in await session.scalars(select(Version).where(
            Version.entry_id == version.entry_id, Version.status == PUBLISHED)):
        served.status = RETIRED
    await session.flush()   # the one-published-per-entry index sees the retirement first
    version.status = PUBLISHED
    version.reviewer = reviewer
    version.published_at = utcnow()
    await session.flush()
