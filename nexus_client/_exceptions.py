"""Every error the client library raises. No httpx, websockets or sqlcipher exception
escapes it: they are converted here, at the edge, with ``raise … from exc``.

    NexusError
    ├── HTTPError                 the relay answered with an error
    │   ├── BadRequest            400
    │   │   └── InvalidInput      400 with per-field ``errors``
    │   ├── Unauthorized          401 (token revoked or wrong)
    │   ├── Forbidden             403
    │   ├── NotFound              404
    │   ├── PayloadTooLarge       413
    │   ├── RateLimited           429 that could not be waited out (``retry_after``)
    │   └── ServerError           5xx
    ├── ConnectionLost            the relay could not be reached, or the link dropped
    ├── GatewayError              the gateway refused us (bad token, bad intents…)
    └── StoreError                the local encrypted store
        ├── StoreLocked           wrong passphrase or key: the store stays untouched
        └── NoKeyAvailable        neither an OS keyring nor a passphrase to key it
"""

from __future__ import annotations

from typing import Any


class NexusError(Exception):
    """Base of every error the library raises."""


class HTTPError(NexusError):
    status: int = 0

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None):
        super().__init__(f"{status} {message} (code {code})")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or {}


class BadRequest(HTTPError):
    pass


class InvalidInput(BadRequest):
    """A request the relay refused field by field; ``fields`` maps a dotted path to the
    messages, e.g. ``{"content": ["Must be 4000 or fewer in length."]}``."""

    @property
    def fields(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}

        def walk(node: dict[str, Any], path: str) -> None:
            for key, value in node.items():
                if key == "_errors" and isinstance(value, list):
                    found[path or "_body"] = [str(e.get("message", e)) for e in value]
                elif isinstance(value, dict):
                    walk(value, f"{path}.{key}" if path else key)

        walk(self.errors, "")
        return found


class Unauthorized(HTTPError):
    pass


class Forbidden(HTTPError):
    pass


class NotFound(HTTPError):
    pass


class PayloadTooLarge(HTTPError):
    pass


class RateLimited(HTTPError):
    def __init__(self, retry_after: float, is_global: bool, message: str = "rate limited"):
        super().__init__(429, 0, message)
        self.retry_after = retry_after
        self.is_global = is_global


class ServerError(HTTPError):
    pass


class ConnectionLost(NexusError):
    pass


class GatewayError(NexusError):
    def __init__(self, close_code: int, reason: str):
        super().__init__(f"gateway closed with {close_code}: {reason}")
        self.close_code = close_code
        self.reason = reason


class StoreError(NexusError):
    pass


class StoreLocked(StoreError):
    pass


class NoKeyAvailable(StoreError):
    pass


def error_for_status(status: int, body: Any) -> HTTPError:
    code = 0
    message = f"HTTP {status}"
    errors: dict[str, Any] | None = None
    if isinstance(body, dict):
        code = int(body.get("code") or 0)
        message = str(body.get("message") or message)
        raw_errors = body.get("errors")
        errors = raw_errors if isinstance(raw_errors, dict) else None
    if status == 400:
        return (InvalidInput if errors else BadRequest)(status, code, message, errors)
    kind: type[HTTPError] = {
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        413: PayloadTooLarge,
    }.get(status, ServerError if status >= 500 else HTTPError)
    return kind(status, code, message, errors)
