"""Review before publishing: only a published version is served; author ≠ reviewer; rollback; expiry."""
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from admin.models import AuditEntry
from knowledge_base import api as kb
from knowledge_base import workflow as wf

FIELDS = dict(question="居住证怎么办？", similar_questions=["办居住证"], answer="带身份证到派出所。",
              category="户籍与居住证", unit="公安局")


async def served(session, today=None):
    return {qa.entry_id: (qa.version, qa.answer) for qa in await kb.published(session, today)}


async def test_a_draft_is_served_only_after_another_account_approves_it(db):
    async with db.session() as s, s.begin():
        v1 = await wf.save_draft(s, "HJ-9", "author.li", **FIELDS)
        assert await served(s) == {}
        await wf.submit(s, "HJ-9", v1.number, "author.li")
        with pytest.raises(wf.WorkflowError, match="different account"):
            await wf.approve(s, "HJ-9", v1.number, "author.li")
        assert await served(s) == {}
        await wf.approve(s, "HJ-9", v1.number, "reviewer.wang")
        assert await served(s) == {"HJ-9": (1, "带身份证到派出所。")}


async def test_an_edit_replaces_the_served_version_only_when_approved(db):
    async with db.session() as s, s.begin():
        await publish(s, "HJ-9", FIELDS)
        v2 = await wf.save_draft(s, "HJ-9", "author.li", **{**FIELDS, "answer": "可在浙里办在线申请。"})
        await wf.submit(s, "HJ-9", v2.number, "author.li")
        assert await served(s) == {"HJ-9": (1, "带身份证到派出所。")}
        await wf.approve(s, "HJ-9", v2.number, "reviewer.wang")
        assert await served(s) == {"HJ-9": (2, "可在浙里办在线申请。")}
        assert [v.status for v in await wf.versions(s, "HJ-9")] == ["retired", "published"]


async def test_a_rejection_goes_back_to_the_author_with_a_comment(db):
    async with db.session() as s, s.begin():
        v1 = await wf.save_draft(s, "HJ-9", "author.li", **FIELDS)
        await wf.submit(s, "HJ-9", 1, "author.li")
        with pytest.raises(wf.WorkflowError, match="needs a comment"):
            await wf.reject(s, "HJ-9", 1, "reviewer.wang", "  ")
        await wf.reject(s, "HJ-9", 1, "reviewer.wang", "材料清单不全")
        assert (v1.status, v1.review_comment) == ("draft", "材料清单不全")
        with pytest.raises(wf.WorkflowError, match="not in review"):
            await wf.approve(s, "HJ-9", 1, "reviewer.wang")
        audit = await s.scalar(select(AuditEntry).where(AuditEntry.action == "kb.reject"))
        assert (audit.actor, audit.target, audit.detail) == ("reviewer.wang", "HJ-9@1", {"comment": "材料清单不全"})


async def test_rollback_serves_earlier_content_as_a_new_version(db):
    async with db.session() as s, s.begin():
        await publish(s, "HJ-9", FIELDS)
        await publish(s, "HJ-9", {**FIELDS, "answer": "错误的新答案"})
        restored = await wf.rollback(s, "HJ-9", 1, "admin")
        assert restored.number == 3
        assert await served(s) == {"HJ-9": (3, "带身份证到派出所。")}
        draft = await wf.save_draft(s, "HJ-9", "author.li", **FIELDS)
        with pytest.raises(wf.WorkflowError, match="never published"):
            await wf.rollback(s, "HJ-9", draft.number, "admin")


async def test_retired_and_expired_entries_are_not_served(db):
    today = date(2026, 11, 26)
    async with db.session() as s, s.begin():
        await publish(s, "HJ-9", {**FIELDS, "valid_to": today - timedelta(days=1)})
        await publish(s, "HJ-8", {**FIELDS, "valid_from": today + timedelta(days=1)})
        await publish(s, "HJ-7", FIELDS)
        assert set(await served(s, today)) == {"HJ-7"}
        assert set(await served(s, today + timedelta(days=1))) == {"HJ-7", "HJ-8"}
        await wf.retire(s, "HJ-7", "admin")
        assert set(await served(s, today)) == set()
        with pytest.raises(wf.WorkflowError, match="not published"):
            await wf.retire(s, "HJ-7", "admin")


async def publish(session, external_id, fields):
    version = await wf.save_draft(session, external_id, "author.li", **fields)
    await wf.submit(session, external_id, version.number, "author.li")
    return await wf.approve(session, external_id, version.number, "reviewer.wang")
