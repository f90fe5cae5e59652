"""Request dependencies: who is calling (and within their rate limit), and path ids."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Response
from starlette.requests import HTTPConnection

from nexus_protocol.snowflake import parse_snowflake

from ..errors import InvalidForm, Unauthorized
from ..services.accounts import Principal

if TYPE_CHECKING:
    from ..relay import Relay


def relay_of(request: HTTPConnection) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


async def _relay_dependency(request: HTTPConnection) -> Relay:
    # Async on purpose: FastAPI runs plain-function dependencies in a thread pool,
    # which cost more than the rest of a small request.
    return relay_of(request)


async def authenticated(request: Request, response: Response) -> Principal:
    header = request.headers.get("authorization", "")
    token = header[4:] if header.startswith("Bot ") else header
    if header.startswith("Bearer "):
        token = header[7:]
    if not token:
        raise Unauthorized()
    relay = relay_of(request)
    principal = await relay.accounts.authenticate(token)
    route = request.scope.get("route")
    template = str(getattr(route, "path", request.url.path)).removeprefix("/api/v10")
    grant = relay.rate_limits.check(principal.user_id, f"{request.method} {template}")
    response.headers["X-RateLimit-Limit"] = str(grant.limit)
    response.headers["X-RateLimit-Remaining"] = str(grant.remaining)
    response.headers["X-RateLimit-Reset-After"] = f"{grant.reset_after:.3f}"
    response.headers["X-RateLimit-Bucket"] = grant.bucket
    return principal


async def anonymous(request: Request, response: Response) -> None:
    """Rate limits for requests without a token (register, log in), by client address:
    what stands between a password and someone guessing it."""
    relay = relay_of(request)
    host = request.client.host if request.client else "unknown"
    # Negative keys: an address's buckets never share a key with a user's.
    key = -1 - int.from_bytes(hashlib.blake2s(host.encode(), digest_size=7).digest(), "big")
    route = request.scope.get("route")
    template = str(getattr(route, "path", request.url.path)).removeprefix("/api/v10")
    grant = relay.rate_limits.check(key, f"{request.method} {template}")
    response.headers["X-RateLimit-Limit"] = str(grant.limit)
    response.headers["X-RateLimit-Remaining"] = str(grant.remaining)
    response.headers["X-RateLimit-Reset-After"] = f"{grant.reset_after:.3f}"
    response.headers["X-RateLimit-Bucket"] = grant.bucket


Caller = Annotated[Principal, Depends(authenticated)]
Anonymous = Depends(anonymous)
RelayDep = Annotated["Relay", Depends(_relay_dependency)]


def snowflake_param(value: str, name: str) -> int:
    try:
        return parse_snowflake(value)
    except ValueError:
        raise InvalidForm.field(
            name, "NUMBER_TYPE_COERCE", f'Value "{value[:40]}" is not snowflake.'
        ) from None
