"""server/rasa_launch.py in Rasa's own environment: the action-response check still refuses what
Rasa refuses, and the SQLite tracker store runs in WAL mode."""
import json
import subprocess
from pathlib import Path

import pytest

from server.config import load_config
from server.rasa_model import rasa_env, rasa_serve_command

PYTHON, LAUNCHER = rasa_serve_command(load_config())

CHECK = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("rasa_launch", sys.argv[1])
rasa_launch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rasa_launch)
rasa_launch.validate_with_one_validator()
rasa_launch.sqlite_in_wal_mode()
import jsonschema
from rasa.core.actions.action import RemoteAction
import sqlalchemy as sa

action = RemoteAction.__new__(RemoteAction)
out = {"valid": action._validate_action_result(
    {"events": [{"event": "slot", "name": "case_no", "value": "ZJ1"}], "responses": [{"text": "好"}]})}
for bad in ({"events": "not a list"}, {"events": [{"event": "no_such_event"}]},
            {"responses": ["not an object"]}):
    try:
        action._validate_action_result(bad)
        out.setdefault("accepted", []).append(bad)
    except jsonschema.ValidationError as error:
        out.setdefault("refused", []).append(error.message)
engine = sa.create_engine("sqlite:///" + sys.argv[2])
with engine.connect() as connection:
    out["journal"] = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    out["synchronous"] = connection.exec_driver_sql("PRAGMA synchronous").scalar()
print(json.dumps(out, ensure_ascii=False))
"""


@pytest.mark.skipif(not Path(PYTHON).exists(),
                    reason="Rasa's environment is not installed (make setup)")
def test_the_launcher_keeps_rasas_response_check_and_puts_the_tracker_in_wal(tmp_path):
    done = subprocess.run([PYTHON, "-c", CHECK, LAUNCHER, str(tmp_path / "t.db")],
                          env=rasa_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["valid"] is True
    assert "accepted" not in out and len(out["refused"]) == 3
    assert all("Failed to validate Action server response" in m for m in out["refused"])
    assert out["journal"] == "wal" and out["synchronous"] == 1      # 1 = NORMAL
