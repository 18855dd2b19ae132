"""Rasa killed (SIGKILL) while citizens write, on the web chat and on WeChat, to the real
service (`govchat run` with the real Rasa): within WeChat's window each gets the apology (and a
person) or, for a question the Q&A base answers outright, that answer; the supervisor starts
Rasa again and the bot answers again — also the citizens it apologised to. Ends with the
database audit.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest
from sqlalchemy import select

from bot.gateway import APOLOGY
from casework.models import Event
from server.db import Database
from tests import e2e
from tests.channels import fake_wechat_api
from tests.channels.test_wechat import WeChat, text_msg
from tests.conftest import reset_schema
from tests.faults.audit import audit
from tests.faults.fakes import WECHAT_WAIT

pytestmark = pytest.mark.e2e
APP_ID, SECRET, TOKEN = "wxfault0000000002", "faultSecret2", "faultToken2"
QUESTIONS = ["你好", "社保卡丢了怎么补办"]     # Rasa down: an apology, an answer from the Q&A base
FROM_QA = "以上答复来自问答库"
PAUSE = 4.0             # between one citizen's messages: under the rate limit of 20 a minute
BACK_WITHIN = 240       # Rasa loads TensorFlow and the model again; a shared machine is slow


async def rasa_process(http: aiohttp.ClientSession, service: e2e.Service) -> dict:
    async with http.get(service.url + "/healthz") as resp:
        return await resp.json()


async def test_rasa_killed_during_traffic(db_url, tmp_path):
    # Rasa loads its model twice here (2–3 minutes): on SQLite only unless asked, to keep the
    # fault suite near 6 minutes. The gateway's path is the same on both databases; the
    # database faults themselves are test_database_away.py's.
    if db_url.startswith("postgresql") and not os.environ.get("FAULTS_RASA_ON_POSTGRESQL"):
        pytest.skip("set FAULTS_RASA_ON_POSTGRESQL=1 to run the Rasa fault on PostgreSQL too")
    await reset_schema(db_url)
    async with fake_wechat_api.serve({APP_ID: SECRET}) as (api, api_base), \
            aiohttp.ClientSession() as http:
        service = e2e.start_service(db_url, tmp_path / "var", extra_env={
            # Rasa's timeout inside WeChat's passive budget: a hung Rasa's apology is passive too.
            "RASA_TIMEOUT": "3", "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": SECRET,
            "WECHAT_TOKEN": TOKEN, "WECHAT_API_BASE": api_base, "WECHAT_REPLY_BUDGET": "4"})
        try:
            await e2e.wait_healthy(service)
            before = (await rasa_process(http, service))["rasa_process"]
            # Rasa's first answers after loading are slow (TensorFlow warms up): not the fault
            # under test, so one citizen warms it up first (audited like the others).
            warm = e2e.Chat(http, service.url, "web-warm-up")
            warmed = [await warm.send(QUESTIONS[i % 2]) for i in range(3)]
            assert warmed[-1]["status"] == "bot", warmed
            wechat = WeChat(http, service.url + "/wechat", TOKEN, APP_ID)
            log: list[dict] = []        # every message: who, when, what came back
            bot_back = asyncio.Event()
            killed_at: list[float] = []

            async def web_citizen(n: int) -> None:
                chat = e2e.Chat(http, service.url, f"web-fault-{n}")
                i = 0
                while not (bot_back.is_set() and i > 0 and log_of(chat.sender)[-1]["bot"]):
                    sent = time.monotonic()
                    data = await chat.send(QUESTIONS[i % 2])
                    log.append({"who": chat.sender, "at": sent, "secs": time.monotonic() - sent,
                                "id": ("webchat", "", f"{chat.sender}-{chat.count}"),
                                "apology": data["replies"][0]["text"] == APOLOGY,
                                "from_qa": FROM_QA in data["replies"][0]["text"],
                                "bot": data["status"] == "bot" and data["replies"][0]["text"] != APOLOGY})
                    i += 1
                    await asyncio.sleep(PAUSE)

            async def wechat_citizen(n: int) -> None:
                user, i = f"oRasaFault{n:04d}", 0
                while not (bot_back.is_set() and i > 0 and log_of(user)[-1]["bot"]):
                    msg_id = f"75{n:04d}{i:06d}"
                    sent = time.monotonic()
                    text = await wechat.send(text_msg(QUESTIONS[i % 2], msg_id=msg_id, user=user))
                    log.append({"who": user, "at": sent, "secs": time.monotonic() - sent,
                                "id": ("wechat", "default", msg_id), "apology": text == APOLOGY,
                                "from_qa": FROM_QA in text,
                                "bot": text not in (APOLOGY, "success")})
                    i += 1
                    await asyncio.sleep(PAUSE)

            def log_of(who: str) -> list[dict]:
                return [entry for entry in log if entry["who"] == who]

            async def kill_then_wait() -> None:
                await asyncio.sleep(PAUSE * 1.5)
                killed_at.append(time.monotonic())
                os.kill(before["pid"], signal.SIGKILL)
                await asyncio.sleep(1)
                await e2e.wait_healthy(service, timeout=BACK_WITHIN)
                bot_back.set()

            citizens = [web_citizen(n) for n in range(3)] + [wechat_citizen(n) for n in range(3)]
            await asyncio.wait_for(asyncio.gather(kill_then_wait(), *citizens), BACK_WITHIN + 60)
            after = (await rasa_process(http, service))["rasa_process"]
        finally:
            e2e.stop_service(service)

    assert after["restarts"] == before["restarts"] + 1 and after["pid"] != before["pid"]
    assert all(entry["secs"] < WECHAT_WAIT for entry in log if entry["id"][0] == "wechat"), \
        "a WeChat message waited past WeChat's window"
    apologised = {entry["who"] for entry in log if entry["apology"]}
    assert len(apologised) == 6, "every citizen writing while Rasa was down got the apology"
    assert all(entry["at"] >= killed_at[0] for entry in log if entry["apology"])
    # Meanwhile the question the Q&A base answers (社保卡) was answered from it, not apologised for.
    from_qa = [entry for entry in log if entry["from_qa"]]
    assert from_qa and all(entry["at"] >= killed_at[0] for entry in from_qa)
    # Served again: the last message of every citizen, each of them apologised to before.
    assert all([e for e in log if e["who"] == who][-1]["bot"] for who in apologised)
    database = Database(db_url)
    try:
        async with database.session() as session:
            handoffs = list(await session.scalars(select(Event).where(
                Event.name == "handoff_requested")))
        found = await audit(database, accepted=[entry["id"] for entry in log] + [
            ("webchat", "", f"web-warm-up-{n}") for n in (1, 2, 3)])
    finally:
        await database.dispose()
    assert {e.detail["reason"] for e in handoffs} == {"bot_unavailable"} and len(handoffs) >= 6
    warm_apologies = sum(reply["replies"][0]["text"] == APOLOGY for reply in warmed)
    assert found.queued == sum(entry["apology"] for entry in log) + warm_apologies
    assert found.inbound == len(log) + 3 and api.sent == []     # every answer was passive
