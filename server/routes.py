"""The server's own routes: health."""
from __future__ import annotations

from aiohttp import web

from server.appkeys import DB, KB, RASA, SUPERVISOR


async def healthz(request: web.Request) -> web.Response:
    """ok for each part, or the reason it is not; 503 unless all are ok."""
    app = request.app
    try:
        await app[DB].ping()
        database = "ok"
    except Exception as exc:  # any failure is the answer here, not an error
        database = f"unavailable ({type(exc).__name__})"
    rasa = await app[RASA].ping()
    supervisor = app.get(SUPERVISOR)
    if supervisor is not None:
        if rasa == "ok":
            supervisor.mark_serving()
        elif supervisor.state in ("starting", "restarting"):
            rasa = f"{supervisor.state} (model loading)"
    parts = {"server": "ok", "database": database, "rasa": rasa}
    healthy = all(v == "ok" for v in parts.values())
    body = {"status": "ok" if healthy else "degraded", **parts,
            "knowledge_base": {"entries": app[KB].size}}
    if supervisor is not None:
        body["rasa_process"] = {"state": supervisor.state, "pid": supervisor.pid,
                                "restarts": supervisor.restarts}
    return web.json_response(body, status=200 if healthy else 503)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
