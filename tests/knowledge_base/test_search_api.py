"""`GET /api/kb/search` and `govchat kb search` print the same decision and hits."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from knowledge_base import api as kb
from server.app import create_app
from server.config import Config

GOVCHAT = str(Path(sys.executable).parent / "govchat")


@pytest.fixture
async def demo_db(db):
    async with db.session() as session, session.begin():
        await kb.import_rows(session, kb.read_table(kb.DEMO_QA), actor="test", publish=True)
    return db


@pytest.fixture
async def client(demo_db, tmp_path):
    config = Config(database_url=demo_db.url, rasa_manage=False, var_dir=tmp_path, embedder="none")
    async with TestClient(TestServer(create_app(config))) as client:
        yield client


async def test_http_search_returns_the_decision_and_ranked_hits(client):
    resp = await client.get("/api/kb/search", params={"q": "社保卡丢了怎么补办", "k": "3"})
    body = await resp.json()
    assert resp.status == 200
    assert body["query"] == "社保卡丢了怎么补办" and body["decision"] == "answer"
    assert body["hits"][0]["id"] == "SB-001" and len(body["hits"]) == 3
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("params, status", [({}, 400), ({"q": "x" * 501}, 413), ({"q": "社保", "k": "0"}, 400),
                                            ({"q": "社保", "k": "many"}, 400)])
async def test_http_search_refuses_bad_requests(client, params, status):
    resp = await client.get("/api/kb/search", params=params)
    assert resp.status == status and (await resp.json())["error"]


async def test_cli_search_prints_one_json_line_per_query(demo_db, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("社保卡丢了怎么补办\n\n今天天气怎么样\n", encoding="utf-8")
    result = subprocess.run([GOVCHAT, "kb", "search", "--file", str(queries), "--k", "2"],
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": demo_db.url, "GOVCHAT_EMBEDDER": "none"})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["query"], x["decision"]) for x in lines] == [("社保卡丢了怎么补办", "answer"), ("今天天气怎么样", "none")]
    assert lines[0]["hits"][0] == {"id": "SB-001", "question": "社保卡丢了怎么补办？", "score": lines[0]["hits"][0]["score"]}


async def test_a_publish_elsewhere_reaches_the_running_server_within_seconds(demo_db, tmp_path):
    import asyncio

    from knowledge_base import workflow as wf

    config = Config(database_url=demo_db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                    kb_refresh_seconds=0.5)
    async with TestClient(TestServer(create_app(config))) as client:
        before = await (await client.get("/api/kb/search", params={"q": "社保卡丢了怎么补办"})).json()
        assert before["hits"][0]["id"] == "SB-001"
        # Another process (the CLI, another instance) retires the entry.
        async with demo_db.session() as s, s.begin():
            await wf.retire(s, "SB-001", "admin")
        for _ in range(40):
            after = await (await client.get("/api/kb/search", params={"q": "社保卡丢了怎么补办"})).json()
            if after["hits"][0]["id"] != "SB-001":
                break
            await asyncio.sleep(0.25)
        assert after["hits"][0]["id"] != "SB-001"
