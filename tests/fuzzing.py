"""Hypothesis settings for the fuzz tests: modest in `make test`, many more examples with
HYPOTHESIS_PROFILE=long (docs/security.md)."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import func, select

from server.db import Database
from tests.conftest import _empty

# Examples per test = the count a test asks for × this factor.
SCALE = {"ci": 1, "long": 50}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in SCALE:
    raise RuntimeError(f"HYPOTHESIS_PROFILE must be one of {', '.join(SCALE)}, not {PROFILE!r}")


def fuzz(examples: int) -> settings:
    # No deadline: a request through the server and the database varies in time, which is not
    # what is tested. The fixtures are per module on purpose (one server for all examples).
    return settings(max_examples=examples * SCALE[PROFILE], deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# Hostile text a citizen or a staff member might type or paste: it must be stored and shown
# exactly as typed (escaped on pages), never run as SQL or markup.
PAYLOADS = [
    "' OR '1'='1", "'; DROP TABLE messages; --", "1; SELECT pg_sleep(3)--", '" OR 1=1 --',
    "Robert'); DELETE FROM users;--", "%' AND 1=0 UNION SELECT username, password_hash FROM users--",
    "<script>alert(1)</script>", '<img src=x onerror="alert(1)">', '"><svg onload=alert(1)>',
    "javascript:alert(1)", "{{7*7}} ${7*7} {% raw %}", "&lt;b&gt; &amp; &#x3C;",
    "\u202e反转的文字\u202c", "零宽\u200b\u200d\ufeff字符", "控制\x01\x07\x1b[31m字符\x7f",
    "表情 😀👍🏽👨\u200d👩\u200d👧 𠮷", "社保 English Русский العربية 한국어 ｆｕｌｌ",
    "tab\there\r\nnewline", "%00 \\x00 \\u0000",
]


async def table_counts(db, *models) -> dict[str, int]:
    async with db.session() as session:
        return {m.__tablename__: await session.scalar(select(func.count()).select_from(m))
                for m in models}


@pytest.fixture(scope="module")
async def fuzz_db(db_url):
    """One empty database for a whole fuzzing module: examples do not pay for a fresh one."""
    database = Database(db_url)
    await _empty(database)
    yield database
    await _empty(database)
    await database.dispose()
