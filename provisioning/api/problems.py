"""Errors as RFC 9457 problem details, mapped once for the whole API: a stable `type` per domain
error, the offending field for invalid bodies, never a traceback or a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from provisioning.db.errors import DB_ERRORS
from provisioning.errors import DomainError
from provisioning.logs import request_id

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://provisioning.example/problems/"
CONTENT_TYPE = "application/problem+json"


def problem(
    status: int, code: str, title: str, detail: str | None = None, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return web.Response(
        status=status, text=json.dumps(body, ensure_ascii=False), content_type=CONTENT_TYPE
    )


_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal server error",
    503: "Service unavailable",
}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return problem(
            exc.status, exc.code, _TITLES.get(exc.status, "Error"), exc.message, field=exc.field
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {401: "unauthenticated", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status, f"http-{exc.status}"
        )
        response = problem(exc.status, code, _TITLES.get(exc.status, exc.reason), exc.text)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    except DB_ERRORS as exc:
        log.warning("api: database unavailable: %s", type(exc).__name__)
        response = problem(503, "unavailable", "Service unavailable", "try again shortly")
        response.headers["Retry-After"] = "30"
        return response
    except Exception:
        # A bug of ours: the traceback for our log, the request id (also in X-Request-Id) for
        # the caller to quote; never the exception's text, which may hold a value or a secret.
        log.exception("api: unexpected error on %s %s", request.method, request.path)
        return problem(
            500,
            "internal-error",
            _TITLES[500],
            "an unexpected error; quote the request id to the operator",
            request_id=request_id.get(),
        )
