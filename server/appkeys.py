"""Typed keys for what the app holds; set up by cleanup contexts in server/app.py."""
from __future__ import annotations

from aiohttp import web
from rasa_sdk.executor import ActionExecutor

from bot.gateway import Gateway
from bot.rasa_client import RasaClient
from casework.report_cache import ReportCache
from casework.routing import Router
from knowledge_base.api import KnowledgeBase
from server.config import Config
from server.db import Database
from server.supervisor import RasaSupervisor

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
KB = web.AppKey("kb", KnowledgeBase)
RASA = web.AppKey("rasa", RasaClient)
SUPERVISOR = web.AppKey("supervisor", RasaSupervisor)
EXECUTOR = web.AppKey("executor", ActionExecutor)
GATEWAY = web.AppKey("gateway", Gateway)
ROUTER = web.AppKey("router", Router)
REPORT_CACHE = web.AppKey("report_cache", ReportCache)
