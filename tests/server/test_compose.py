"""The production compose file (no Docker engine here: checked, not run)."""
import re

import yaml

from tests.conftest import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_has_a_healthcheck():
    services = compose()["services"]
    assert {"postgres", "rasa", "govchat"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_rasa_is_the_official_image_of_the_version_we_train_with():
    rasa = compose()["services"]["rasa"]
    pinned = re.search(r"^rasa==(\S+)$", (ROOT / "bot/rasa/requirements.txt").read_text(), re.M).group(1)
    assert rasa["image"] == f"rasa/rasa:{pinned}"
    assert any(v.startswith("./var/models:") for v in rasa["volumes"])


def test_rasa_calls_actions_on_the_govchat_server_with_the_shared_token():
    endpoints = yaml.safe_load((ROOT / "deploy/rasa/endpoints.yml").read_text())
    assert endpoints["action_endpoint"]["url"] == "http://govchat:8080/rasa/webhook"
    assert endpoints["action_endpoint"]["token"] == "${GOVCHAT_ACTION_TOKEN}"
    govchat = compose()["services"]["govchat"]["environment"]
    assert govchat["RASA_MANAGE"] == "0" and govchat["RASA_URL"] == "http://rasa:5005"
    assert govchat["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "GOVCHAT_ACTION_TOKEN" in govchat
