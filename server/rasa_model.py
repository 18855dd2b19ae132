"""The trained Rasa model: retrained only when bot/rasa/ changed (content hash)."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from server.config import Config

log = logging.getLogger(__name__)
_IGNORED = {".rasa", "models", "results", "__pycache__"}


def project_hash(project: Path) -> str:
    """A hash of every file under the Rasa project that training reads."""
    digest = hashlib.sha256()
    for path in sorted(project.rglob("*")):
        rel = path.relative_to(project)
        if path.is_file() and not (set(rel.parts) & _IGNORED):
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path(config: Config) -> Path:
    return config.model_dir / f"govchat-{project_hash(config.rasa_project)}.tar.gz"


def rasa_executable(config: Config) -> Path:
    return config.rasa_venv / "bin" / "rasa"


def rasa_serve_command(config: Config) -> list[str]:
    """`rasa` as served: through server/rasa_launch.py, which trims Rasa's per-message cost."""
    return [str(config.rasa_venv / "bin" / "python"), str(Path(__file__).with_name("rasa_launch.py"))]


def rasa_env() -> dict[str, str]:
    """Rasa's environment: no telemetry calls home, quiet TensorFlow."""
    env = dict(os.environ)
    env.update(RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONWARNINGS="ignore", SQLALCHEMY_SILENCE_UBER_WARNING="1")
    return env


class ModelMissing(RuntimeError):
    pass


def ensure_model(config: Config, force: bool = False) -> Path:
    """Return the model for the current project, training it first if needed."""
    target = model_path(config)
    if target.exists() and not force:
        return target
    rasa = rasa_executable(config)
    if not rasa.exists():
        raise ModelMissing(f"Rasa is not installed at {rasa}; run `make setup` first")
    work = config.var_dir / "rasa"
    work.mkdir(parents=True, exist_ok=True)
    config.model_dir.mkdir(parents=True, exist_ok=True)
    project = config.rasa_project
    print(f"Training the Rasa model (bot/rasa changed) → {target.name} …", flush=True)
    cmd = [str(rasa), "train", "--config", str(project / "config.yml"),
           "--domain", str(project / "domain.yml"), "--data", str(project / "data"),
           "--out", str(config.model_dir), "--fixed-model-name", target.name.removesuffix(".tar.gz")]
    log_file = work / "train.log"
    with open(log_file, "w") as out:
        result = subprocess.run(cmd, cwd=work, env=rasa_env(), stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not target.exists():
        tail = log_file.read_text(errors="replace").splitlines()[-30:]
        raise ModelMissing("Rasa training failed:\n" + "\n".join(tail))
    _prune(config.model_dir, keep=target)
    return target


def _prune(model_dir: Path, keep: Path, count: int = 3) -> None:
    """Keep the newest few models so a rollback of bot/rasa/ does not need a retrain."""
    models = sorted(model_dir.glob("govchat-*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [m for m in models if m != keep][count - 1:]:
        old.unlink(missing_ok=True)
    shutil.rmtree(model_dir / ".rasa", ignore_errors=True)
