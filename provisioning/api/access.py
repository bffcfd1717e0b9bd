"""Who is calling and what they may see. A customer's token is bound to one account: every
object of another account answers exactly like a missing one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from provisioning.api.problems import problem
from provisioning.audit import Actor
from provisioning.errors import DomainError, NotFound
from provisioning.phones.client import client_ip, peer_address
from provisioning.state import SERVICES
from provisioning.tokens import Principal, authenticate

PUBLIC = {"/api/v1/openapi.json"}
PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


class OperatorOnly(DomainError):
    code = "operator-only"
    status = 403


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and 0 < len(secret) <= 200:
        services = request.config_dict[SERVICES]
        async with services.read_sessions() as session:
            principal = await authenticate(session, secret.strip())
    if principal is None:
        response = problem(
            401, "unauthenticated", "Authentication required", "a valid bearer token is required"
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    request[PRINCIPAL_KEY] = principal
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


def caller_ip(request: web.Request) -> str:
    return client_ip(
        peer_address(request),
        request.headers.get("X-Forwarded-For"),
        request.config_dict[SERVICES].settings.trusted_proxies,
    )


def actor(request: web.Request) -> Actor:
    who = principal(request)
    return Actor(f"{who.role}:{who.name}", caller_ip(request))


def require_operator(request: web.Request) -> None:
    if not principal(request).is_operator:
        raise OperatorOnly("this operation is for operators")


def scope_account(request: web.Request, requested: int | None) -> int | None:
    """The account a listing is limited to: the caller's own for a customer."""
    who = principal(request)
    if who.is_operator:
        return requested
    if requested is not None and requested != who.account_id:
        # Filtering on another account gives what a missing account gives: nothing of it.
        raise NotFound(f"account {requested} not found")
    return who.account_id


def check_account(request: web.Request, account_id: int | None, what: str) -> None:
    """Raise the same NotFound a missing object gives when a customer reaches another account."""
    who = principal(request)
    if not who.is_operator and account_id != who.account_id:
        raise NotFound(f"{what} not found")
