"""Console fixtures: the admin pages on a small app over the real database, and signed-in clients."""
from __future__ import annotations

import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from admin.api import create_user
from admin.auth import admin_middleware
from admin.models import User
from admin.routes import setup_routes
from casework.models import Unit
from server.appkeys import CONFIG, DB
from server.config import Config
from server.errors import error_middleware, security_headers

PASSWORD = "Correct-horse-42"
UNIT = "JH-RSJ"


def console_app(db, **settings) -> web.Application:
    """Just the consoles, assembled as server/app.py assembles them (same middlewares)."""
    app = web.Application(middlewares=[security_headers, error_middleware, admin_middleware])
    app[CONFIG] = Config(database_url=db.url, rasa_manage=False, embedder="none", **settings)
    app[DB] = db
    setup_routes(app)
    return app


@pytest.fixture
async def make_client(db):
    clients = []

    async def make(**settings) -> TestClient:
        client = TestClient(TestServer(console_app(db, **settings)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client) -> TestClient:
    return await make_client()


async def add_user(db, username: str, role: str = "agent", *, must_change: bool = False,
                   display_name: str = "", unit_id: str | None = None) -> User:
    async with db.session() as session, session.begin():
        if role == "unit_handler":
            unit_id = unit_id or UNIT
            if await session.get(Unit, unit_id) is None:
                session.add(Unit(id=unit_id, name=f"单位{unit_id}"))
                await session.flush()
        user, _ = await create_user(session, username=username, role=role, actor="test",
                                    password=PASSWORD, unit_id=unit_id, display_name=display_name)
        await session.execute(update(User).where(User.id == user.id)
                              .values(must_change_password=must_change))
    return user


async def login(client: TestClient, username: str, password: str = PASSWORD):
    return await client.post("/admin/login", data={"username": username, "password": password},
                             allow_redirects=False)


async def csrf_of(client: TestClient, path: str = "/admin/password") -> str:
    resp = await client.get(path)
    assert resp.status == 200, (resp.status, await resp.text())
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', await resp.text()).group(1)


async def signed_in(make_client, db, username: str, role: str = "agent", **kwargs):
    """A client signed in as a new account of `role`, and its CSRF token."""
    await add_user(db, username, role, **kwargs)
    client = await make_client()
    resp = await login(client, username)
    assert resp.status == 303, await resp.text()
    return client, await csrf_of(client)
