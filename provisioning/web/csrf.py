"""CSRF protection for every form: a random token in a cookie (HttpOnly, SameSite=Strict) that
each form repeats in a hidden field; a POST whose field does not match the cookie is refused.
Another site can neither read the cookie nor make the browser send it. The token is renewed at
sign-in and sign-out."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from provisioning.state import SERVICES

COOKIE = "pp_csrf"
FIELD = "csrf"
CSRF_KEY: web.RequestKey[str] = web.RequestKey("csrf", str)
NEW_CSRF_KEY: web.RequestKey[bool] = web.RequestKey("new_csrf", bool)


def over_https(request: web.Request) -> bool:
    """Served over HTTPS (to us, or to a trusted proxy that says so): cookies are then Secure."""
    return request.config_dict[SERVICES].guard.secure(request)


def current_token(request: web.Request) -> str:
    """The token forms of this page carry; a new one if the browser has none yet."""
    token = request.get(CSRF_KEY)
    if token is None:
        cookie = request.cookies.get(COOKIE, "")
        if 20 <= len(cookie) <= 100 and cookie.isascii():
            token = cookie
        else:
            token = secrets.token_urlsafe(32)
            request[NEW_CSRF_KEY] = True
        request[CSRF_KEY] = token
    return token


def renew(request: web.Request) -> None:
    request[CSRF_KEY] = secrets.token_urlsafe(32)
    request[NEW_CSRF_KEY] = True


def valid(request: web.Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(COOKIE)
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(
        cookie.encode("utf-8", "replace"), submitted.encode("utf-8", "replace")
    )


def set_cookie(request: web.Request, response: web.StreamResponse, path: str) -> None:
    if request.get(NEW_CSRF_KEY) and not response.prepared:
        response.set_cookie(
            COOKIE,
            request[CSRF_KEY],
            path=path,
            httponly=True,
            samesite="Strict",
            secure=over_https(request),
        )
