"""bench/load.py's core, briefly, against the real service on SQLite: so the benchmark cannot rot.

Ten seconds of WeChat traffic at a low rate, then the database audit must find every message
stored once and answered (passively or through the customer-service API), and the audit
itself must notice a message that was never stored and a reply the API received twice.
"""
from __future__ import annotations

import pytest

from bench.load import PASSIVE, measure, service
from bench.load_audit import audit

# The service is started here, not shared with tests/test_service_e2e.py: its fixtures are
# module-scoped and its WeChat account differs.
pytestmark = pytest.mark.e2e


async def test_a_short_load_run_loses_and_duplicates_nothing(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'load.db'}"
    async with service(url, tmp_path / "var") as (svc, fake):
        row = await measure(svc.url, fake, url, rate=2, duration=10)
    assert len(row.sent) >= 8, row.sent
    assert [s for s in row.sent if s.error or s.answer is None] == []
    assert (row.audit.lost, row.audit.duplicated, row.audit.late_uncovered) == ([], [], [])
    assert set(row.cells()[13:16]) == {"0"}

    # The audit is not blind: a MsgId WeChat got an answer for but the database lacks, and a
    # customer-service message the API received twice.
    sent = row.sent[0]
    answers = {s.msg_id: (s.openid, s.answer) for s in row.sent}
    answers["1999999999999999999"] = (sent.openid, PASSIVE)
    extra = [{"touser": sent.openid, "content": "again", "token": ""}]
    found = await audit(url, answers, fake.sent + extra)
    assert found.lost == ["1999999999999999999: answered passive but never stored"]
    assert any(sent.openid in d for d in found.duplicated)
