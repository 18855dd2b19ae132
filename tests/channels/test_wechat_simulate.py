"""`govchat wechat simulate`: an operator's terminal chat that the server takes for WeChat."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from channels.wechat.accounts import Account
from channels.wechat.simulate import Simulator
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
