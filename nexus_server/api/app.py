"""The ASGI application: routers under /api/v10, error shapes, body limits, headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus_protocol.errors import ErrorCode

from ..errors import ApiError, PayloadTooLarge
from ..relay import Relay
from ..services.attachments import MAX_FILES
from . import (
    accounts,
    applications,
    attachments,
    channel_admin,
    devices,
    dms,
    gateway,
    guilds,
    invites,
    media,
    members,
    message_actions,
    messages,
    roles,
    search,
)
from .strict import JsonResponse, api_error_handler, error_response, request_validation_handler

API_PREFIX = "/api/v10"
ROUTERS = (
    accounts.router,
    guilds.router,
    members.router,
    roles.router,
    channel_admin.router,
    messages.router,
    message_actions.router,
    invites.router,
    gateway.router,
    applications.router,
    devices.router,
    dms.router,
    search.router,
)


# The requests that may carry images (data URIs): a profile, a new or changed community.
IMAGE_ROUTES = (
    ("PATCH", re.compile(f"{API_PREFIX}/users/@me")),
    ("POST", re.compile(f"{API_PREFIX}/guilds")),
    ("PATCH", re.compile(f"{API_PREFIX}/guilds/[^/]+")),
)


# The request that may carry files: a new message, as multipart/form-data.
ATTACHMENT_ROUTE = ("POST", re.compile(f"{API_PREFIX}/channels/[^/]+/messages"))
# Per file: its part's headers and boundary, a few hundred bytes at most.
_FORM_PART_OVERHEAD = 4096


def attachment_body_bytes(max_body_bytes: int, max_attachment_bytes: int) -> int:
    """Room for a message with as many files as it may carry, each at the limit."""
    return max_body_bytes + MAX_FILES * (max_attachment_bytes + _FORM_PART_OVERHEAD)


def image_body_bytes(max_body_bytes: int, max_image_bytes: int) -> int:
    """Room for two images (an icon and a banner in one PATCH), base64-encoded."""
    return max_body_bytes + 2 * 4 * -(-max_image_bytes // 3)


class BodyLimit:
    """413 for bodies over the limit, whether announced by Content-Length or streamed.
    ``larger`` lifts the limit for some (method, path) pairs; ``forms`` for some pairs
    only when the body is ``multipart/form-data`` (a JSON body stays small)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        larger: Sequence[tuple[str, re.Pattern[str], int]] = (),
        forms: Sequence[tuple[str, re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = tuple(larger)
        self.forms = tuple(forms)

    def limit_for(self, scope: Scope) -> int:
        for method, path, limit in self.larger:
            if scope.get("method") == method and path.fullmatch(scope.get("path", "")):
                return limit
        if self.forms and _is_form(scope):
            for method, path, limit in self.forms:
                if scope.get("method") == method and path.fullmatch(scope.get("path", "")):
                    return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
                await _send_error(send, PayloadTooLarge())
                return
        seen = 0
        too_large = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    too_large = True
                    raise _TooLarge()
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except Exception:
            # Middleware in between (BaseHTTPMiddleware's task group) may wrap _TooLarge
            # in an ExceptionGroup, so the flag, not the exception type, decides.
            if not too_large or started:
                raise
            await _send_error(send, PayloadTooLarge())


def _is_form(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bool(value.lower().startswith(b"multipart/form-data"))
    return False


class _TooLarge(Exception):
    pass


async def _send_error(send: Send, error: ApiError) -> None:
    response = error_response(error.status, error.body())
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


async def http_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = ErrorCode.GENERAL
    return error_response(
        exc.status_code, {"code": int(code), "message": f"{exc.status_code}: {exc.detail}"}
    )


async def unexpected_error_handler(_request: Request, _exc: Exception) -> Response:
    return error_response(500, {"code": 0, "message": "500: Internal Server Error"})


def build_app(relay: Relay, *, on_ready: Callable[[], Awaitable[None]] | None = None) -> FastAPI:
    """The relay's ASGI app; ``on_ready`` runs once the relay has started."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await relay.start()
        if on_ready is not None:
            await on_ready()
        try:
            yield
        finally:
            await relay.close()

    app = FastAPI(
        title="Nexus relay API",
        version="10",
        description="Discord API v10 in shape, with Nexus extensions. No e-mail, no phone.",
        default_response_class=JsonResponse,
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.relay = relay

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, body in messages.request_body_schemas().items():
                components.setdefault(name, body)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(invites.landing_router)
    app.include_router(media.router)  # at Discord's CDN paths, outside the API prefix
    app.include_router(attachments.router)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)

    settings = relay.settings
    image_limit = image_body_bytes(settings.max_body_bytes, settings.max_image_bytes)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        larger=[(method, path, image_limit) for method, path in IMAGE_ROUTES],
        forms=[
            (
                *ATTACHMENT_ROUTE,
                attachment_body_bytes(settings.max_body_bytes, settings.max_attachment_bytes),
            )
        ],
    )
    return app
