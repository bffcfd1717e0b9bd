"""The Manager sub-application, mounted at /manager by the app factory (before the phone
routes, which end with a catch-all)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from provisioning.api.bodies import is_text
from provisioning.errors import DomainError, InvalidInput, NotFound
from provisioning.orders.carriers import load_carriers
from provisioning.state import SERVICES
from provisioning.web import auth, csrf, customer, operator, ordering
from provisioning.web.errors import (
    DATABASE_ERRORS,
    domain_error_page,
    error_page,
    http_error_page,
    unavailable_page,
)
from provisioning.web.i18n import load_translations, pick_language
from provisioning.web.pages import (
    ENVIRONMENT,
    LANG_KEY,
    PREFIX,
    STATIC_DIR,
    TRANSLATIONS,
    WHO_KEY,
    environment,
)
from provisioning.web.sessions import find_session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger(__name__)
MAX_FORM = 64 * 1024


@web.middleware
async def manager_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[LANG_KEY] = pick_language(request.cookies.get(auth.LANG_COOKIE))
    request[WHO_KEY] = None
    try:
        response = await _handle(request, handler)
    except web.HTTPException as exc:
        if exc.status >= 400:
            response = http_error_page(request, exc)
        else:
            csrf.set_cookie(request, exc, PREFIX)
            raise
    except DomainError as exc:
        response = domain_error_page(request, exc)
    except DATABASE_ERRORS as exc:
        response = unavailable_page(request, exc)
    except Exception:
        # A bug of ours: logged with its traceback for us, a plain page for the reader.
        log.exception("manager: unexpected error on %s %s", request.method, request.path)
        response = error_page(request, 500)
    csrf.set_cookie(request, response, PREFIX)
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    _check_url(request)
    if request.path.startswith(f"{PREFIX}/static/"):
        return await handler(request)
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        async with request.config_dict[SERVICES].read_sessions() as session:
            request[WHO_KEY] = await find_session(session, token)
    if request.method == "POST":
        if (request.content_length or 0) > MAX_FORM:
            return error_page(request, 413)
        form = await _form(request)
        submitted = form.get(csrf.FIELD)
        if not csrf.valid(request, submitted if isinstance(submitted, str) else None):
            return error_page(request, 403, None)
    return await handler(request)


def _check_url(request: web.Request) -> None:
    """The path's parts and the query's values are text, for every page at once: handlers pass
    them on (a return's reference, a MAC), and a NUL reaching PostgreSQL was a 503."""
    if not all(is_text(value) for value in request.match_info.values()):
        raise NotFound("page not found")
    if not all(is_text(name) and is_text(value) for name, value in request.query.items()):
        raise InvalidInput("query: a NUL or a lone surrogate is not text", field="query")


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form, read once for every handler. Bytes that are not text in the form's
    charset, an unknown charset or a broken multipart make aiohttp raise (ValueError,
    LookupError, a parser's error), and a lone surrogate (UTF-7 spells one) or a NUL fails
    later, as a 500 in a page or a 503 from the database: each is the sender's mistake, said on
    a 422 page."""
    try:
        form = await request.post()
    except (ValueError, LookupError, HttpProcessingError):
        raise InvalidInput("form: not a form of text", field="form") from None
    for name, value in form.items():
        if not is_text(name) or (isinstance(value, str) and not is_text(value)):
            raise InvalidInput("form: a NUL or a lone surrogate is not text", field="form")
    return form


def create_manager() -> web.Application:
    manager = web.Application(middlewares=[manager_middleware], client_max_size=MAX_FORM)
    manager[ENVIRONMENT] = environment()
    manager[TRANSLATIONS] = load_translations()
    manager[ordering.CARRIERS] = load_carriers()
    manager.add_routes(auth.routes)
    manager.add_routes(customer.routes)
    manager.add_routes(ordering.routes)
    manager.add_routes(operator.routes)
    manager.router.add_static("/static", STATIC_DIR, name="static")
    return manager
