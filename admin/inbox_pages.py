"""The staff hand-off inbox (会话接管): conversations the bot handed to people, and their work.

Pages read and change conversations only through bot/handoff.py; replies reach the citizen
through the outbox (server/outbox.py wires the channels). Every action is a POST form with the
session's CSRF token, answered with a redirect and a flash (POST-redirect-GET), and audited.
The list is live: "inbox-live" streams `changed` (admin/live.py) and `live.js` makes `inbox.js`
redraw it from "inbox-updates" (polling every 5 seconds if the stream cannot be had); the open
conversation is refreshed every 5 seconds from the same JSON.
"""
from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from admin.api import audit
from admin import live, wordlists
from admin.auth import flash, render
from admin.permissions import allow, may_open
from bot import handoff, harmful
from bot.handoff import HandoffRefused
from bot.models import STAFF
from channels.wechat import delivery
from channels.wechat.models import DELIVERED, PENDING, SENDING, UNDELIVERABLE
from server.appkeys import DB
from server.db import CHINA, utcnow
from knowledge_base import workflow
from server.outbox import build_outbox

ROLES = ("agent", "admin")
CHANNELS = {"webchat": "网页", "wechat": "微信公众号"}
REASONS = {"citizen_request": "群众要求人工", "bot_unavailable": "智能助手不可用"}
WHO = {"citizen": "群众", "bot": "智能助手", "system": "系统"}
# WeChat's reasons (channels/wechat/delivery.py FINAL) in staff's words.
UNDELIVERED = {"window closed": "群众超过48小时未互动，无法主动发送",
               "quota exceeded": "客服消息发送次数已达上限",
               "invalid openid": "群众的微信标识无效"}
# Canned responses: the reply box's quick phrases (an admin-editable list is for later).
CANNED = (
    "您好，我是人工客服，很高兴为您服务，请问有什么可以帮您？",
    "您反映的情况我们已经记录，正在为您核实，请稍候。",
    "为便于尽快办理，请您补充具体地址和事情经过。",
    "您的问题已转交相关部门办理，办理结果会及时告知您。",
    "感谢您的耐心等待，如还有其他问题，欢迎随时咨询。",
)
PREVIEW = 40
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_ID_NO = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")


def mask(text: str) -> str:
    """Phone and ID numbers masked, for lists (the conversation page shows the message)."""
    return _PHONE.sub(r"\1****\2", _ID_NO.sub(r"\1********\2", text))


def shorten(text: str, limit: int = PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def waited(seconds: int) -> str:
    minutes = seconds // 60
    if minutes < 1:
        return "不到1分钟"
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}小时{minutes}分钟"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时"


def at(value: datetime | None) -> str:
    return value.astimezone(CHINA).strftime("%m-%d %H:%M:%S") if value else ""


def delivery_label(state: tuple[str, str | None] | None) -> str:
    if state is None:
        return ""
    status, error = state
    if status in (PENDING, SENDING):
        return "待发送"
    if status == DELIVERED:
        return "已发送"
    if status == UNDELIVERABLE:
        return f"未送达：{UNDELIVERED.get(error or '', error or '原因不明')}"
    return status


def conversation_url(conversation_id: int) -> str:
    return f"/admin/inbox/{conversation_id}"


def _row(w: handoff.Waiting, me: str, now: datetime, flagged: set[int]) -> dict:
    who = WHO.get(w.last_source or "", "客服") if w.last_source else ""
    return {"id": w.id, "url": conversation_url(w.id), "channel": CHANNELS.get(w.channel, w.channel),
            "reason": REASONS.get(w.handoff_reason or "", w.handoff_reason or ""),
            "waiting": waited(w.waiting_seconds(now)), "since": at(w.handoff_at),
            "last": f"{who}：{shorten(mask(w.last_text))}" if who else "",
            "owner": w.assigned_to or "", "mine": w.assigned_to == me,
            "flagged": w.id in flagged}          # art. 24: a harmful citizen message in it


async def _rows(db, me: str, mine: bool) -> list[dict]:
    """The list, on the page and in its JSON alike (the harmful flag included)."""
    waiting = await handoff.waiting(db, owner=me if mine else None)
    flagged = await harmful.flagged_conversations(db, [w.id for w in waiting])
    now = utcnow()
    return [_row(w, me, now, flagged) for w in waiting]


def _item(item: handoff.Item, states: dict) -> dict:
    if item.direction == "in":
        who, cls = "群众", "citizen"
    elif item.source == "staff":
        who, cls = f"客服 {item.staff or ''}".strip(), "staff"
    else:
        who, cls = WHO.get(item.source, item.source), item.source
    qa = item.qa
    return {"id": item.id, "who": who, "cls": cls, "text": item.text, "at": at(item.at),
            "qa": f"问答 {qa[0]} 第{qa[1]}版" if qa else "",
            "delivery": delivery_label(states.get(item.id)) if item.source == "staff" else ""}


async def _items(db, conv, after: int = 0) -> list[dict]:
    items = await handoff.history(db, conv.id, after)
    states = {}
    if conv.channel == delivery.CHANNEL:
        states = await delivery.delivery_states(
            db, [i.id for i in items if i.source == "staff" or i.source == "system"])
    return [_item(i, states) for i in items]


def _conversation_id(request: web.Request) -> int:
    try:
        return int(request.match_info["conversation_id"])
    except ValueError:
        raise web.HTTPNotFound() from None


async def _load(request: web.Request):
    try:
        return await handoff.conversation(request.app[DB], _conversation_id(request))
    except handoff.NotFound:
        raise web.HTTPNotFound() from None


# ---------------------------------------------------------------- pages

async def inbox(request: web.Request) -> web.Response:
    mine = request.query.get("mine") == "1"
    rows = await _rows(request.app[DB], request["user"].username, mine)
    return await render(request, "inbox_list.html", {"rows": rows, "mine": mine})


async def conversation_page(request: web.Request, *, status: int = 200, error: str | None = None,
                            draft: str = "", held: dict | None = None) -> web.Response:
    db, me = request.app[DB], request["user"].username
    conv = await _load(request)
    items = await _items(db, conv)
    flagged = await harmful.flags_of(db, conv.id)       # art. 24: harmful citizen messages
    with_staff = conv.state == STAFF
    async with db.session() as session, session.begin():
        audit(session, me, "inbox.view", f"conversation:{conv.id}")
    return await render(request, "inbox_conversation.html", {
        "conv": conv, "items": items, "notes": await handoff.notes(db, conv.id),
        "with_staff": with_staff, "owner": conv.assigned_to or "",
        "is_owner": with_staff and conv.assigned_to == me,
        "claimable": with_staff and conv.assigned_to in (None, me),
        "channel": CHANNELS.get(conv.channel, conv.channel),
        "reason": REASONS.get(conv.handoff_reason or "", conv.handoff_reason or ""),
        "waiting": waited(int((utcnow() - conv.handoff_at).total_seconds())) if conv.handoff_at else "",
        "last_id": items[-1]["id"] if items else 0, "canned": CANNED,
        "error": error, "draft": draft, "max_reply": handoff.MAX_REPLY, "max_note": handoff.MAX_NOTE,
        "held": held, "flagged": flagged,
        "may_propose": may_open(request["user"].role, "inbox-propose"),
    }, status=status)


async def conversation(request: web.Request) -> web.Response:
    return await conversation_page(request)


async def updates(request: web.Request) -> web.Response:
    """JSON for inbox.js: the list (default), or one conversation's messages after `after`."""
    db, me = request.app[DB], request["user"].username
    headers = {"Cache-Control": "no-store"}
    wanted = request.query.get("conversation")
    if wanted is None:
        rows = await _rows(db, me, request.query.get("mine") == "1")
        return web.json_response({"rows": rows}, headers=headers)
    try:
        conversation_id, after = int(wanted), int(request.query.get("after", "0"))
        conv = await handoff.conversation(db, conversation_id)
    except (ValueError, handoff.NotFound):
        raise web.HTTPNotFound() from None
    items = await _items(db, conv)      # all of them: a staff reply's delivery state changes
    return web.json_response({
        "state": conv.state, "owner": conv.assigned_to or "",
        "messages": [i for i in items if i["id"] > after],
        "deliveries": {str(i["id"]): i["delivery"] for i in items if i["delivery"]},
    }, headers=headers)


async def inbox_live(request: web.Request) -> web.StreamResponse:
    """`changed` when the list would change: a hand-off, a claim, a new message, a give-back."""
    db, me = request.app[DB], request["user"].username
    mine = request.query.get("mine") == "1"

    async def state():
        waiting = await handoff.waiting(db, owner=me if mine else None)
        counts = {"waiting": len(waiting),
                  "unclaimed": sum(1 for w in waiting if not w.assigned_to),
                  "mine": sum(1 for w in waiting if w.assigned_to == me)}
        return tuple((w.id, w.assigned_to, w.last_at, w.last_source) for w in waiting), counts

    return await live.stream(request, state)


# ---------------------------------------------------------------- actions

async def _done(request: web.Request, action: str, conversation_id: int, message: str,
                to: str, **detail) -> web.Response:
    async with request.app[DB].session() as session, session.begin():
        audit(session, request["user"].username, f"inbox.{action}",
              f"conversation:{conversation_id}", **detail)
    await flash(request, message)
    raise web.HTTPSeeOther(to)


async def _refused(request: web.Request, action: str, conversation_id: int,
                   exc: HandoffRefused) -> web.Response:
    return await _done(request, f"{action}.refused", conversation_id, exc.zh,
                       conversation_url(conversation_id), reason=exc.zh)


async def claim(request: web.Request) -> web.Response:
    cid, me = _conversation_id(request), request["user"].username
    try:
        await handoff.claim(request.app[DB], cid, me)
    except handoff.NotFound:
        raise web.HTTPNotFound() from None
    except HandoffRefused as exc:
        return await _refused(request, "claim", cid, exc)
    return await _done(request, "claim", cid, "已接管该会话", conversation_url(cid))


async def release(request: web.Request) -> web.Response:
    cid, me = _conversation_id(request), request["user"].username
    try:
        await handoff.release(request.app[DB], cid, me)
    except handoff.NotFound:
        raise web.HTTPNotFound() from None
    except HandoffRefused as exc:
        return await _refused(request, "release", cid, exc)
    return await _done(request, "release", cid, "已放弃接管，会话回到待处理队列", "/admin/inbox")


async def reply(request: web.Request) -> web.Response:
    cid, me = _conversation_id(request), request["user"].username
    form = await request.post()
    text = str(form.get("text", ""))
    db = request.app[DB]
    # ---- content check (art. 20–21): a staff_caution term holds the reply until confirmed
    caution = await wordlists.caution_terms(db, text)
    if caution and form.get("confirm") != "1":
        return await _held(request, cid, text, caution)
    # ----
    try:
        message_id = await handoff.reply(db, build_outbox(db), cid, me, text)
    except handoff.NotFound:
        raise web.HTTPNotFound() from None
    except HandoffRefused as exc:
        async with db.session() as session, session.begin():
            audit(session, me, "inbox.reply.refused", f"conversation:{cid}", reason=exc.zh)
        return await conversation_page(request, status=409 if isinstance(exc, handoff.Taken)
                                       else 400, error=exc.zh, draft=text[:handoff.MAX_REPLY])
    if caution:     # sent after the 仍然发送 confirmation: the record names the terms
        return await _done(request, "reply", cid, "回复已发送", conversation_url(cid),
                           message_id=message_id, caution_terms=caution, confirmed=True)
    return await _done(request, "reply", cid, "回复已发送", conversation_url(cid),
                       message_id=message_id)


async def _held(request: web.Request, cid: int, text: str, terms: list[str]) -> web.Response:
    """The reply comes back unsent, its caution terms highlighted, with 仍然发送."""
    db = request.app[DB]
    async with db.session() as session, session.begin():
        audit(session, request["user"].username, "inbox.reply.held", f"conversation:{cid}",
              caution_terms=terms)
    matcher = await wordlists.matcher(db, wordlists.STAFF_CAUTION)
    return await conversation_page(request, draft=text[:handoff.MAX_REPLY], held={
        "terms": terms, "segments": matcher.segments(text[:handoff.MAX_REPLY])})


async def note(request: web.Request) -> web.Response:
    cid, me = _conversation_id(request), request["user"].username
    text = str((await request.post()).get("text", ""))
    try:
        note_id = await handoff.add_note(request.app[DB], cid, me, text)
    except handoff.NotFound:
        raise web.HTTPNotFound() from None
    except HandoffRefused as exc:
        return await _refused(request, "note", cid, exc)
    return await _done(request, "note", cid, "备注已保存（群众看不到）", conversation_url(cid),
                       note_id=note_id)


async def _give_back(request: web.Request, resolved: bool) -> web.Response:
    cid, me = _conversation_id(request), request["user"].username
    db = request.app[DB]
    action = "resolve" if resolved else "return"
    try:
        seconds = await handoff.give_back(db, build_outbox(db), cid, me, resolved=resolved)
    except handoff.NotFound:
        raise web.HTTPNotFound() from None
    except HandoffRefused as exc:
        return await _refused(request, action, cid, exc)
    message = "会话已办结，已转回智能助手" if resolved else "会话已转回智能助手"
    return await _done(request, action, cid, message, "/admin/inbox", waited_seconds=seconds)


async def return_to_bot(request: web.Request) -> web.Response:
    return await _give_back(request, resolved=False)


async def resolve(request: web.Request) -> web.Response:
    return await _give_back(request, resolved=True)


# ---------------------------------------------------------------- 提议加入问答库

def proposal_id(message_id: int) -> str:
    """The Q&A entry a staff reply becomes: one per reply, so proposing twice finds the first."""
    return f"STAFF-{message_id}"


def _proposal(items: list[handoff.Item], message_id: int) -> tuple[handoff.Item, handoff.Item]:
    """(the citizen message the staff reply answered — the latest inbound before it, the reply)."""
    reply = next((i for i in items if i.id == message_id), None)
    if reply is None or reply.direction != "out" or reply.source != "staff":
        raise HandoffRefused("只能将工作人员的回复提议加入问答库")
    asked = [i for i in items[:items.index(reply)] if i.direction == "in"]
    if not asked:
        raise HandoffRefused("找不到这条回复所答复的群众消息")
    return asked[-1], reply


async def propose(request: web.Request) -> web.Response:
    """A staff reply becomes a DRAFT Q&A entry (question: the citizen's message it answered,
    answer: the reply; phone and ID numbers masked) for the agent to edit and submit for review
    on the entry's page. Through knowledge_base.workflow (audited kb.draft) and audited here."""
    db, me = request.app[DB], request["user"].username
    cid = _conversation_id(request)
    message_id = int(request.match_info["message_id"])
    try:
        await handoff.conversation(db, cid)
    except handoff.NotFound:
        await flash(request, "会话不存在，无法提议加入问答库")
        raise web.HTTPSeeOther("/admin/inbox") from None
    try:
        question, answer = _proposal(await handoff.history(db, cid), message_id)
        if question.id in await harmful.flags_of(db, cid):
            raise HandoffRefused("该群众消息被标记为疑似有害信息，不能提议加入问答库")
    except HandoffRefused as exc:
        return await _done(request, "propose.refused", cid, exc.zh, conversation_url(cid),
                           message_id=message_id, reason=exc.zh)
    entry_id = proposal_id(message_id)
    entry_url = str(request.app.router["kb-entry"].url_for(entry=entry_id))
    async with db.session() as session, session.begin():
        try:
            await workflow.versions(session, entry_id)
            exists = True
        except workflow.WorkflowError:
            exists = False
            version = await workflow.save_draft(session, entry_id, me, question=mask(question.text),
                                                answer=mask(answer.text))
            audit(session, me, "inbox.propose", f"conversation:{cid}", message_id=message_id,
                  question_message_id=question.id, entry=f"{entry_id}@{version.number}")
    if exists:
        await flash(request, f"这条回复已提议过：问答 {entry_id}")
    else:
        await flash(request, f"已生成问答草稿 {entry_id}，请修改后提交审核")
    raise web.HTTPSeeOther(entry_url)


def setup_routes(app: web.Application) -> None:
    """Mounted by admin/routes.py; the rules: agents and admins."""
    r = app.router
    base = "/admin/inbox/{conversation_id:\\d+}"
    r.add_get("/admin/inbox", inbox, name="staff-inbox")
    r.add_get("/admin/inbox/updates", updates, name="inbox-updates")
    r.add_get("/admin/inbox/live", inbox_live, name="inbox-live")
    r.add_get(base, conversation, name="inbox-conversation")
    # (Route names may not hold a Python keyword: "return" is "inbox-to-bot".)
    for action, handler, name in (("claim", claim, "inbox-claim"),
                                  ("release", release, "inbox-release"),
                                  ("reply", reply, "inbox-reply"), ("note", note, "inbox-note"),
                                  ("return", return_to_bot, "inbox-to-bot"),
                                  ("resolve", resolve, "inbox-resolve")):
        r.add_post(f"{base}/{action}", handler, name=name)
    r.add_post(base + "/messages/{message_id:\\d+}/propose", propose, name="inbox-propose")
    for name in ("staff-inbox", "inbox-updates", "inbox-live", "inbox-conversation", "inbox-claim",
                 "inbox-release", "inbox-reply", "inbox-note", "inbox-to-bot", "inbox-resolve"):
        allow(name, *ROLES)
    # Those who may open the inbox and also edit Q&A drafts (admin/kb_pages.py EDITORS).
    allow("inbox-propose", "agent", "admin")
