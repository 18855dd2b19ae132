"""The server killed (SIGKILL) while citizens write on WeChat, then started again: no message
WeChat got an answer for is lost, and WeChat's retries of those in flight are answered once.

`govchat run` without Rasa (RASA_MANAGE=0): a loopback Rasa that echoes, since Rasa is not the
point here, and the fake WeChat API for the replies that go out later as 客服消息.
"""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from server.db import Database
from tests import e2e
from tests.channels import fake_wechat_api
from tests.channels.test_wechat import WeChat
from tests.conftest import reset_schema
from tests.faults.audit import audit
from tests.faults.fakes import SLOW, answer_to, deliver, echo_rasa

pytestmark = pytest.mark.e2e
APP_ID, SECRET, TOKEN = "wxfault0000000001", "faultSecret", "faultToken"
CITIZENS, MESSAGES = 8, 3


def settings(rasa_url: str, api_base: str) -> dict:
    return {"RASA_MANAGE": "0", "RASA_URL": rasa_url, "RASA_TIMEOUT": "3",
            "GOVCHAT_EMBEDDER": "none", "GOVCHAT_LOG_LEVEL": "WARNING",
            "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": SECRET, "WECHAT_TOKEN": TOKEN,
            "WECHAT_API_BASE": api_base, "WECHAT_REPLY_BUDGET": "1",
            "WECHAT_DELIVERY_POLL": "0.2", "WECHAT_DELIVERY_BACKOFF": "0.2"}


def restart_on_same_port(service: e2e.Service, env: dict, monkeypatch) -> e2e.Service:
    # WeChat knows one URL: the new process must listen where the old one did.
    ports = iter([service.port, e2e.free_port()])
    monkeypatch.setattr(e2e, "free_port", lambda: next(ports))
    return e2e.start_service(service.database_url, service.var_dir, extra_env=env)


async def test_a_killed_server_loses_no_answered_message(db_url, tmp_path, monkeypatch):
    await reset_schema(db_url)
    async with echo_rasa(slow=2.0) as (rasa, rasa_url), \
            fake_wechat_api.serve({APP_ID: SECRET}) as (api, api_base), \
            aiohttp.ClientSession() as http:
        env = settings(rasa_url, api_base)
        service = e2e.start_service(db_url, tmp_path / "var", extra_env=env)
        try:
            await e2e.wait_healthy(service, timeout=60)
            wechat = WeChat(http, service.url + "/wechat", TOKEN, APP_ID)

            async def citizen(n: int) -> list[tuple]:
                user, got = f"oFault{n:04d}", []
                for i in range(MESSAGES):
                    # Every other message keeps Rasa busy past the 1 s budget: in flight at the kill.
                    text = f"第{n}位群众的第{i}条{SLOW if (n + i) % 2 else ''}消息"
                    msg_id = f"71{n:04d}{i:04d}"
                    got.append((user, text, msg_id, *await deliver(wechat, http, text, msg_id, user)))
                return got

            traffic = asyncio.gather(*(citizen(n) for n in range(CITIZENS)))
            await asyncio.sleep(1.5)
            service.proc.kill()             # SIGKILL: no shutdown, no waiting for late answers
            service.proc.wait()
            killed_at = time.monotonic()
            service = restart_on_same_port(service, env, monkeypatch)
            await e2e.wait_healthy(service, timeout=60)
            restarted_in = time.monotonic() - killed_at
            results = [r for per_citizen in await traffic for r in per_citizen]

            # What WeChat was told `success` for arrives later as 客服消息, also when the server
            # that said so died before answering (the recovery sweep answers it on restart).
            late = {(user, answer_to(text)) for user, text, _, how, _ in results if how == "success"}
            deadline = time.monotonic() + 60
            while not late <= {(s["touser"], s["content"]) for s in api.sent}:
                assert time.monotonic() < deadline, (late, api.sent, service.log_tail())
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)        # and nothing more follows
        finally:
            e2e.stop_service(service)

    got_answer = [r for r in results if r[3] != "none"]
    assert len(got_answer) == len(results), f"WeChat gave up on {len(results) - len(got_answer)}"
    for user, text, _, how, passive in results:
        if how == "passive":
            assert passive == answer_to(text)
    sent = [(s["touser"], s["content"]) for s in api.sent]
    assert len(sent) == len(set(sent)), "a late reply was sent twice"
    assert not {(u, answer_to(t)) for u, t, _, how, _ in results if how == "passive"} & set(sent), \
        "a message answered passively was sent again as a customer-service message"
    # Rasa is asked again only for a message whose server died while asking it.
    # A citizen has at most two in flight: one past its budget (told `success`) and the next.
    assert max(rasa.calls.values()) <= 2 and sum(rasa.calls.values()) <= len(results) + 2 * CITIZENS
    db = Database(db_url)
    try:
        found = await audit(db, accepted=[("wechat", "default", r[2]) for r in got_answer])
    finally:
        await db.dispose()
    assert found.inbound == len(results) and found.answered == len(results)
    assert found.delivered == len(late)
    print(f"restarted in {restarted_in:.1f} s; {len(late)} late, "
          f"{len(results) - len(late)} passive; Rasa asked twice for "
          f"{sum(1 for c in rasa.calls.values() if c == 2)}")
