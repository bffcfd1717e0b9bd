"""Errors become pages, once for the whole Manager: a domain refusal shows a sentence in the
reader's language (the API's English `detail` goes to the log), a missing or foreign object
the same 404, a database outage a 503 page; never a traceback."""

from __future__ import annotations

import logging

from aiohttp import web

from provisioning.db.errors import DB_ERRORS
from provisioning.errors import DomainError
from provisioning.web.pages import gettext, headline, log_refusal, render

log = logging.getLogger(__name__)

# What a reader is told, per status, above the domain's own message.
TITLES = {
    400: "This request cannot be done",
    401: "Please sign in",
    403: "This form has expired",
    404: "Page not found",
    405: "This page cannot be used this way",
    409: "This cannot be done now",
    413: "The form is too large",
    422: "Please check what you entered",
    500: "Something went wrong",
    503: "The service is unavailable for a moment",
}


def error_page(request: web.Request, status: int, detail: str | None = None) -> web.Response:
    title = gettext(request, TITLES.get(status, "Something went wrong"))
    return render(request, "error.html", status=status, title=title, detail=detail)


def domain_error_page(request: web.Request, exc: DomainError) -> web.Response:
    if exc.status == 404:
        # A foreign object and a missing one read the same.
        return error_page(request, 404)
    log_refusal(request, exc)
    return error_page(request, exc.status, gettext(request, headline(exc)))


def http_error_page(request: web.Request, exc: web.HTTPException) -> web.Response:
    return error_page(request, exc.status)


def unavailable_page(request: web.Request, exc: Exception) -> web.Response:
    log.warning("manager: database unavailable: %s", type(exc).__name__)
    response = error_page(request, 503, gettext(request, "Please try again in a minute."))
    response.headers["Retry-After"] = "30"
    return response


DATABASE_ERRORS = DB_ERRORS
