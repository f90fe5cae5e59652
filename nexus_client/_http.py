"""REST over httpx: authentication, Discord's rate limits honoured, errors converted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

from ._exceptions import ConnectionLost, RateLimited, error_for_status

log = logging.getLogger(__name__)

API_PATH = "/api/v10"

# Small enough that progress moves smoothly, large enough that a 25 MiB upload is not
# thousands of tiny writes.
UPLOAD_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class FormPart:
    name: str
    data: bytes
    content_type: str
    filename: str | None = None


class MultipartBody:
    """A ``multipart/form-data`` body sent in chunks, so ``progress(sent, total)`` follows
    the upload as httpx writes it rather than jumping from 0 to done. Its length is known
    up front: the relay can refuse an oversized upload before it is sent."""

    def __init__(
        self, parts: list[FormPart], progress: Callable[[int, int], None] | None = None
    ) -> None:
        self.boundary = secrets.token_hex(16)
        self.progress = progress
        self._pieces: list[bytes] = []
        for part in parts:
            disposition = f'form-data; name="{_quote(part.name)}"'
            if part.filename is not None:
                disposition += f'; filename="{_quote(part.filename)}"'
            head = (
                f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n"
                f"Content-Type: {part.content_type}\r\n\r\n"
            )
            self._pieces += [head.encode(), part.data, b"\r\n"]
        self._pieces.append(f"--{self.boundary}--\r\n".encode())
        self.length = sum(len(piece) for piece in self._pieces)

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.length),
        }

    async def stream(self) -> AsyncIterator[bytes]:
        sent = 0
        if self.progress is not None:
            self.progress(0, self.length)
        for piece in self._pieces:
            view = memoryview(piece)
            for start in range(0, len(view), UPLOAD_CHUNK_BYTES):
                chunk = bytes(view[start : start + UPLOAD_CHUNK_BYTES])
                yield chunk
                # httpx asks for the next chunk once this one is written to the socket.
                sent += len(chunk)
                if self.progress is not None:
                    self.progress(sent, self.length)


def _quote(value: str) -> str:
    # The WHATWG form encoding: the relay reads names back the way browsers send them.
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


class HTTPClient:
    """One relay, one account. Waits out 429s (up to ``max_rate_limit_wait`` seconds per
    request) and empty buckets before sending, so callers rarely see ``RateLimited``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        bot: bool = False,
        timeout: float = 30.0,
        max_rate_limit_wait: float = 60.0,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._verify = verify
        self._headers = {"User-Agent": "nexus-client (https://nexus.invalid, 0.1)"}
        self._client: httpx.AsyncClient | None = None
        self._max_wait = max_rate_limit_wait
        # bucket key (method + route) -> monotonic time before which it is empty
        self._blocked_until: dict[str, float] = {}
        self._global_until = 0.0
        self.token: str | None = None
        if token is not None:
            self.set_token(token, bot=bot)

    @property
    def _http(self) -> httpx.AsyncClient:
        """Made at the first request: httpx and its TLS context cost ~0.1 s, which an app
        showing its window from the cache need not pay first."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                base_url=self.base_url + API_PATH,
                timeout=self._timeout,
                verify=self._verify,
                headers=self._headers,
            )
        return self._client

    def set_token(self, token: str, *, bot: bool = False) -> None:
        self.token = token
        self._headers["Authorization"] = f"Bot {token}" if bot else token
        if self._client is not None:
            self._client.headers["Authorization"] = self._headers["Authorization"]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        bucket: str | None = None,
        reason: str | None = None,
        raw: bool = False,
        multipart: MultipartBody | None = None,
    ) -> Any:
        """The answer's JSON (None for an empty one), or with ``raw`` its bytes. ``path``
        is under ``/api/v10`` unless it is an absolute URL (images are at the root).
        ``multipart`` sends a form with files instead of ``json``."""
        import httpx

        key = f"{method} {bucket or path}"
        headers = {"X-Audit-Log-Reason": reason} if reason else {}
        waited = 0.0
        loop = asyncio.get_running_loop()
        while True:
            pause = max(self._blocked_until.get(key, 0.0), self._global_until) - loop.time()
            if pause > 0:
                if waited + pause > self._max_wait:
                    raise RateLimited(pause, is_global=self._global_until > loop.time())
                waited += pause
                await asyncio.sleep(pause)
            try:
                if multipart is not None:
                    # A fresh stream for each attempt: a retry after a 429 resends it all.
                    response = await self._http.request(
                        method,
                        path,
                        content=multipart.stream(),
                        params=params,
                        headers=headers | multipart.headers,
                    )
                else:
                    response = await self._http.request(
                        method, path, json=json, params=params, headers=headers or None
                    )
            except httpx.HTTPError as exc:
                raise ConnectionLost(f"{method} {path}: {exc}") from exc
            self._note_bucket(key, response, loop.time())
            if response.status_code == 429:
                body = _json_or_none(response)
                retry_after = float(body.get("retry_after", 1.0)) if isinstance(body, dict) else 1.0
                is_global = bool(body.get("global")) if isinstance(body, dict) else False
                # A little jitter keeps many clients from retrying in lockstep.
                retry_after += secrets.randbelow(50) / 1000
                if is_global:
                    self._global_until = loop.time() + retry_after
                else:
                    self._blocked_until[key] = loop.time() + retry_after
                if waited + retry_after > self._max_wait:
                    raise RateLimited(retry_after, is_global)
                log.debug("rate limited on %s, waiting %.2f s", key, retry_after)
                continue
            if response.status_code >= 400:
                raise error_for_status(response.status_code, _json_or_none(response))
            if raw:
                return response.content
            if response.status_code == 204 or not response.content:
                return None
            return response.json()

    def _note_bucket(self, key: str, response: httpx.Response, now: float) -> None:
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset_after = response.headers.get("X-RateLimit-Reset-After")
        if remaining == "0" and reset_after:
            with contextlib.suppress(ValueError):
                self._blocked_until[key] = now + float(reset_after)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
