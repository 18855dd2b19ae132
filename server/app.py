"""The app factory: the CLI, the dev server and the tests all build the app here."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from admin.auth import admin_middleware
from admin.routes import setup_routes as admin_routes
from bot.actions import Services, make_executor
from bot.actions.faq import answer_without_rasa
from bot.gateway import Gateway
from bot.rasa_client import RasaClient
from bot.routes import setup_routes as bot_routes
from admin.report_pages import report_warmer
from casework.jobs import job_context as case_jobs
from casework.routes import router_context, setup_routes as casework_routes
from channels.webchat import setup_routes as webchat_routes
from channels.wechat.delivery import enqueue_orphans as wechat_orphans
from channels.wechat.delivery import worker_context as wechat_delivery
from channels.wechat.media import fetcher_context as wechat_media
from channels.wechat.routes import setup_routes as wechat_routes
from knowledge_base.routes import setup_routes as kb_routes
from knowledge_base.api import KnowledgeBase
from knowledge_base.vectors import progress_logger
from knowledge_base.settings import load_settings
from server.appkeys import CONFIG, DB, EXECUTOR, GATEWAY, KB, RASA, ROUTER, SUPERVISOR
from server.config import Config
from server.db import Database
from server.errors import error_middleware, security_headers
from server.logs import request_id
from server.monitoring import setup_routes as metrics_routes
from server.outbox import build_outbox
from server.routes import setup_routes as server_routes
from server.supervisor import RasaSupervisor

log = logging.getLogger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    app[DB] = Database(app[CONFIG].database_url)
    yield
    await app[DB].dispose()


async def _knowledge_base(app: web.Application) -> AsyncIterator[None]:
    app[KB] = KnowledgeBase(app[DB], load_settings(app[CONFIG].embedder), app[CONFIG].var_dir / "kb-index")
    await app[KB].refresh(progress=progress_logger())
    log.info("Q&A base: %d published entries", app[KB].size)
    watcher = asyncio.create_task(app[KB].watch(app[CONFIG].kb_refresh_seconds), name="kb-watch")
    yield
    watcher.cancel()


async def _bot(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    app[RASA] = RasaClient(config.rasa_url, config.rasa_timeout)
    await app[RASA].start()
    app[EXECUTOR] = make_executor(Services(db=app[DB], kb=app[KB], router=app[ROUTER],
                                           deadline_days=config.case_deadline_days))
    app[GATEWAY] = Gateway(app[DB], app[RASA], max_chars=config.max_message_chars,
                           rate_limit=config.rate_limit_per_minute,
                           max_in_flight=config.max_in_flight,
                           without_rasa=partial(answer_without_rasa, app[KB]))
    yield
    await app[RASA].close()


RECOVERY_INTERVAL = 10.0     # seconds between looks for messages a dead server left unanswered


async def _recovery(app: web.Application) -> AsyncIterator[None]:
    """Answer messages stored by a server that died before answering them (a WeChat message it
    had already said `success` to is never re-sent) and deliver the replies on their channel;
    queue late WeChat replies such a server stored but did not queue. Both read recent messages
    through indexes of their own (bot/models.py), every RECOVERY_INTERVAL."""
    outbox = build_outbox(app[DB])

    async def loop() -> None:
        while True:
            try:
                for conv, outcome in await app[GATEWAY].recover():
                    ids = [reply.id for reply in outcome.replies if reply.id is not None]
                    if ids and (queue := outbox.queues.get(conv.channel)) is not None:
                        await queue(app[DB], conv, ids)
                await wechat_orphans(app[DB], app[CONFIG].wechat_reply_budget)
            except Exception:       # the database may be away; the messages wait
                log.exception("could not answer the messages left unanswered")
            await asyncio.sleep(RECOVERY_INTERVAL)

    task = asyncio.create_task(loop(), name="message-recovery")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def action_url(config: Config) -> str:
    """Where a Rasa on this machine reaches our action endpoint."""
    v4 = any(":" not in h for h in config.hosts)
    host = "127.0.0.1" if v4 else "[::1]"
    return f"http://{host}:{config.port}/rasa/webhook"


async def _rasa_process(app: web.Application) -> AsyncIterator[None]:
    supervisor = RasaSupervisor(app[CONFIG], action_url(app[CONFIG]))
    app[SUPERVISOR] = supervisor
    await supervisor.start()
    yield
    await supervisor.stop()


def create_app(config: Config) -> web.Application:
    # admin_middleware guards everything under /admin (session, CSRF, role) before any handler;
    # request_id is outermost so every response, error pages too, carries the id.
    app = web.Application(middlewares=[request_id, security_headers, error_middleware,
                                       admin_middleware],
                          client_max_size=1024 * 1024)
    app[CONFIG] = config
    # The WeChat delivery worker outlives wechat_routes' wait for late answers at shutdown.
    # The router after the Q&A base, whose embedder it shares, and before the bot's actions.
    app.cleanup_ctx.extend([_database, _knowledge_base, router_context, _bot, wechat_delivery,
                            wechat_media, case_jobs, _recovery])
    if config.rasa_manage:
        app.cleanup_ctx.append(_rasa_process)
    # The report page's default view, recomputed in the background (casework/report_cache.py).
    app.cleanup_ctx.append(report_warmer)
    server_routes(app)
    metrics_routes(app)
    bot_routes(app)
    webchat_routes(app)
    wechat_routes(app)
    kb_routes(app)
    casework_routes(app)
    admin_routes(app)
    return app
