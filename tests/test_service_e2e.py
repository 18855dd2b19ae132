"""The whole service as a citizen meets it: `govchat run` with real Rasa, on SQLite and PostgreSQL.

Tests in this module share one running service and run in file order; the last one stops it
with Ctrl-C.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.models import Message
from casework.api import STATUS_NAMES
from casework.models import Case, CaseAttachment, Event
from knowledge_base.api import DEMO_QA, read_table
from server.db import Database
from tests.channels import fake_wechat_api
from tests.channels.test_wechat import WeChat, text_msg
from tests.conftest import reset_schema
from tests.e2e import CHROMIUM, CHROMIUM_ARGS, Chat, pid_alive, start_service, stop_service, wait_healthy

pytestmark = pytest.mark.e2e
CASE_NO = re.compile(r"ZJ\d{8}-\d{4}")


# The default WeChat account, in safe mode; its API is a loopback fake that records 客服消息.
WX_APP_ID, WX_SECRET, WX_TOKEN = "wxe2e000000000001", "e2eSecret", "e2eToken"
WX_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture(scope="module")
async def wechat_api():
    async with fake_wechat_api.serve({WX_APP_ID: WX_SECRET}) as pair:
        yield pair


@pytest.fixture(scope="module")
async def service(db_url, tmp_path_factory, wechat_api):
    await reset_schema(db_url)
    svc = start_service(db_url, tmp_path_factory.mktemp("var"), extra_env={
        "WECHAT_APP_ID": WX_APP_ID, "WECHAT_APP_SECRET": WX_SECRET, "WECHAT_TOKEN": WX_TOKEN,
        "WECHAT_ENCODING_AES_KEY": WX_AES_KEY, "WECHAT_MODE": "safe",
        "WECHAT_API_BASE": wechat_api[1]})
    try:
        svc.health = await wait_healthy(svc)
        yield svc
    finally:
        if svc.proc.poll() is None:
            stop_service(svc)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def database(service):
    db = Database(service.database_url)
    yield db
    await db.dispose()


def citizen(http, service) -> Chat:
    return Chat(http, service.url, f"web-{uuid.uuid4().hex[:16]}")


async def test_health_reports_every_part_and_serves_ipv6(service, http):
    assert service.health["database"] == "ok"
    assert service.health["rasa"] == "ok"
    assert service.health["knowledge_base"]["entries"] >= 150
    async with http.get(f"http://[::1]:{service.port}/healthz") as resp:
        assert resp.status == 200


async def test_chat_page_is_served(service, http):
    async with http.get(service.url + "/") as resp:
        page = await resp.text()
    assert resp.status == 200 and 'lang="zh-CN"' in page and "chat-input" in page


async def test_greeting(service, http):
    data = await citizen(http, service).send("你好")
    assert data["status"] == "bot"
    assert "您好" in data["replies"][0]["text"]


async def test_consultation_is_answered_from_the_published_qa_base(service, http, database):
    chat = citizen(http, service)
    data = await chat.send("社保卡丢了怎么补办")
    reply = data["replies"][0]
    assert reply["kind"] == "answer" and reply["qa_id"] == "SB-001"
    async with database.session() as session:
        inbound = await session.scalar(select(Message).where(Message.external_id == f"{chat.sender}-1"))
        out = (await session.scalars(select(Message).where(Message.in_reply_to_id == inbound.id))).all()
    assert inbound.status == "answered"
    assert [m.source_ref for m in out] == ["qa:SB-001@1"]
    assert out[0].latency_ms is not None and out[0].latency_ms >= 0


async def test_an_ambiguous_question_is_clarified_and_the_citizen_picks_by_number(service, http):
    chat = citizen(http, service)
    clarify = (await chat.send("居住证"))["replies"][0]
    assert clarify["kind"] == "clarify" and len(clarify["options"]) >= 2
    picked = (await chat.send("2"))["replies"][0]
    questions = {row.id: row.question for row in read_table(DEMO_QA)}
    assert picked["kind"] == "answer"
    assert questions[picked["qa_id"]] == clarify["options"][1]["title"]


async def test_complaint_is_taken_and_can_be_followed(service, http, database):
    chat = citizen(http, service)
    where = await chat.send("我要投诉楼下饭店油烟太大")
    assert where["replies"][-1]["kind"] == "form" and "哪里" in where["replies"][-1]["text"]
    when = await chat.send("南湖区人民路88号")
    assert "什么时候" in when["replies"][-1]["text"]
    contact = await chat.send("每天晚上六点到十点")
    assert "手机号" in contact["replies"][-1]["text"] and "匿名" not in contact["replies"][-1]["text"]
    summary = (await chat.send("13812345678"))["replies"][-1]["text"]
    # Read back for confirmation, the phone masked (art. 27).
    assert "楼下饭店油烟太大" in summary and "南湖区人民路88号" in summary
    assert "138****5678" in summary and "13812345678" not in summary
    # A correction: the place is asked again, then everything is read back again.
    again = await chat.send("地址写错了")
    assert "哪里" in again["replies"][-1]["text"]
    summary = (await chat.send("南湖区人民路86号"))["replies"][-1]["text"]
    assert "人民路86号" in summary and "每天晚上六点到十点" in summary
    done = await chat.send("是的")
    case_no = done["replies"][-1]["case_no"]
    assert done["replies"][-1]["kind"] == "case" and CASE_NO.fullmatch(case_no)
    async with database.session() as session:
        case = await session.scalar(select(Case).where(Case.number == case_no))
    assert case.description == "楼下饭店油烟太大" and case.case_type == "complaint"
    assert (case.address, case.occurred, case.phone) == ("南湖区人民路86号", "每天晚上六点到十点", "13812345678")

    progress = await chat.send(f"帮我查一下{case_no}的进度")
    # Routed at once when routing is confident (已派单), else on the dispatcher's desk (已受理…).
    assert case_no in progress["replies"][0]["text"]
    assert f"当前状态：{STATUS_NAMES[case.status]}" in progress["replies"][0]["text"]

    # "Tell us once": the same complaint again the same day is linked, not a second case.
    await chat.send("我要投诉楼下饭店油烟太大")
    for answer in ("南湖区人民路86号", "每天晚上", "不留"):
        await chat.send(answer)
    linked = (await chat.send("确认"))["replies"][-1]
    assert linked["case_no"] == case_no and "不再重复登记" in linked["text"]


async def test_a_question_mid_form_is_answered_and_the_form_goes_on(service, http, database):
    chat = citizen(http, service)
    await chat.send("我要举报有人在河边偷倒建筑垃圾")
    asked = await chat.send("请问社保卡丢了怎么补办？")
    kinds = [r["kind"] for r in asked["replies"]]
    assert kinds[0] == "answer" and kinds[-1] == "form" and "哪里" in asked["replies"][-1]["text"]
    await chat.send("秀洲区新城街道河边")
    contact = await chat.send("不清楚")
    assert "匿名" in contact["replies"][-1]["text"]          # a report may be anonymous
    summary = (await chat.send("不用了"))["replies"][-1]["text"]   # no to the phone, not to the case
    assert "不详" in summary and "不留电话" in summary
    cancelled = await chat.send("算了，不举报了")
    assert "取消" in cancelled["replies"][-1]["text"]
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Case).where(
            Case.description.like("%建筑垃圾%"))) == 0


async def test_complaint_can_be_described_then_cancelled(service, http, database):
    chat = citizen(http, service)
    ask = await chat.send("我要投诉")
    assert ask["replies"][-1]["kind"] == "form" and "描述" in ask["replies"][-1]["text"]
    where = await chat.send("小区门口的路灯坏了一个多月了一直没人来修")
    assert "哪里" in where["replies"][-1]["text"]
    cancelled = await chat.send("取消")
    assert "取消" in cancelled["replies"][-1]["text"]
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Case).where(
            Case.description.like("%路灯坏了%"))) == 0


async def test_a_wechat_citizen_consults_complains_with_a_photo_and_follows_the_case(
        service, http, database, wechat_api):
    """Signed and encrypted as WeChat does (wechatpy); a reply not ready within the passive
    window arrives as a customer-service message on the fake API instead — either counts."""
    api, _ = wechat_api
    wx = WeChat(http, service.url + "/wechat", WX_TOKEN, WX_APP_ID, WX_AES_KEY)
    openid = f"oE2E{uuid.uuid4().hex[:12]}"
    count = 0

    async def say(**fields) -> str:
        nonlocal count
        count += 1
        msg = {**text_msg("", msg_id=f"{openid}-{count}", user=openid), **fields}
        if "Content" not in fields:
            del msg["Content"]
        sent_before = len([m for m in api.sent if m["touser"] == openid])
        reply = await wx.send(msg, encrypt=True)
        if reply != "success":
            return reply
        for _ in range(300):        # delivered later through the 客服消息 API
            late = [m["content"] for m in api.sent if m["touser"] == openid][sent_before:]
            if late:
                return "\n\n".join(late)
            await asyncio.sleep(0.1)
        raise AssertionError(f"no reply to {fields}")

    answer = await say(MsgType="text", Content="社保卡丢了怎么补办")
    assert "社保卡" in answer and "抱歉" not in answer
    # A photo first, then the complaint: the photo is the case's evidence.
    photo = await say(MsgType="image", PicUrl="http://mmbiz.qpic.cn/e2e.jpg", MediaId="MEDIA-E2E-1")
    assert "图片" in photo
    assert "哪里" in await say(MsgType="text", Content="我要投诉楼下饭店油烟太大")
    # A WeChat location answers "where".
    when = await say(MsgType="location", Location_X="30.7522", Location_Y="120.7555", Scale="15",
                     Label="嘉禾市南湖区人民路88号")
    assert "什么时候" in when
    assert "手机号" in await say(MsgType="text", Content="昨晚十点以后")
    summary = await say(MsgType="text", Content="不留")
    assert "图片1张" in summary and "人民路88号" in summary
    done = await say(MsgType="text", Content="是")
    case_no = CASE_NO.search(done).group(0)
    async with database.session() as session:
        case = await session.scalar(select(Case).where(Case.number == case_no))
        files = (await session.scalars(select(CaseAttachment).where(
            CaseAttachment.case_id == case.id))).all()
    assert case.address == "嘉禾市南湖区人民路88号" and case.latitude == pytest.approx(30.7522)
    assert case.phone is None and case.occurred == "昨晚十点以后"
    assert [(f.kind, f.media_id) for f in files if f.kind == "image"] == [("image", "MEDIA-E2E-1")]

    progress = await say(MsgType="text", Content=f"查一下{case_no}的进度")
    assert case_no in progress and f"当前状态：{STATUS_NAMES[case.status]}" in progress


def staff(service, *args: str) -> str:
    """A staff member working a case from the command line, on the service's database."""
    result = subprocess.run([str(Path(sys.executable).parent / "govchat"), "cases", *args],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, DATABASE_URL=service.database_url,
                                     GOVCHAT_VAR_DIR=str(service.var_dir)))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_the_12345_loop_from_complaint_to_rating(service, http, database):
    """Submitted with a correction → routed with a deadline → returned as misrouted →
    reassigned → accepted → replied → the citizen sees the reply on the chat and rates it."""
    chat = citizen(http, service)
    await chat.send("我要投诉小区门口的路灯坏了一个多月，晚上走路很危险")
    await chat.send("海宁县硖川街道")
    await chat.send("一个多月了")
    await chat.send("13900001111")
    await chat.send("修改地点")
    await chat.send("南湖区月河街道幸福小区北门")
    done = (await chat.send("是"))["replies"][-1]
    case_no = done["case_no"]
    assert "预计" in done["text"] and "答复" in done["text"]
    async with database.session() as session:
        case = await session.scalar(select(Case).where(Case.number == case_no))
    assert case.address == "南湖区月河街道幸福小区北门" and case.deadline is not None
    if case.status == "submitted":           # routing was unsure: the dispatcher dispatches
        staff(service, "dispatch", case_no, "--unit", "NH-GOV", "--as", "dispatcher1")
        first = "NH-GOV"
    else:
        first = case.unit_id
    other = "JH-JSJ" if first != "JH-JSJ" else "JH-ZFJ"

    staff(service, "return", case_no, "--unit", first, "--reason", "路灯属市政设施，不归本单位",
          "--as", "handler-a")
    staff(service, "dispatch", case_no, "--unit", other, "--reason", "市政设施归住建局",
          "--as", "dispatcher1")
    staff(service, "accept", case_no, "--unit", other, "--as", "handler-b")
    staff(service, "reply", case_no, "--unit", other, "--text", "路灯已于今日修复，感谢您的反映。",
          "--as", "handler-b")

    async with http.get(service.url + "/api/chat/updates", params={"sender": chat.sender}) as resp:
        updates = (await resp.json())["messages"]
    assert any("路灯已于今日修复" in m["text"] for m in updates)
    assert "评价" in updates[-1]["text"]
    thanks = await chat.send("非常满意")
    assert "感谢" in thanks["replies"][-1]["text"]
    async with database.session() as session:
        case = await session.scalar(select(Case).where(Case.number == case_no))
        trail = [e.name for e in await session.scalars(
            select(Event).where(Event.case_id == case.id).order_by(Event.id))]
    assert (case.status, case.unit_id, case.rating) == ("rated", other, 5)
    assert trail[-5:] == ["case_returned", "case_dispatched", "case_accepted", "case_replied",
                          "rating_given"]
    # The citizen sees the reply when asking for progress, too.
    progress = (await chat.send(f"查询{case_no}"))["replies"][0]["text"]
    assert "路灯已于今日修复" in progress
    # Without a number (the menu's 查询进度): the citizen's own cases are listed.
    listing = (await chat.send("查进度"))["replies"][0]["text"]
    assert case_no in listing and "已评价" in listing
    # Another citizen cannot see it, even with the number.
    stranger = await citizen(http, service).send(f"查询{case_no}")
    assert "没有找到" in stranger["replies"][0]["text"]


async def test_handoff_silences_the_bot(service, http, database):
    chat = citizen(http, service)
    handoff = await chat.send("转人工")
    assert handoff["replies"][0]["kind"] == "handoff" and handoff["status"] == "with_staff"
    after = await chat.send("你好，有人吗")
    assert after == {"replies": [], "status": "with_staff"}
    async with database.session() as session:
        queued = await session.scalar(select(Message).where(Message.external_id == f"{chat.sender}-2"))
        handoffs = await session.scalar(select(func.count()).select_from(Event).where(
            Event.name == "handoff_requested", Event.conversation_id == queued.conversation_id))
    assert queued.status == "queued_for_staff" and queued.text == "你好，有人吗"
    assert handoffs == 1


async def test_a_retried_message_is_answered_once_with_the_same_reply(service, http, database):
    chat = citizen(http, service)
    first, second = await asyncio.gather(chat.send("公积金怎么提取", message_id="dup-" + chat.sender),
                                         chat.send("公积金怎么提取", message_id="dup-" + chat.sender))
    assert first["replies"] == second["replies"] and first["replies"]
    async with database.session() as session:
        inbound = (await session.scalars(select(Message).where(
            Message.external_id == "dup-" + chat.sender))).all()
        replies = await session.scalar(select(func.count()).select_from(Message).where(
            Message.in_reply_to_id == inbound[0].id))
    assert len(inbound) == 1 and replies == len(first["replies"])


async def test_bad_input_gets_a_clear_chinese_error(service, http):
    chat = citizen(http, service)
    assert "为空" in (await chat.send("   ", expect=400))["error"]
    assert "太长" in (await chat.send("问" * 501, expect=413))["error"]
    async with http.post(service.url + "/api/chat", data="not json",
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400 and "格式" in (await resp.json())["error"]


async def test_rasa_down_gets_an_apology_and_the_supervisor_brings_it_back(service, http, database):
    async with http.get(service.url + "/healthz") as resp:
        before = (await resp.json())["rasa_process"]
    os.kill(before["pid"], signal.SIGKILL)
    chat = citizen(http, service)
    data = await chat.send("医保怎么报销")
    assert data["replies"][0]["kind"] == "handoff" and "抱歉" in data["replies"][0]["text"]
    assert data["status"] == "with_staff"
    async with database.session() as session:
        stored = await session.scalar(select(Message).where(Message.external_id == f"{chat.sender}-1"))
    assert stored.text == "医保怎么报销" and stored.status == "queued_for_staff"
    # What the Q&A base answers outright is still answered (from it) while Rasa is away.
    other = await citizen(http, service).send("社保卡丢了怎么补办")
    assert other["status"] == "bot" and other["replies"][0]["qa_id"] == "SB-001"

    health = await wait_healthy(service)
    assert health["rasa_process"]["restarts"] == before["restarts"] + 1
    assert health["rasa_process"]["pid"] != before["pid"]
    # The bot serves again, also for the citizen it had to apologise to.
    again = await chat.send("你好")
    assert again["status"] == "bot" and "您好" in again["replies"][0]["text"]


async def test_a_form_half_filled_survives_a_rasa_restart(service, http):
    chat = citizen(http, service)
    start = await chat.send("我要举报有人在南湖区东栅街道河边偷倒建筑垃圾")
    assert start["replies"][-1]["kind"] == "form" and "什么时候" in start["replies"][-1]["text"]
    async with http.get(service.url + "/healthz") as resp:
        os.kill((await resp.json())["rasa_process"]["pid"], signal.SIGKILL)
    await asyncio.sleep(1)
    await wait_healthy(service)
    await chat.send("昨天夜里")
    await chat.send("匿名")
    done = await chat.send("确认提交")
    assert done["replies"][-1]["kind"] == "case" and "举报" in done["replies"][-1]["text"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
async def test_a_citizen_asks_on_the_chat_page_in_a_real_browser(service):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            await page.goto(service.url + "/")
            box = page.locator("#chat-input")
            # Reachable by its label, as a screen reader user finds it.
            assert await page.get_by_label(re.compile("输入|消息|问题")).count() >= 1
            await box.fill("社保卡丢了怎么补办")
            await box.press("Enter")
            answer = page.locator('.msg-bot[data-kind="answer"]')
            await answer.first.wait_for(timeout=30000)
            assert "社保" in await answer.first.inner_text()
            assert await page.locator(".msg-user").last.inner_text() == "社保卡丢了怎么补办"

            await box.fill("转人工")
            await page.locator("#chat-send").click()
            await page.locator('.msg-bot[data-kind="handoff"]').first.wait_for(timeout=30000)
            assert await page.get_by_text("已转人工客服").count() >= 1
        finally:
            await browser.close()


async def test_ctrl_c_stops_the_server_and_rasa(service, http):
    async with http.get(service.url + "/healthz") as resp:
        rasa_pid = (await resp.json())["rasa_process"]["pid"]
    assert stop_service(service) == 0
    for _ in range(50):
        if not pid_alive(rasa_pid):
            break
        await asyncio.sleep(0.2)
    assert not pid_alive(rasa_pid), "Rasa outlived the server"
