"""Strict JSON in, Discord-shaped errors out.

Bodies are parsed with orjson, which rejects NaN/Infinity, invalid UTF-8 and lone
surrogates; nesting deeper than ``MAX_DEPTH`` is refused before any model sees it.
Validation failures become 400 ``{code: 50035, errors: {field: {_errors: […]}}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from nexus_protocol.errors import ErrorCode, field_errors, merge_errors

from ..errors import ApiError, InvalidForm, RateLimited

MAX_DEPTH = 32


class BodyError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def parse_json(raw: bytes) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"The request body is not valid JSON: {exc}") from None
    if not _depth_ok(value, MAX_DEPTH):
        raise BodyError(f"The request body nests deeper than {MAX_DEPTH} levels.")
    return value


class StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            strict = StrictRequest(request.scope, request.receive)
            # A form with files is parsed by its endpoint, streamed, never read whole here.
            is_form = request.headers.get("content-type", "").startswith("multipart/form-data")
            if request.method in {"POST", "PUT", "PATCH", "DELETE"} and not is_form:
                raw = await strict.body()
                if raw:
                    try:
                        await strict.json()
                    except BodyError as exc:
                        return error_response(
                            400, {"code": int(ErrorCode.GENERAL), "message": exc.message}
                        )
            return await handler(strict)

        return strict_handler


class JsonResponse(Response):
    """JSON encoded with orjson, with ``Content-Type: application/json`` exactly (some
    Discord libraries compare the whole header)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status: int, body: dict[str, Any], **headers: str) -> JsonResponse:
    return JsonResponse(body, status_code=status, headers=headers or None)


def validation_errors(exc: RequestValidationError) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    for error in exc.errors():
        location = tuple(error.get("loc", ()))
        if location and location[0] in {"body", "query", "path", "header"}:
            location = location[1:]
        # Pydantic names union branches in the location ("str", "function-after[…]");
        # users need the field, not the branch.
        path = tuple(
            part
            for part in location
            if isinstance(part, int) or ("[" not in part and part not in {"str", "int"})
        )
        if not path:
            path = ("_body",)
        code = str(error.get("type", "invalid")).upper()
        message = str(error.get("msg", "Invalid value"))
        merge_errors(errors, field_errors(path, code, message))
    return errors


async def api_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers = {
            "Retry-After": str(max(1, round(exc.retry_after + 0.5))),
            "X-RateLimit-Limit": "0",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{exc.retry_after:.3f}",
            "X-RateLimit-Bucket": exc.bucket,
            "X-RateLimit-Scope": "global" if exc.is_global else "user",
        }
        if exc.is_global:
            headers["X-RateLimit-Global"] = "true"
    return error_response(exc.status, exc.body(), **headers)


async def request_validation_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return error_response(
                400,
                {"code": int(ErrorCode.GENERAL), "message": "The request body is not valid JSON."},
            )
    form = InvalidForm(validation_errors(exc))
    return error_response(400, form.body())
