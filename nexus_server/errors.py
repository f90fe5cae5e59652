"""The relay's one exception tree; the API turns each into Discord-shaped JSON.

ApiError (status, code, message, errors)
├── BadRequest        400  (InvalidForm: 50035 with per-field ``errors``)
├── Unauthorized      401
├── Forbidden         403  (MissingPermissions, MissingAccess)
├── NotFound          404
├── PayloadTooLarge   413
└── RateLimited       429  (retry_after, global)
"""

from __future__ import annotations

from typing import Any

from nexus_protocol.errors import ErrorCode, field_errors


class ApiError(Exception):
    status = 400

    def __init__(self, code: ErrorCode, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


class BadRequest(ApiError):
    status = 400


class InvalidForm(BadRequest):
    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(ErrorCode.INVALID_FORM_BODY, "Invalid Form Body", errors)

    @classmethod
    def field(cls, path: tuple[str | int, ...] | str, code: str, message: str) -> InvalidForm:
        if isinstance(path, str):
            path = (path,)
        return cls(field_errors(path, code, message))


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str = "401: Unauthorized") -> None:
        super().__init__(ErrorCode.GENERAL, message)


class Forbidden(ApiError):
    status = 403


class MissingPermissions(Forbidden):
    def __init__(self, message: str = "Missing Permissions") -> None:
        super().__init__(ErrorCode.MISSING_PERMISSIONS, message)


class MissingAccess(Forbidden):
    def __init__(self) -> None:
        super().__init__(ErrorCode.MISSING_ACCESS, "Missing Access")


class NotFound(ApiError):
    status = 404


class PayloadTooLarge(ApiError):
    status = 413

    def __init__(self, message: str = "Request entity too large") -> None:
        super().__init__(ErrorCode.REQUEST_TOO_LARGE, message)


class RateLimited(ApiError):
    status = 429

    def __init__(self, retry_after: float, *, is_global: bool, bucket: str) -> None:
        super().__init__(ErrorCode.GENERAL, "You are being rate limited.")
        self.retry_after = retry_after
        self.is_global = is_global
        self.bucket = bucket

    def body(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "retry_after": round(self.retry_after, 3),
            "global": self.is_global,
        }


def unknown(code: ErrorCode, what: str) -> NotFound:
    return NotFound(code, f"Unknown {what}")
