"""`govchat wechat simulate`: an operator's terminal chat that the server takes for WeChat."""
from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import aiohttp

from channels.wechat.accounts import Account
from channels.wechat.simulate import LATE_NOTE, Simulator, follow, late_line, new_msg_id
from tests.channels import fake_wechat_api
from tests.channels.test_wechat import AES_KEY, APP_ID, SAFE_APP_ID, SAFE_TOKEN, TOKEN, serve, stored

GOVCHAT = str(Path(sys.executable).parent / "govchat")
ANSWER = "携带身份证到派出所申请。"


async def test_plaintext_and_safe_mode_messages_get_the_bots_answer(db, tmp_path):
    async with serve(db, tmp_path) as (http, _rasa), aiohttp.ClientSession() as session:
        plain = Simulator(session, str(http.make_url("/wechat")), Account("default", APP_ID, TOKEN), "oSim1")
        assert await plain.send("居住证怎么办理") == ANSWER
        safe_account = Account("safe-unit", SAFE_APP_ID, SAFE_TOKEN, encoding_aes_key=AES_KEY, mode="safe")
        safe = Simulator(session, str(http.make_url("/wechat/safe-unit")), safe_account, "oSim2")
        assert await safe.send("居住证怎么办理") == ANSWER


async def test_a_reply_not_ready_in_time_shows_as_success(db, tmp_path):
    async with serve(db, tmp_path, budget=0.2) as (http, rasa), aiohttp.ClientSession() as session:
        rasa.delay = 1.0
        sim = Simulator(session, str(http.make_url("/wechat")), Account("default", APP_ID, TOKEN), "oSim3")
        assert await sim.send("居住证怎么办理") is None
        for _ in range(50):      # the late answer is stored (and queued for delivery) meanwhile
            if len(await stored(db)) == 2:
                break
            await asyncio.sleep(0.1)
        assert (await stored(db))[1][3:] == ("out", ANSWER)


async def test_the_command_chats_line_by_line_and_says_what_went_wrong(db, tmp_path):
    async with serve(db, tmp_path) as (http, _rasa):
        base = str(http.make_url("/")).rstrip("/")
        proc = await asyncio.create_subprocess_exec(
            GOVCHAT, "wechat", "simulate", "--account", "safe-unit", "--url", base,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url, "GOVCHAT_VAR_DIR": str(tmp_path)})
        out, err = await asyncio.wait_for(proc.communicate("居住证怎么办理\n\n".encode()), 60)
        assert proc.returncode == 0, err.decode()
        assert f"公众号：{ANSWER}" in out.decode()

        proc = await asyncio.create_subprocess_exec(
            GOVCHAT, "wechat", "simulate", "--account", "nobody", "--url", base,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url, "GOVCHAT_VAR_DIR": str(tmp_path)})
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2 and "no WeChat account named 'nobody'" in err.decode()


async def test_the_server_stops_promptly_while_a_late_reply_is_being_queued(db, tmp_path):
    # Regression: the delivery worker once lost its cancellation when a reply was queued during
    # shutdown (wait_for on Python 3.11) and the server never stopped.
    async with asyncio.timeout(30):
        async with serve(db, tmp_path, budget=0.2) as (http, rasa), aiohttp.ClientSession() as session:
            rasa.delay = 1.0
            sim = Simulator(session, str(http.make_url("/wechat")), Account("default", APP_ID, TOKEN), "oSim4")
            assert await sim.send("居住证怎么办理") is None


# --- late replies: what the customer-service API delivers after `success` --------------------

@contextlib.asynccontextmanager
async def late_server(db, tmp_path, **settings):
    """The server with a budget the fake Rasa (0.6 s) misses, delivering to the fake WeChat API."""
    async with fake_wechat_api.serve({APP_ID: "s1", SAFE_APP_ID: "s2"}) as (api, base):
        settings = {"wechat_delivery_poll": 0.05, "wechat_delivery_backoff": 0.05, **settings}
        async with serve(db, tmp_path, budget=0.2, wechat_api_base=base, **settings) as (http, rasa):
            rasa.delay = 0.6
            yield http, api


async def late_lines(db, sim: Simulator, text: str, wait: float) -> list[str]:
    msg_id = new_msg_id()
    assert await sim.send(text, msg_id) is None
    return [late_line(reply) async for reply in follow(db, sim.account.name, msg_id, wait, poll=0.05)]


async def test_a_late_reply_is_shown_once_delivered(db, tmp_path):
    async with late_server(db, tmp_path) as (http, api), aiohttp.ClientSession() as session:
        sim = Simulator(session, str(http.make_url("/wechat")), Account("default", APP_ID, TOKEN), "oSim5")
        started = time.monotonic()
        assert await late_lines(db, sim, "护照", wait=20) == [
            "公众号（客服消息，sent）：第一条。", "公众号（客服消息，sent）：第二条。"]
        assert time.monotonic() - started < 10     # back as soon as both settled, not after 20 s
        assert [s["content"] for s in api.sent] == ["第一条。", "第二条。"]


async def test_a_late_reply_wechat_refuses_is_shown_with_the_reason(db, tmp_path):
    async with late_server(db, tmp_path) as (http, api), aiohttp.ClientSession() as session:
        api.errcode = 40003     # what the real API says to the simulator's made-up openid
        sim = Simulator(session, str(http.make_url("/wechat")), Account("default", APP_ID, TOKEN), "oSim6")
        assert await late_lines(db, sim, "居住证怎么办理", wait=20) == [
            f"公众号（客服消息，not delivered: invalid openid）：{ANSWER}"]


async def test_a_late_reply_still_pending_when_the_wait_ends_is_shown_as_pending(db, tmp_path):
    async with late_server(db, tmp_path, wechat_delivery_backoff=60) as (http, api), \
            aiohttp.ClientSession() as session:
        api.http_500 = 100
        sim = Simulator(session, str(http.make_url("/wechat")), Account("default", APP_ID, TOKEN), "oSim7")
        started = time.monotonic()
        assert await late_lines(db, sim, "居住证怎么办理", wait=2.5) == [
            f"公众号（客服消息，pending, last try: HTTP 500）：{ANSWER}"]
        assert 2.5 <= time.monotonic() - started < 6


async def test_the_command_shows_late_replies_and_says_the_openid_is_simulated(db, tmp_path):
    async with late_server(db, tmp_path) as (http, api):
        base = str(http.make_url("/")).rstrip("/")
        proc = await asyncio.create_subprocess_exec(
            GOVCHAT, "wechat", "simulate", "--account", "safe-unit", "--url", base, "--wait", "20",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url, "GOVCHAT_VAR_DIR": str(tmp_path)})
        out, err = await asyncio.wait_for(proc.communicate("居住证怎么办理\n".encode()), 60)
        assert proc.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert lines[1:] == ["（服务器回复 success：答复未能在 5 秒内就绪，将通过客服消息另行送达）",
                             LATE_NOTE, f"公众号（客服消息，sent）：{ANSWER}"]
        assert [s["touser"] for s in api.sent] == ["oSimulatedCitizen001"]
