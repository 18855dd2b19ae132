"""`govchat`: one command line for running and administering the service."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from server.config import ConfigError, load_config

# The groups later issues fill in; until then they say so instead of pretending.
def _setup_logging(level: str, fmt: str = "text") -> None:
    from server import logs

    logs.setup(level, fmt)


def _prepare(config, train: bool = True) -> None:
    """Everything `run` needs before it serves: model, schema, first-start content, admin."""
    from server import bootstrap, migrate
    from server.db import Database
    from server.rasa_model import ensure_model

    if train and config.rasa_manage:
        ensure_model(config)
    migrate.upgrade(config.database_url)

    async def first_start() -> None:
        db = Database(config.database_url)
        try:
            if config.load_demo:
                for what in await bootstrap.load_demo_content(db):
                    print(f"Loaded demo content: {what}")
            password = await bootstrap.ensure_admin(db)
        finally:
            await db.dispose()
        if password:
            print("\n" + "=" * 64)
            print("  Admin account created. It is shown only this once:")
            print(f"    username: admin    password: {password}")
            print("  Change it at first login.")
            print("=" * 64 + "\n", flush=True)

    asyncio.run(first_start())


def cmd_run(args, config) -> int:
    from aiohttp import web

    from server.app import create_app

    if args.port:
        config = config.with_(port=args.port)
    if args.no_rasa:
        config = config.with_(rasa_manage=False)
    _prepare(config)
    hosts = list(config.hosts)
    shown = ", ".join(f"http://{'[' + h + ']' if ':' in h else h}:{config.port}" for h in hosts)
    print(f"govchat serving on {shown} — Ctrl-C stops it", flush=True)
    web.run_app(create_app(config), host=hosts, port=config.port, print=None,
                access_log=None, shutdown_timeout=10)
    return 0


def cmd_setup(args, config) -> int:
    _prepare(config, train=not args.no_train)
    print("Set-up complete.")
    return 0


def cmd_db(args, config) -> int:
    from server import migrate

    config.var_dir.mkdir(parents=True, exist_ok=True)   # the default SQLite file lives there
    if args.db_command == "upgrade":
        migrate.upgrade(config.database_url)
        print("Database schema is up to date.")
    elif args.db_command == "revision":
        migrate.revision(config.database_url, args.message)
    return 0


def cmd_backup(args, config) -> int:
    from server import backup

    try:
        done = backup.backup(config.database_url, args.file)
    except backup.BackupError as exc:
        print(f"govchat backup: {exc}", file=sys.stderr)
        return 1
    print(f"Backed up the {done.backend} database to {done.path} ({done.size:,} bytes).")
    return 0


def cmd_restore(args, config) -> int:
    from server import backup

    try:
        done = backup.restore(config.database_url, args.file, force=args.force)
    except backup.BackupError as exc:
        print(f"govchat restore: {exc}", file=sys.stderr)
        return 1
    print(f"Restored the {done.backend} database from {done.path}. If it came from an older "
          f"release, run `govchat db upgrade` next.")
    return 0


def cmd_users_add(args, config) -> int:
    from admin.api import AccountError, create_user

    async def add(session) -> str:
        _, password = await create_user(
            session, username=args.username, role=args.role, unit_id=args.unit,
            display_name=args.name or "", actor="cli",
            password=sys.stdin.readline().strip() if args.password_stdin else None)
        return password

    try:
        password = _with_session(config, add)
    except AccountError as exc:
        print(f"govchat users add: {exc}", file=sys.stderr)
        return 2
    print(f"Created {args.role} account {args.username!r}.")
    if not args.password_stdin:
        print(f"One-time password (shown once, must be changed at first login): {password}")
    return 0


def cmd_users_set_active(args, config) -> int:
    """`users deactivate NAME` (ends every session at once) and `users activate NAME`."""
    from admin.api import AccountError, find_user, set_active

    active = args.users_command == "activate"

    async def change(session) -> None:
        user = await find_user(session, args.username)
        if user is None:
            raise AccountError(f"no account named {args.username!r}")
        await set_active(session, user, active, actor="cli")

    try:
        _with_session(config, change)
    except AccountError as exc:
        print(f"govchat users {args.users_command}: {exc}", file=sys.stderr)
        return 2
    print(f"Account {args.username!r} is {'active' if active else 'deactivated; its sessions ended'}.")
    return 0


def cmd_users_list(args, config) -> int:
    from admin.api import last_logins, list_users

    async def load(session):
        return await list_users(session), await last_logins(session)

    users, logins = _with_session(config, load)
    print(f"{'username':<20}  {'role':<12}  {'unit':<12}  {'active':<6}  last login (UTC)")
    for u in users:
        last = logins.get(u.username)
        print(f"{u.username:<20}  {u.role:<12}  {u.unit_id or '-':<12}  {'yes' if u.active else 'no':<6}  "
              f"{last.strftime('%Y-%m-%d %H:%M') if last else '-'}")
    return 0


def cmd_kb_import(args, config) -> int:
    from admin.api import audit
    from knowledge_base import api as kb
    try:
        rows = kb.read_table(Path(args.file))
    except kb.ImportRejected as exc:
        print(f"govchat kb import: {args.file} was rejected, nothing was imported:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2

    async def run(session) -> None:
        await kb.import_rows(session, rows, actor="cli", publish=args.publish)
        audit(session, "cli", "kb.import", args.file, entries=len(rows), published=args.publish)

    _with_session(config, run)
    print(f"Imported {len(rows)} entries{' and published them' if args.publish else ' as drafts'}.")
    return 0


def cmd_kb_export(args, config) -> int:
    from knowledge_base import api as kb
    rows = _with_session(config, kb.export_rows)
    try:
        kb.write_table(Path(args.file), rows)
    except kb.ImportRejected as exc:   # neither .csv nor .xlsx
        print(f"govchat kb export: {exc}", file=sys.stderr)
        return 2
    print(f"Exported {len(rows)} entries to {args.file}.")
    return 0


def cmd_kb_gaps(args, config) -> int:
    import json
    from datetime import timedelta

    from knowledge_base.curation import gap_queries
    from knowledge_base.gaps import cluster
    from server.db import utcnow

    async def run(db):
        kb = _knowledge_base(db, config)
        await kb.refresh()
        async with db.session() as session:
            found = await gap_queries(session, utcnow() - timedelta(days=args.days))
        return cluster(found, kb.index)

    gaps = [g for g in _with_db(config, run) if g.count >= args.min_count]
    if args.json:
        for gap in gaps:
            print(json.dumps(gap.__dict__, ensure_ascii=False))
        return 0
    if not gaps:
        print(f"No unanswered questions in the last {args.days} days.")
    for gap in gaps:
        nearest = f"{gap.nearest_id} {gap.nearest_question} ({gap.nearest_score:.2f})" if gap.nearest_id else "none"
        print(f"{gap.count:>5}  {' / '.join(gap.examples)}\n       nearest entry: {nearest}")
    return 0


def cmd_kb_hits(args, config) -> int:
    import json
    from dataclasses import asdict
    from datetime import timedelta

    from knowledge_base.curation import hits
    from server.db import utcnow

    rows = _with_session(
        config, lambda session: hits(session, utcnow() - timedelta(days=args.days), period=args.period))
    if args.json:
        for row in rows:
            print(json.dumps(asdict(row), ensure_ascii=False))
        return 0
    if not rows:
        print(f"No answers in the last {args.days} days.")
        return 0
    width = max(5, *(len(r.entry_id) for r in rows))
    # An emoji takes two columns in a terminal: pad its header one less.
    print(f"{'entry':<{width}}  {'period':<10}  {'answered':>8}  {'👍':>3}  {'👎':>3}")
    for r in rows:
        print(f"{r.entry_id:<{width}}  {r.period:<10}  {r.answered:>8}  {r.up:>4}  {r.down:>4}")
    return 0


def _with_db(config, work):
    """Run `await work(db)` on the configured database, closed afterwards."""
    from server.db import Database

    async def run():
        db = Database(config.database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _knowledge_base(db, config):
    """The Q&A base as the server serves it (same settings, same stored embeddings)."""
    from knowledge_base.api import KnowledgeBase
    from knowledge_base.settings import load_settings

    return KnowledgeBase(db, load_settings(config.embedder), config.var_dir / "kb-index")


def cmd_kb_reindex(args, config) -> int:
    """Build the search index now, with a progress bar; --full embeds every question again."""
    from tqdm import tqdm

    if args.full:
        for stored in (config.var_dir / "kb-index").glob("*.npz"):
            stored.unlink()
    bar = tqdm(total=0, unit="question", desc="embedding", disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    async def run(db):
        kb = _knowledge_base(db, config)
        await kb.refresh(progress=progress)
        return kb.size, kb.last_embedded

    size, embedded = _with_db(config, run)
    bar.close()
    print(f"Index built: {size} published entries, {embedded} questions newly embedded.")
    return 0


def _inputs(one: str | None, file: str | None, usage: str) -> list[str] | None:
    """The texts a command works on: one from the command line, or one per non-empty line of
    --file; None (after printing `usage`) when neither is given."""
    if file:
        with open(file, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    if one:
        return [one]
    print(usage, file=sys.stderr)
    return None


def cmd_kb_search(args, config) -> int:
    import json

    queries = _inputs(args.query, args.file, "govchat kb search: give a QUERY or --file F")
    if queries is None:
        return 2

    async def load(db):
        kb = _knowledge_base(db, config)
        await kb.refresh()
        return kb

    kb = _with_db(config, load)
    for query in queries:
        print(json.dumps(kb.search(query, args.k), ensure_ascii=False), flush=True)
    return 0


def cmd_rasa_train(args, config) -> int:
    from server.rasa_model import ensure_model

    print(ensure_model(config, force=args.force))
    return 0


def _with_session(config, work):
    """Run `work(session)` in one transaction on the configured database."""
    async def in_transaction(db):
        async with db.session() as session, session.begin():
            return await work(session)

    return _with_db(config, in_transaction)


def cmd_wechat_account_add(args, config) -> int:
    from channels.wechat import accounts

    async def add(session):
        return await accounts.add(session, args.name, app_id=args.app_id, app_secret=args.secret,
                                  token=args.token, encoding_aes_key=args.aes_key, mode=args.mode)

    try:
        account = _with_session(config, add)
    except accounts.AccountError as exc:
        print(f"govchat wechat account add: {exc}", file=sys.stderr)
        return 2
    path = "/wechat" if account.name == accounts.DEFAULT else f"/wechat/{account.name}"
    print(f"Added WeChat account {account.name!r} ({account.mode} mode). "
          f"Server URL for the WeChat console: https://<your host>{path}")
    return 0


def cmd_wechat_account_list(args, config) -> int:
    from channels.wechat import accounts

    rows = _with_session(config, accounts.all_rows)
    env = accounts.from_config(config)
    if not rows and env is None:
        print("No WeChat accounts. Add one: govchat wechat account add NAME --app-id … "
              "--secret … --token …")
        return 0
    # Secrets, tokens and keys never leave the database here: only whether a key is set.
    print(f"{'name':<16} {'app id':<20} {'mode':<10} {'aes key':<7} added")
    if env is not None:
        print(f"{env.name:<16} {env.app_id:<20} {env.mode:<10} "
              f"{'set' if env.encoding_aes_key else '-':<7} from WECHAT_* settings")
    for row in rows:
        shadowed = " (shadowed by WECHAT_* settings)" if env and row.name == env.name else ""
        print(f"{row.name:<16} {row.app_id:<20} {row.mode:<10} "
              f"{'set' if row.encoding_aes_key else '-':<7} "
              f"{row.created_at:%Y-%m-%d %H:%M} UTC{shadowed}")
    return 0


def cmd_wechat_account_remove(args, config) -> int:
    from channels.wechat import accounts

    if not _with_session(config, lambda session: accounts.remove(session, args.name)):
        print(f"govchat wechat account remove: no account named {args.name!r}", file=sys.stderr)
        return 2
    print(f"Removed WeChat account {args.name!r}.")
    return 0


def cmd_wechat_simulate(args, config) -> int:
    """Chat with a running server as WeChat would deliver the messages (signed, encrypted)."""
    import aiohttp

    from channels.wechat import accounts
    from channels.wechat.simulate import (LATE_NOTE, SimulationError, Simulator, follow, late_line,
                                          new_msg_id)
    account = _with_db(config, lambda db: accounts.find(db, config, args.account))
    if account is None:
        print(f"govchat wechat simulate: no WeChat account named {args.account!r} "
              "(govchat wechat account list)", file=sys.stderr)
        return 2
    base = (args.url or f"http://127.0.0.1:{config.port}").rstrip("/")
    url = base + ("/wechat" if account.name == accounts.DEFAULT else f"/wechat/{account.name}")

    async def chat(db) -> int:
        noted = False
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            sim = Simulator(http, url, account, args.user)
            print(f"Talking to {url} as {args.user} ({account.mode} mode). Ctrl-D to stop.", flush=True)
            loop = asyncio.get_running_loop()
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                if not line.strip():
                    continue
                msg_id = new_msg_id()
                try:
                    reply = await sim.send(line.strip(), msg_id)
                except (SimulationError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    print(f"!! {exc or type(exc).__name__}", flush=True)
                    continue
                if reply is not None:
                    print(f"公众号：{reply}", flush=True)
                    continue
                print("（服务器回复 success：答复未能在 5 秒内就绪，将通过客服消息另行送达）", flush=True)
                if args.wait <= 0:
                    continue
                if not noted:
                    print(LATE_NOTE, flush=True)
                    noted = True
                shown = 0
                async for late in follow(db, account.name, msg_id, args.wait):
                    print(late_line(late), flush=True)
                    shown += 1
                if not shown:
                    print(f"（{args.wait:g} 秒内没有客服消息答复）", flush=True)
        return 0

    return _with_db(config, chat)


def cmd_calendar_show(args, config) -> int:
    """The holidays and make-up workdays of a year, with the admin's overrides marked."""
    from casework import calendar as cal

    async def load(session):
        return await cal.load_calendar(session), await cal.overrides(session, args.year)

    calendar, rows = _with_session(config, load)
    notes = {row.day: row.note for row in rows}
    if not calendar.covers(args.year):
        years = cal.COVERED_YEARS
        print(f"{args.year} is NOT covered by the statutory calendar (chinesecalendar knows "
              f"{years[0]}–{years[-1]}): Monday to Friday count as working days, plus the "
              "overrides below. Upgrade chinesecalendar or add overrides.")
    for day, workday, name in calendar.special_days(args.year):
        mark = f"  [override{': ' + notes[day] if notes.get(day) else ''}]" if day in notes else ""
        print(f"{day:%Y-%m-%d} {day:%a}  {'workday' if workday else 'holiday':<8} {name}{mark}")
    return 0


def cmd_calendar_override(args, config) -> int:
    from datetime import date

    from casework import calendar as cal

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"govchat calendar override: {args.date!r} is not a date like 2026-10-08", file=sys.stderr)
        return 2
    if args.remove:
        if not _with_session(config, lambda session: cal.remove_override(session, day)):
            print(f"govchat calendar override: {day} has no override", file=sys.stderr)
            return 2
        print(f"{day} follows the statutory calendar again.")
        return 0
    _with_session(config, lambda session: cal.set_override(session, day, args.workday, args.note))
    print(f"{day} is now a {'working day' if args.workday else 'holiday'}.")
    return 0


# Cases: the 12345 loop for staff until the consoles exist --------------------------------------

CASE_ACTIONS = {
    "dispatch": "send a case to --unit (reassigning a returned one needs --reason)",
    "accept": "the handler's --unit takes the case on",
    "return": "the handler's --unit returns a misrouted case (--reason; within 2 working days)",
    "extend": "the handler's --unit asks for --days more working days (--reason)",
    "approve-extension": "approve the waiting extension request: the deadline moves",
    "refuse-extension": "refuse the waiting extension request (--reason)",
    "reply": "the handler's --unit replies (--text); the citizen gets it and is asked to rate",
    "close": "close a replied or rated case",
}
UNIT_ACTIONS = {"dispatch", "accept", "return", "extend", "reply"}


def cmd_cases_list(args, config) -> int:
    from casework import api as casework
    from casework import lifecycle
    from casework.calendar import china_date
    from casework.privacy import mask_phone, mask_text
    from server.db import utcnow

    if args.status and args.status not in casework.STATUS_NAMES:
        print(f"govchat cases list: unknown status {args.status!r}; use one of "
              f"{', '.join(casework.STATUS_NAMES)}", file=sys.stderr)
        return 2
    today = china_date(utcnow())
    rows = _with_session(config, lambda session: lifecycle.find_cases(
        session, status=args.status, unit_id=args.unit, overdue_on=today if args.overdue else None))
    if not rows:
        print("No cases.")
        return 0
    print(f"{'number':<16} {'status':<12} {'unit':<12} {'deadline':<10}  {'phone':<13} description")
    for case in rows:
        late = "!" if case.deadline and case.deadline < today and case.status in (
            "dispatched", "in_progress", "reopened") else " "
        flag = " [escalated]" if case.escalated_at else ""
        print(f"{case.number:<16} {case.status:<12} {case.unit_id or '-':<12} "
              f"{case.deadline.isoformat() if case.deadline else '-':<10}{late} "
              f"{mask_phone(case.phone) or '-':<13} {mask_text(case.description)[:30]}{flag}")
    return 0


def cmd_cases_show(args, config) -> int:
    from casework import api as casework
    from casework import lifecycle
    from casework.privacy import mask_phone, mask_text
    from server.db import CHINA

    async def load(session):
        case = await casework.find_case(session, args.number)
        return case, await lifecycle.trail(session, case.id)

    try:
        case, events = _with_session(config, load)
    except casework.CaseNotFound:
        print(f"govchat cases show: there is no case {args.number}", file=sys.stderr)
        return 2
    print(f"{case.number}  {casework.CASE_TYPE_NAMES.get(case.case_type, case.case_type)}  "
          f"{case.status} ({casework.STATUS_NAMES.get(case.status, case.status)})")
    print(f"unit: {case.unit_id or '-'}   deadline: {case.deadline or '-'}   "
          f"phone: {mask_phone(case.phone) or '-'}{'   anonymous' if case.anonymous else ''}"
          f"{'   ESCALATED' if case.escalated_at else ''}")
    print(f"submitted: {case.created_at.astimezone(CHINA):%Y-%m-%d %H:%M}   "
          f"place: {case.address or '-'}")
    print(f"description: {mask_text(case.description)}")
    if case.reply_text:
        print(f"reply: {case.reply_text}")
    if case.rating:
        print(f"rating: {case.rating}")
    print("events:")
    for event in events:
        detail = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v is not None)
        print(f"  {event.at.astimezone(CHINA):%Y-%m-%d %H:%M}  {event.name:<26} "
              f"{event.actor or '-':<12} {detail}")
    return 0


def cmd_cases_act(args, config) -> int:
    from casework import lifecycle
    from server.db import utcnow

    action, number = args.cases_command, args.number
    if action in UNIT_ACTIONS and not args.unit:
        whose = "target" if action == "dispatch" else "handler's"
        print(f"govchat cases {action}: give --unit (the {whose} unit id)", file=sys.stderr)
        return 2
    when = dict(actor=args.actor, now=utcnow())
    calls = {
        "dispatch": lambda db: lifecycle.dispatch(db, number, args.unit, reason=args.reason,
                                                  deadline_days=config.case_deadline_days, **when),
        "accept": lambda db: lifecycle.accept(db, number, unit_id=args.unit, **when),
        "return": lambda db: lifecycle.return_misrouted(db, number, unit_id=args.unit,
                                                        reason=args.reason, **when),
        "extend": lambda db: lifecycle.request_extension(db, number, unit_id=args.unit, days=args.days,
                                                         reason=args.reason, **when),
        "approve-extension": lambda db: lifecycle.approve_extension(db, number, reason=args.reason, **when),
        "refuse-extension": lambda db: lifecycle.refuse_extension(db, number, reason=args.reason, **when),
        "reply": lambda db: lifecycle.reply(db, number, unit_id=args.unit, text=args.text, **when),
        "close": lambda db: lifecycle.close(db, number, reason=args.reason, **when),
    }
    try:
        result = _with_db(config, calls[action])
    except lifecycle.TransitionRefused as exc:
        print(f"govchat cases {action}: {exc.reason}", file=sys.stderr)
        return 2
    if action == "extend":
        print(f"{number.upper()}: {result.days} more working days requested; waiting for a dispatcher.")
    else:
        print(f"{result.number}: {result.status}, unit {result.unit_id or '-'}, "
              f"deadline {result.deadline or '-'}")
    return 0


def cmd_cases_import_history(args, config) -> int:
    """Past cases from a message board's export: closed cases with their historical times."""
    from casework import history

    try:
        summary = _with_db(config, lambda db: history.import_history(
            db, Path(args.file), case_type=args.type, unit_id=args.unit, source=args.source,
            strict=args.strict, deadline_days=config.case_deadline_days))
    except history.HistoryRejected as exc:
        return _print_rejected("cases import-history", args.file, exc)
    for problem in summary.rejected:
        print(f"  rejected {problem}", file=sys.stderr)
    print(f"{summary.rows} rows in {args.file} ({summary.seconds:.1f} s): {summary.imported} imported, "
          f"{summary.present} skipped as already present, {len(summary.rejected)} rejected")
    for reason, n in summary.reasons.most_common():
        print(f"  {n:>5}  {reason}")
    return 0


def _add_cases_commands(sub) -> None:
    cases = sub.add_parser("cases", help="work complaints and reports (the 12345 loop)")
    cases_sub = cases.add_subparsers(dest="cases_command", required=True)
    listing = cases_sub.add_parser("list", help="cases, newest first (phones masked)")
    listing.add_argument("--status", help="e.g. dispatched, in_progress, replied")
    listing.add_argument("--unit", help="only this unit's cases")
    listing.add_argument("--overdue", action="store_true", help="only cases past their deadline")
    listing.set_defaults(func=cmd_cases_list)
    show = cases_sub.add_parser("show", help="one case with its event trail")
    show.add_argument("number")
    show.set_defaults(func=cmd_cases_show)
    for action, what in CASE_ACTIONS.items():
        step = cases_sub.add_parser(action, help=what)
        step.add_argument("number")
        step.add_argument("--unit", help="dispatch: the unit to send it to; else the handler's unit")
        step.add_argument("--reason")
        step.add_argument("--days", type=int, help="extend: working days")
        step.add_argument("--text", help="reply: the reply to the citizen")
        step.add_argument("--as", dest="actor", required=True, metavar="USER", help="who acts")
        step.set_defaults(func=cmd_cases_act)
    history = cases_sub.add_parser("import-history", help="past cases from a .csv or .xlsx (留言编号, "
                                   "留言主题, 留言时间, 留言详情, 答复意见, 答复时间) as closed cases")
    history.add_argument("file")
    history.add_argument("--type", choices=["complaint", "report"], default="complaint")
    history.add_argument("--unit", help="the unit that replied (default: the dispatcher unit)")
    history.add_argument("--source", default="teddycup",
                         help="names the file's origin in each case's external ref (default teddycup)")
    history.add_argument("--strict", action="store_true",
                         help="refuse the whole file if any row is bad (default: skip bad rows)")
    history.set_defaults(func=cmd_cases_import_history)


REPORT_CUTS = ("unit", "category", "channel", "case_type", "day", "week", "month", "quarter", "year")


def _print_or_write(text: str, out: str | None) -> int:
    """A report's text to standard output, or to --out FILE."""
    if out:
        Path(out).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        print(f"Wrote {out}")
    else:
        print(text)
    return 0


def cmd_report_timeliness(args, config) -> int:
    """The timeliness measures of a window, cut one way (or every way, for xlsx/json)."""
    from datetime import date

    from casework import report, report_files
    from server.db import utcnow

    try:
        first, last = date.fromisoformat(args.from_), date.fromisoformat(args.to)
    except ValueError as exc:
        print(f"govchat report timeliness: dates are YYYY-MM-DD ({exc})", file=sys.stderr)
        return 2
    if last < first:
        print(f"govchat report timeliness: --to {last} is before --from {first}", file=sys.stderr)
        return 2
    if args.format in ("table", "csv") or args.by:
        cuts = [args.by]
    else:
        cuts = [None, *REPORT_CUTS]            # a workbook or JSON of every cut
    if args.format == "xlsx" and not args.out:
        print("govchat report timeliness: --format xlsx needs --out FILE.xlsx", file=sys.stderr)
        return 2
    reports = _with_session(config, lambda session: report.all_cuts(
        session, first, last, cuts, now=utcnow()))
    if args.format == "xlsx":
        report_files.write_xlsx(args.out, reports)
        print(f"Wrote {args.out}: sheets {', '.join(report_files.sheet_name(c) for c in reports)}")
        return 0
    text = {"table": lambda: report_files.to_text(reports[args.by]),
            "csv": lambda: report_files.to_csv(reports[args.by]),
            "json": lambda: report_files.to_json(reports)}[args.format]()
    return _print_or_write(text, args.out)


def cmd_report_assessment(args, config) -> int:
    """The annual assessment: units ranked by score with the breakdown per indicator."""
    import dataclasses
    import json

    from admin.assessment_pages import indicator_table
    from casework import assessment, report_files
    from server.db import utcnow

    if args.format == "xlsx" and not args.out:
        print("govchat report assessment: --format xlsx needs --out FILE.xlsx", file=sys.stderr)
        return 2
    result = _with_session(config, lambda session: assessment.assess(session, args.year, now=utcnow()))
    if args.format == "xlsx":
        report_files.write_tables(args.out, {"年度考核": assessment.assessment_table(result),
                                             "考核指标": indicator_table(result.indicators)})
        print(f"Wrote {args.out}: {len(result.units)} units ranked for {args.year}")
        return 0
    text = {"table": lambda: report_files.text_table(*assessment.assessment_table(result)),
            "csv": lambda: report_files.csv_text(*assessment.assessment_table(result)),
            "json": lambda: json.dumps(dataclasses.asdict(result), ensure_ascii=False, indent=2,
                                       default=str)}[args.format]()
    return _print_or_write(text, args.out)


def cmd_report_alerts(args, config) -> int:
    """What needs someone's attention now: the home page's alerts, for cron or a monitoring script."""
    import dataclasses
    import json
    from datetime import date

    from casework import alerts
    from server.db import CHINA, utcnow

    today = date.fromisoformat(args.date) if args.date else utcnow().astimezone(CHINA).date()
    found = _with_session(config, lambda session: alerts.alerts(session, today))
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(a) for a in found], ensure_ascii=False, indent=2))
    elif not found:
        print("没有需要处理的提醒。")
    for alert in found if args.format == "table" else ():
        print(f"{'【紧急】' if alert.level == alerts.DANGER else '【提醒】'}{alert.message}")
    return 1 if args.check and any(a.level == alerts.DANGER for a in found) else 0


def _add_report_commands(sub) -> None:
    reports = sub.add_parser("report", help="timeliness reports from the event log")
    reports_sub = reports.add_subparsers(dest="report_command", required=True)
    timeliness = reports_sub.add_parser(
        "timeliness", help="waits in working time, on-time and satisfaction rates (docs/timeliness.md)")
    timeliness.add_argument("--from", dest="from_", required=True, metavar="DATE",
                            help="first China date, YYYY-MM-DD")
    timeliness.add_argument("--to", required=True, metavar="DATE", help="last China date (inclusive)")
    timeliness.add_argument("--by", choices=REPORT_CUTS,
                            help="cut (default: the total; xlsx and json then hold every cut)")
    timeliness.add_argument("--format", choices=["table", "json", "csv", "xlsx"], default="table")
    timeliness.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    timeliness.set_defaults(func=cmd_report_timeliness)
    yearly = reports_sub.add_parser(
        "assessment", help="annual assessment: units scored on the indicator table (docs/timeliness.md)")
    yearly.add_argument("--year", type=int, required=True, help="calendar year, e.g. 2026")
    yearly.add_argument("--format", choices=["table", "json", "csv", "xlsx"], default="table")
    yearly.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    yearly.set_defaults(func=cmd_report_assessment)
    alerting = reports_sub.add_parser(
        "alerts", help="what needs attention now (units below target, Q&A expiry, calendar data)")
    alerting.add_argument("--date", metavar="DATE", help="as of this China date (default: today)")
    alerting.add_argument("--format", choices=["table", "json"], default="table")
    alerting.add_argument("--check", action="store_true",
                          help="exit with status 1 when an urgent (red) alert is among them")
    alerting.set_defaults(func=cmd_report_alerts)


def cmd_wechat_menu(args, config) -> int:
    """Check a menu file and push it to WeChat, or show the account's current menu."""
    from channels.wechat import accounts, menu
    from channels.wechat.api_client import ApiError, Unreachable

    def fail(message: str) -> int:
        print(f"govchat wechat menu: {message}", file=sys.stderr)
        return 2

    if args.show == bool(args.file):
        return fail(f"give a menu FILE (the bundled one: {menu.DEFAULT_FILE}) or --show")
    if args.file:
        try:
            data = menu.load(args.file)
        except menu.MenuError as exc:
            return fail(str(exc))
        errors, warnings = menu.check(data)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if errors:
            for error in errors:
                print(f"error: {error}", file=sys.stderr)
            return fail(f"{args.file} was not pushed: {len(errors)} problem(s) above")
        if args.check:
            print(f"{args.file} is a valid menu:", *menu.describe(data), sep="\n")
            return 0

    async def call(db):
        account = await accounts.find(db, config, args.account)
        if account is None:
            raise menu.MenuError(f"no WeChat account named {args.account!r} "
                                 "(govchat wechat account list)")
        if args.show:
            return await menu.current(db, config.wechat_api_base, account)
        await menu.push(db, config.wechat_api_base, account, data)

    try:
        shown = _with_db(config, call)
    except menu.MenuError as exc:
        return fail(str(exc))
    except (ApiError, Unreachable) as exc:
        return fail(menu.explain(exc))
    if args.show:
        print("\n".join(menu.describe(shown)) if shown else "The account has no menu.")
    else:
        print(f"Menu pushed to {args.account!r}:", *menu.describe(data), sep="\n")
        print("WeChat shows it to followers within minutes (at once after they re-follow).")
    return 0


# Routing, units and categories ---------------------------------------------------------------

def _print_rejected(command: str, path: str, exc) -> int:
    print(f"govchat {command}: {path} was rejected, nothing was imported:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return 2


def cmd_route_train(args, config) -> int:
    from casework import routing, training

    try:
        rows = training.read_examples(Path(args.file))
    except training.DirectoryRejected as exc:
        return _print_rejected("route train", args.file, exc)
    router = routing.Router(None, config.var_dir / "route")

    async def run(session):
        await training.replace_examples(session, rows)
        every = await routing.example_rows(session)
        tree = await routing.load_directory(session)     # labels below the first level: their class
        # Trained before the transaction commits: a failure leaves the old examples in place.
        return await asyncio.get_running_loop().run_in_executor(
            None, routing.fit_model, every, router.embed, router.settings, True, tree.group)

    model = _with_session(config, run)
    routing.save_model(model, router.model_dir)
    print(f"Imported {len(rows)} examples; trained on {sum(model.counts.values())}:")
    for category, n in sorted(model.counts.items(), key=lambda x: -x[1]):
        print(f"  {category:<12} {n:>5}")
    f1 = "n/a (too few examples)" if model.cv_macro_f1 is None else f"{model.cv_macro_f1:.3f}"
    single = sum(1 for n in model.counts.values() if n < 2)
    print(f"5-fold cross-validated macro-F1: {f1}"
          + (f" (the {single} categories with a single example left out of it)" if single else ""))
    if model.cv_group_macro_f1 is not None:
        print(f"5-fold cross-validated macro-F1 of their first-level classes: {model.cv_group_macro_f1:.3f}")
    print(f"Model written to {router.model_dir / routing.MODEL_FILE}; running servers load it within seconds.")
    return 0


def cmd_route_classify(args, config) -> int:
    import json

    from casework import routing

    texts = _inputs(args.text, args.file, "govchat route classify: give a TEXT or --file F")
    if texts is None:
        return 2

    async def load(db):
        router = routing.Router(db, config.var_dir / "route")
        await router.start()     # the stored model, or one trained now from the stored examples
        return router

    router = _with_db(config, load)
    if router.model is None:
        print("govchat route classify: no routing examples yet; train with govchat route train FILE",
              file=sys.stderr)
        return 2
    for text in texts:
        print(json.dumps(router.classify(text, args.district).as_json(), ensure_ascii=False), flush=True)
    return 0


def cmd_route_keyword(args, config) -> int:
    from casework import training

    if args.keyword_command == "add":
        try:
            _with_session(config, lambda s: training.add_keyword(s, args.keyword, args.category, args.note))
        except ValueError as exc:
            print(f"govchat route keyword add: {exc}", file=sys.stderr)
            return 2
        print(f"Rule added: a message containing “{args.keyword}” goes to {args.category}.")
    elif args.keyword_command == "list":
        async def rows(session):
            return [(k.keyword, k.category, k.enabled, k.note) for k in await training.list_keywords(session)]
        for keyword, category, enabled, note in _with_session(config, rows):
            print(f"含“{keyword}”→{category}{'' if enabled else '  (disabled)'}{'  # ' + note if note else ''}")
    else:
        n = _with_session(config, lambda s: training.remove_keyword(s, args.keyword, args.category))
        if not n:
            print(f"govchat route keyword remove: no rule for “{args.keyword}”", file=sys.stderr)
            return 2
        print(f"Removed {n} rule{'s' if n > 1 else ''} for “{args.keyword}”.")
    return 0


def cmd_directory_import(args, config) -> int:
    from casework import api as casework

    load = casework.import_units if args.command == "units" else casework.import_categories
    try:
        n = _with_session(config, lambda session: load(session, Path(args.file)))
    except casework.DirectoryRejected as exc:
        return _print_rejected(f"{args.command} import", args.file, exc)
    print(f"Imported {n} {args.command}.")
    return 0


def _add_route_commands(sub) -> None:
    route = sub.add_parser("route", help="routing complaints and reports to units")
    route_sub = route.add_subparsers(dest="route_command", required=True)
    train = route_sub.add_parser("train", help="import examples (.csv/.xlsx: message, category), "
                                 "replacing the imported ones, and train")
    train.add_argument("file")
    train.set_defaults(func=cmd_route_train)
    classify = route_sub.add_parser("classify", help="route messages; one JSON line per message")
    classify.add_argument("text", nargs="?")
    classify.add_argument("--file", help="one message per line")
    classify.add_argument("--district", help="the district a form gave (wins over the text)")
    classify.set_defaults(func=cmd_route_classify)
    keyword = route_sub.add_parser("keyword", help="keyword rules: a message containing it goes to a category")
    keyword_sub = keyword.add_subparsers(dest="keyword_command", required=True)
    k_add = keyword_sub.add_parser("add", help="add (or enable) a rule")
    k_add.add_argument("keyword")
    k_add.add_argument("category")
    k_add.add_argument("--note", default="")
    keyword_sub.add_parser("list", help="list the rules")
    k_remove = keyword_sub.add_parser("remove", help="remove a keyword's rules")
    k_remove.add_argument("keyword")
    k_remove.add_argument("--category", help="only the rule to this category")
    keyword.set_defaults(func=cmd_route_keyword)
    for name, columns in (("units", "unit_id, unit_name, parent, categories, regions"),
                          ("categories", "一级分类, 二级分类, 三级分类")):
        group = sub.add_parser(name, help=f"the {name} routing uses")
        group_sub = group.add_subparsers(dest=f"{name}_command", required=True)
        imp = group_sub.add_parser("import", help=f"import a .csv or .xlsx ({columns}); checked whole")
        imp.add_argument("file")
        imp.set_defaults(func=cmd_directory_import)



def cmd_spotcheck_draw(args, config) -> int:
    from casework import spotcheck

    try:
        check = _with_session(config, lambda session: spotcheck.draw(
            session, args.quarter, args.per_unit, args.seed, actor=args.actor))
    except spotcheck.SpotCheckError as exc:
        print(f"govchat spotcheck draw: {exc}", file=sys.stderr)
        return 2
    listed = {row.check.id: row for row in _with_session(config, spotcheck.list_checks)}
    print(f"Spot check {check.id}: {check.quarter} ({check.period_start} to {check.period_end}), "
          f"{listed[check.id].total} items, up to {check.per_unit} per unit and per channel")
    print(f"seed: {check.seed}   (the same seed over the same data draws the same sample)")
    return 0


def cmd_spotcheck_list(args, config) -> int:
    from casework import spotcheck

    rows = _with_session(config, spotcheck.list_checks)
    if not rows:
        print("No spot checks.")
        return 0
    print(f"{'id':>4}  {'quarter':<7}  {'seed':>10}  {'per unit':>8}  {'checked':>9}  {'problems':>8}  by")
    for row in rows:
        c = row.check
        print(f"{c.id:>4}  {c.quarter:<7}  {c.seed:>10}  {c.per_unit:>8}  "
              f"{f'{row.checked}/{row.total}':>9}  {row.problems:>8}  {c.created_by}")
    return 0


def cmd_spotcheck_export(args, config) -> int:
    from casework.spotcheck import SpotCheckError
    from casework.spotcheck_export import FORMATS, export

    fmt = Path(args.out).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        print("govchat spotcheck export: --out must end in .xlsx or .csv", file=sys.stderr)
        return 2
    try:
        data = _with_session(config, lambda session: export(session, args.id, fmt, actor=args.actor))
    except SpotCheckError as exc:
        print(f"govchat spotcheck export: {exc}", file=sys.stderr)
        return 2
    Path(args.out).write_bytes(data)
    print(f"Wrote {args.out}")
    return 0


def _add_spotcheck_commands(sub) -> None:
    spot = sub.add_parser("spotcheck", help="quarterly spot checks (art. 32): draw, list, export")
    spot_sub = spot.add_subparsers(dest="spotcheck_command", required=True)
    draw = spot_sub.add_parser("draw", help="draw N cases per unit and N conversations per channel")
    draw.add_argument("--quarter", required=True, help="e.g. 2026Q3 (China dates)")
    draw.add_argument("--per-unit", type=int, required=True, help="items of each kind per unit")
    draw.add_argument("--seed", type=int, help="repeat an earlier draw (default: a new random seed)")
    draw.add_argument("--as", dest="actor", default="cli", metavar="USER", help="recorded as the drawer")
    draw.set_defaults(func=cmd_spotcheck_draw)
    spot_sub.add_parser("list", help="spot checks with their seed and progress").set_defaults(
        func=cmd_spotcheck_list)
    exp = spot_sub.add_parser("export", help="items and their trails for the inspector")
    exp.add_argument("id", type=int)
    exp.add_argument("--out", required=True, metavar="FILE", help=".xlsx (two sheets) or .csv")
    exp.add_argument("--as", dest="actor", default="cli", metavar="USER", help="recorded in the audit log")
    exp.set_defaults(func=cmd_spotcheck_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="govchat", description="govchat citizen-service assistant")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve (and supervise Rasa) until Ctrl-C")
    run.add_argument("--port", type=int, help="port to listen on (default GOVCHAT_PORT or 8080)")
    run.add_argument("--no-rasa", action="store_true", help="do not start Rasa (use RASA_URL)")
    run.set_defaults(func=cmd_run)

    setup = sub.add_parser("setup", help="train the model if needed, migrate, load first-start content")
    setup.add_argument("--no-train", action="store_true")
    setup.set_defaults(func=cmd_setup)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply all migrations")
    rev = db_sub.add_parser("revision", help="write a new migration from the models (developers)")
    rev.add_argument("-m", "--message", required=True)
    db.set_defaults(func=cmd_db)

    back = sub.add_parser("backup", help="copy the whole database into FILE (safe while serving)")
    back.add_argument("file")
    back.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="replace the database with a backup FILE "
                                             "(stop the server first)")
    restore.add_argument("file")
    restore.add_argument("--force", action="store_true",
                         help="overwrite a database that holds data")
    restore.set_defaults(func=cmd_restore)

    users = sub.add_parser("users", help="staff accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="create an account")
    add.add_argument("username")
    add.add_argument("--role", required=True,
                     choices=["admin", "reviewer", "agent", "dispatcher", "unit_handler"])
    add.add_argument("--unit", help="the unit id of a unit_handler")
    add.add_argument("--name", help="display name")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of generating one")
    add.set_defaults(func=cmd_users_add)
    for name, text in (("deactivate", "deactivate an account and end its sessions at once"),
                       ("activate", "reactivate an account")):
        toggle = users_sub.add_parser(name, help=text)
        toggle.add_argument("username")
        toggle.set_defaults(func=cmd_users_set_active)
    users_sub.add_parser("list", help="every account: role, unit, active, last login") \
        .set_defaults(func=cmd_users_list)

    kb = sub.add_parser("kb", help="the Q&A base")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    imp = kb_sub.add_parser("import", help="import a .csv or .xlsx (id, question, similar_questions, "
                            "answer, category, unit; optional tags, valid_from, valid_to, notice_until)")
    imp.add_argument("file")
    imp.add_argument("--publish", action="store_true", help="publish at once, approved by the importer")
    imp.set_defaults(func=cmd_kb_import)

    exp = kb_sub.add_parser("export", help="write every entry's latest version as .csv or .xlsx "
                            "(re-importable)")
    exp.add_argument("file")
    exp.set_defaults(func=cmd_kb_export)

    gaps = kb_sub.add_parser("gaps", help="unanswered questions, grouped, with the nearest entry")
    gaps.add_argument("--days", type=int, default=30, help="look back this many days (default 30)")
    gaps.add_argument("--min-count", type=int, default=1)
    gaps.add_argument("--json", action="store_true", help="one JSON object per group")
    gaps.set_defaults(func=cmd_kb_gaps)

    hits = kb_sub.add_parser("hits", help="answers and 👍/👎 per entry and period (Shanghai time)")
    hits.add_argument("--period", choices=["day", "week", "month", "quarter"], default="month")
    hits.add_argument("--days", type=int, default=30, help="look back this many days (default 30)")
    hits.add_argument("--json", action="store_true", help="one JSON object per entry and period")
    hits.set_defaults(func=cmd_kb_hits)

    reindex = kb_sub.add_parser("reindex", help="build the search index now, with a progress bar")
    reindex.add_argument("--full", action="store_true",
                         help="forget the stored embeddings and embed every question again")
    reindex.set_defaults(func=cmd_kb_reindex)

    search = kb_sub.add_parser("search", help="search the published Q&A base; one JSON line per query")
    search.add_argument("query", nargs="?")
    search.add_argument("--file", help="one query per line")
    search.add_argument("--k", type=int, default=5, help="hits per query (default 5)")
    search.set_defaults(func=cmd_kb_search)

    rasa = sub.add_parser("rasa", help="the Rasa model")
    rasa_sub = rasa.add_subparsers(dest="rasa_command", required=True)
    train = rasa_sub.add_parser("train", help="train the model if bot/rasa changed")
    train.add_argument("--force", action="store_true")
    train.set_defaults(func=cmd_rasa_train)

    wechat = sub.add_parser("wechat", help="WeChat Official Accounts")
    wechat_sub = wechat.add_subparsers(dest="wechat_command", required=True)
    account = wechat_sub.add_parser("account", help="the accounts served at /wechat/NAME")
    account_sub = account.add_subparsers(dest="account_command", required=True)
    wx_add = account_sub.add_parser("add", help="add an account (NAME 'default' is plain /wechat)")
    wx_add.add_argument("name")
    wx_add.add_argument("--app-id", required=True, help="AppID (开发者ID)")
    wx_add.add_argument("--secret", required=True, help="AppSecret (开发者密码)")
    wx_add.add_argument("--token", required=True, help="the Token set in the WeChat console")
    wx_add.add_argument("--aes-key", help="EncodingAESKey (43 characters), for compatible/safe mode")
    wx_add.add_argument("--mode", choices=["plaintext", "compatible", "safe"],
                        help="message encryption mode (default: safe with --aes-key, else plaintext)")
    wx_add.set_defaults(func=cmd_wechat_account_add)
    account_sub.add_parser("list", help="list accounts (secrets are never shown)").set_defaults(
        func=cmd_wechat_account_list)
    wx_remove = account_sub.add_parser("remove", help="remove an account")
    wx_remove.add_argument("name")
    wx_remove.set_defaults(func=cmd_wechat_account_remove)
    simulate = wechat_sub.add_parser("simulate", help="chat with a running server as WeChat would")
    simulate.add_argument("--account", default="default", help="account name (default: the /wechat one)")
    simulate.add_argument("--url", help="the server (default http://127.0.0.1:GOVCHAT_PORT)")
    simulate.add_argument("--user", default="oSimulatedCitizen001", help="the citizen's openid")
    simulate.add_argument("--wait", type=float, default=30.0,
                          help="seconds to wait for late replies (customer-service messages) after "
                               "the server answered success (default 30; 0: do not wait)")
    simulate.set_defaults(func=cmd_wechat_simulate)

    calendar = sub.add_parser("calendar", help="working days: statutory holidays and overrides")
    calendar_sub = calendar.add_subparsers(dest="calendar_command", required=True)
    cal_show = calendar_sub.add_parser("show", help="holidays and make-up workdays of a year")
    cal_show.add_argument("year", type=int)
    cal_show.set_defaults(func=cmd_calendar_show)
    cal_over = calendar_sub.add_parser("override", help="make a day a working day or a holiday")
    cal_over.add_argument("date", help="YYYY-MM-DD")
    cal_kind = cal_over.add_mutually_exclusive_group(required=True)
    cal_kind.add_argument("--workday", action="store_true", default=None)
    cal_kind.add_argument("--holiday", dest="workday", action="store_false")
    cal_kind.add_argument("--remove", action="store_true", help="back to the statutory calendar")
    cal_over.add_argument("--note", default="", help="why (e.g. the notice's number)")
    cal_over.set_defaults(func=cmd_calendar_override)
    _add_cases_commands(sub)

    wx_menu = wechat_sub.add_parser("menu", help="push a custom menu (自定义菜单) file, or --show "
                                    "the current one")
    wx_menu.add_argument("file", nargs="?", help="the menu as WeChat's JSON ({\"button\": [...]}); "
                         "channels/wechat/menu.json is the bundled one")
    wx_menu.add_argument("--account", default="default", help="account name (default: the /wechat one)")
    wx_menu.add_argument("--check", action="store_true", help="check the file only, push nothing")
    wx_menu.add_argument("--show", action="store_true", help="print the menu the account shows now")
    wx_menu.set_defaults(func=cmd_wechat_menu)

    _add_route_commands(sub)
    _add_report_commands(sub)
    _add_spotcheck_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"govchat: configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config.log_level, config.log_format)
    return args.func(args, config)


if __name__ == "__main__":
    sys.exit(main())
