"""The production compose file (no Docker engine here: checked, not run)."""
import re
from pathlib import Path

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


def _config_env_names() -> set[str]:
    source = (ROOT / "server/config.py").read_text()
    return set(re.findall(r'env(?:\.get\(|\[)\s*"([A-Z0-9_]+)"', source)) | set(
        re.findall(r'_number\(env, "([A-Z0-9_]+)"', source))


def test_every_setting_given_to_govchat_is_one_the_server_reads():
    names = _config_env_names()
    assert {"DATABASE_URL", "GOVCHAT_PORT", "RASA_URL"} <= names      # the scan itself works
    given = set(compose()["services"]["govchat"]["environment"])
    assert given - names == set(), f"not read by server/config.py: {sorted(given - names)}"


def test_rasa_in_compose_runs_through_the_launcher_govchat_run_uses():
    from server.config import load_config
    from server.rasa_model import rasa_serve_command

    rasa = compose()["services"]["rasa"]
    launcher = Path(rasa_serve_command(load_config())[-1])
    mounted = {v.split(":")[1]: v.split(":")[0] for v in rasa["volumes"]}
    assert rasa["entrypoint"][0] == "python"
    assert (ROOT / mounted[rasa["entrypoint"][1]]).resolve() == launcher.resolve()
    assert rasa["command"][0] == "run"


def test_ports_agree_between_compose_dockerfile_and_settings():
    services = compose()["services"]
    govchat = services["govchat"]
    port = govchat["environment"]["GOVCHAT_PORT"]
    assert f"{port}:{port}" in govchat["ports"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(govchat["healthcheck"]["test"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE {port}$", dockerfile, re.M)
    rasa_port = govchat["environment"]["RASA_URL"].rsplit(":", 1)[1]
    command = services["rasa"]["command"]
    assert command[command.index("--port") + 1] == rasa_port
    assert f"127.0.0.1:{rasa_port}/" in " ".join(services["rasa"]["healthcheck"]["test"])


def test_the_image_holds_every_package_and_runs_the_cli():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in packages:
        assert re.search(rf"^COPY {package} {package}$", dockerfile, re.M), f"{package} not copied"
    assert project["project"]["scripts"]["govchat"] == "server.cli:main"
    assert re.search(r'^CMD \["govchat", "run"\]$', dockerfile, re.M)
    # Production keeps its files in a volume and loads no demo content.
    govchat = compose()["services"]["govchat"]
    var_dir = govchat["environment"]["GOVCHAT_VAR_DIR"]
    assert any(v.endswith(f":{var_dir}") for v in govchat["volumes"])
    assert govchat["environment"]["GOVCHAT_DEMO_CONTENT"] == "0"


def test_rasa_stores_conversations_in_the_same_postgres_and_locks_in_redis():
    endpoints = yaml.safe_load((ROOT / "deploy/rasa/endpoints.yml").read_text())
    services = compose()["services"]
    assert endpoints["tracker_store"]["url"] == "postgres" and "postgres" in services
    assert endpoints["lock_store"]["url"] == "redis" and "redis" in services
    rasa_env = services["rasa"]["environment"]
    for value in (endpoints["tracker_store"][k] for k in ("db", "username", "password")):
        assert value.strip("${}") in rasa_env


def test_secrets_come_from_the_environment_never_the_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${GOVCHAT_ACTION_TOKEN:?" in text
    for service in compose()["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if any(word in name for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert "${" in str(value), f"{name} is written in the compose file"


def test_every_file_the_server_reads_is_packaged(tmp_path):
    """The image installs the project as a wheel: templates, static files, demo data and
    migrations must be in it (package-data), or the container would miss them."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("govchat-*.whl"))
    inside = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "bot", "knowledge_base", "channels", "casework",
                              "admin", "server"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    # Rasa's project (bot/rasa) is mounted into the Rasa container, not read by the server.
    missing = [f for f in tracked if f not in inside and not f.startswith("bot/rasa/")]
    assert missing == []
