"""Runs Rasa as a supervised child process: start, health, restart on crash, clean stop.

Rasa lingers for seconds after SIGTERM, so stopping escalates to SIGKILL. The child asks the
kernel to kill it if the server dies first (PR_SET_PDEATHSIG), so no orphan outlives us.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from pathlib import Path

import yaml

from server.config import Config
from server.rasa_model import ModelMissing, model_path, rasa_env, rasa_executable, rasa_serve_command

log = logging.getLogger(__name__)
STOP_GRACE = 5.0          # seconds between SIGTERM and SIGKILL
MAX_BACKOFF = 30.0


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class RasaSupervisor:
    def __init__(self, config: Config, action_url: str) -> None:
        self.config = config
        self.action_url = action_url            # Rasa's action endpoint: our /rasa/webhook
        self.work = config.var_dir / "rasa"
        self.log_path = config.var_dir / "log" / "rasa.log"
        self.state = "stopped"           # stopped, starting, running, restarting, failed
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    def _write_files(self) -> tuple[Path, Path]:
        self.work.mkdir(parents=True, exist_ok=True)
        endpoints = self.work / "endpoints.yml"
        endpoints.write_text(yaml.safe_dump({
            "action_endpoint": {"url": self.action_url, "token": self.config.action_token},
            # Conversation state on disk: a citizen half-way through a form survives a restart.
            "tracker_store": {"type": "SQL", "dialect": "sqlite", "db": str(self.work / "tracker.db")},
        }))
        credentials = self.work / "credentials.yml"
        credentials.write_text("rest: {}\n")
        return endpoints, credentials

    async def start(self) -> None:
        model = model_path(self.config)
        if not model.exists():
            raise ModelMissing(f"no trained Rasa model at {model}; run `make setup` (or `govchat setup`)")
        if not rasa_executable(self.config).exists():
            raise ModelMissing(f"Rasa is not installed at {self.config.rasa_venv}; run `make setup`")
        self._stopping = False
        self._task = asyncio.create_task(self._supervise(model), name="rasa-supervisor")

    async def _spawn(self, model: Path) -> asyncio.subprocess.Process:
        endpoints, credentials = self._write_files()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        try:
            return await asyncio.create_subprocess_exec(
                *rasa_serve_command(self.config), "run", "--model", str(model),
                "--endpoints", str(endpoints), "--credentials", str(credentials),
                "--interface", "127.0.0.1", "--port", str(self.config.rasa_port),
                cwd=self.work, env=rasa_env(), stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT,
                # Own process group: Ctrl-C reaches the server, which then stops Rasa in order.
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        finally:
            out.close()

    async def _supervise(self, model: Path) -> None:
        backoff = 1.0
        while not self._stopping:
            self.state = "starting" if self.restarts == 0 else "restarting"
            self._proc = await self._spawn(model)
            log.info("Rasa started (pid %s), log in %s", self._proc.pid, self.log_path)
            started = asyncio.get_running_loop().time()
            code = await self._proc.wait()
            if self._stopping:
                break
            ran_for = asyncio.get_running_loop().time() - started
            backoff = 1.0 if ran_for > 60 else min(backoff * 2, MAX_BACKOFF)
            self.restarts += 1
            self.state = "restarting"
            log.error("Rasa exited with code %s after %.0f s; restarting in %.0f s (see %s)",
                      code, ran_for, backoff, self.log_path)
            await asyncio.sleep(backoff)
        self.state = "stopped"

    def mark_serving(self) -> None:
        """Called by the health check once Rasa answers HTTP."""
        if self.state in ("starting", "restarting") and self.pid:
            self.state = "running"

    async def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except asyncio.TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            except ProcessLookupError:
                pass
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.state = "stopped"
