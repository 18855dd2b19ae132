"""Rasa's action endpoint, served in-process by rasa-sdk's executor."""
from __future__ import annotations

import hmac
import logging

from aiohttp import web
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException

from server.appkeys import CONFIG, EXECUTOR

log = logging.getLogger(__name__)


async def action_webhook(request: web.Request) -> web.Response:
    token = request.query.get("token", "")
    if not hmac.compare_digest(token, request.app[CONFIG].action_token):
        return web.json_response({"error": "bad action token"}, status=403)
    try:
        action_call = await request.json()
    except ValueError:
        return web.json_response({"error": "body is not JSON"}, status=400)
    try:
        result = await request.app[EXECUTOR].run(action_call)
    except ActionExecutionRejection as e:   # a form rejected the input: Rasa predicts again
        return web.json_response({"error": e.message, "action_name": e.action_name}, status=400)
    except ActionNotFoundException as e:
        log.error("Rasa asked for unknown action %s", e.action_name)
        return web.json_response({"error": e.message, "action_name": e.action_name}, status=404)
    except ActionMissingDomainException as e:
        return web.json_response({"error": e.message, "action_name": e.action_name}, status=449)
    return web.json_response(result.model_dump() if result else None)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/rasa/webhook", action_webhook, name="rasa-webhook")
