"""The HTTP client for the Rasa engine (its REST channel), with a hard timeout."""
from __future__ import annotations

import asyncio

import aiohttp


class RasaUnavailable(Exception):
    """Rasa did not answer in time, refused the connection, or failed."""


class RasaClient:
    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, sender: str, text: str, metadata: dict | None = None) -> list[dict]:
        """Send one citizen message; returns Rasa's messages ({"text"} or {"custom"})."""
        assert self._http is not None, "RasaClient.start() was not called"
        payload = {"sender": sender, "message": text, "metadata": metadata or {}}
        try:
            async with self._http.post(
                f"{self.base_url}/webhooks/rest/webhook", json=payload,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                if resp.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise RasaUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(body, list):
            raise RasaUnavailable("Rasa answered something other than a list of messages")
        return body

    async def ping(self) -> str:
        """'ok', or the reason Rasa is not serving."""
        assert self._http is not None
        try:
            async with self._http.get(
                f"{self.base_url}/", timeout=aiohttp.ClientTimeout(total=2)
            ) as resp:
                return "ok" if resp.status == 200 else f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return f"unreachable ({type(exc).__name__})"
