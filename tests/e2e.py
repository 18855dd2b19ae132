"""Run the real service — `govchat run`: aiohttp server + supervised Rasa — on loopback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.conftest import ROOT, free_port

START_TIMEOUT = 180      # Rasa loads TensorFlow and the model; a shared machine can be slow


@dataclass
class Service:
    proc: subprocess.Popen
    port: int
    database_url: str
    var_dir: Path
    output: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 60) -> str:
        rasa_log = self.var_dir / "log" / "rasa.log"
        text = self.output.read_text(errors="replace").splitlines()[-lines:]
        if rasa_log.exists():
            text += ["--- rasa.log ---"] + rasa_log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)


def start_service(database_url: str, var_dir: Path, extra_env: dict | None = None) -> Service:
    port, rasa_port = free_port(), free_port()
    env = dict(os.environ, DATABASE_URL=database_url, GOVCHAT_PORT=str(port),
               RASA_PORT=str(rasa_port), GOVCHAT_VAR_DIR=str(var_dir),
               RASA_MODEL_DIR=str(ROOT / "var" / "models"), **(extra_env or {}))
    output = var_dir / "govchat.out"
    var_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "govchat"), "run"], cwd=ROOT, env=env,
        stdout=open(output, "wb"), stderr=subprocess.STDOUT)
    return Service(proc, port, database_url, var_dir, output)


async def wait_healthy(service: Service, timeout: float = START_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if service.proc.poll() is not None:
                raise RuntimeError(f"govchat run exited with {service.proc.returncode}:\n{service.log_tail()}")
            try:
                async with http.get(service.url + "/healthz") as resp:
                    last = await resp.json()
                    if resp.status == 200:
                        return last
            except aiohttp.ClientError:
                pass
            await _sleep(1)
    raise TimeoutError(f"not healthy after {timeout}s (last: {last}):\n{service.log_tail()}")


async def _sleep(seconds: float) -> None:
    import asyncio
    await asyncio.sleep(seconds)


def stop_service(service: Service, timeout: float = 30) -> int:
    """Ctrl-C, as a person at the terminal would."""
    if service.proc.poll() is None:
        service.proc.send_signal(signal.SIGINT)
        try:
            return service.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            service.proc.kill()
            service.proc.wait()
            raise
    return service.proc.returncode


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


class Chat:
    """A citizen on the web chat."""

    def __init__(self, http: aiohttp.ClientSession, base: str, sender: str) -> None:
        self.http, self.base, self.sender = http, base, sender
        self.count = 0

    async def send(self, text: str, expect: int = 200, message_id: str | None = None) -> dict:
        self.count += 1
        body = {"sender": self.sender, "text": text,
                "message_id": message_id or f"{self.sender}-{self.count}"}
        async with self.http.post(self.base + "/api/chat", json=body) as resp:
            data = await resp.json()
            assert resp.status == expect, (resp.status, data)
            return data


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
