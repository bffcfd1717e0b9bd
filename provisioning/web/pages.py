"""Rendering pages: one Jinja environment (autoescape on) per application, the request's
language and signed-in person put into every template, with the reader's formats (`formats`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from provisioning.errors import DomainError, NotFound
from provisioning.numbers import parse_id
from provisioning.state import SERVICES
from provisioning.web import csrf
from provisioning.web.formats import Formats
from provisioning.web.i18n import DEFAULT, Translations
from provisioning.web.users import Who

log = logging.getLogger(__name__)

PREFIX = "/manager"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"

ENVIRONMENT: web.AppKey[jinja2.Environment] = web.AppKey("web_templates", jinja2.Environment)
TRANSLATIONS: web.AppKey[dict[str, Translations]] = web.AppKey("web_translations", dict)
WHO_KEY: web.RequestKey[Who | None] = web.RequestKey("web_who", object)  # type: ignore[arg-type]
LANG_KEY: web.RequestKey[str] = web.RequestKey("web_lang", str)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["base"] = PREFIX
    return env


def who(request: web.Request) -> Who | None:
    return request.get(WHO_KEY)


def id_of(text: str, what: str) -> int:
    """An id from a URL or a form: ASCII digits only (`numbers.parse_id`); anything else is
    an object that does not exist, the same 404 as a missing or a foreign one."""
    value = parse_id(text)
    if value is None:
        raise NotFound(f"{what} not found")
    return value


def path_id(request: web.Request, name: str, what: str) -> int:
    return id_of(request.match_info[name], what)


def path_digits(request: web.Request, name: str, what: str) -> str:
    """The path's id as plain ASCII digits, for the helpers that take it as text
    (`scope.own_line`): what they parse again is then only ever a checked id."""
    return str(path_id(request, name, what))


def language(request: web.Request) -> str:
    lang: str = request.get(LANG_KEY, DEFAULT)
    return lang


def translations(request: web.Request) -> Translations:
    return request.app[TRANSLATIONS][language(request)]


def gettext(request: web.Request, message: str, **values: Any) -> str:
    return translations(request).gettext(message, **values)


def log_refusal(request: web.Request, error: DomainError) -> None:
    """A refusal's technical detail (the API's English `detail`) is for the log: the reader
    sees only the sentence of `headline`, in their language."""
    log.info(
        "manager: %s %s refused: %s (%s, field %s)",
        request.method, request.path, error.message, error.code, error.field,
    )  # fmt: skip


def _tile_source(template: str) -> str:
    """The street map's tile server as a CSP source (" https://*.tile.example.org"), so its
    images load and nothing else does; "" without one."""
    if not template:
        return ""
    parts = urlsplit(template)
    return f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    services = request.config_dict[SERVICES]
    for key in ("error", "search_error"):
        if isinstance(context.get(key), DomainError):
            log_refusal(request, context[key])
    tr = translations(request)
    values = {
        "_": tr.gettext,
        "ngettext": tr.ngettext,
        "lang": tr.language,
        "who": who(request),
        "csrf_field": csrf.FIELD,
        "csrf_token": csrf.current_token(request),
        "fmt": Formats(tr.language, services.settings.default_timezone),
        "path": request.path_qs,
        "headline": headline,
        **context,
    }
    body = request.app[ENVIRONMENT].get_template(template).render(values)
    response = web.Response(text=body, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data:{_tile_source(services.settings.map_tiles)}; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def redirect(location: str) -> web.HTTPSeeOther:
    """After a POST, the browser goes to the result with a GET (no resubmission on reload)."""
    return web.HTTPSeeOther(location)


# A sentence for the reader per refusal (translated), above the domain's own message.
_HEADLINES = {
    "contract-not-accepted": "Please tick “I have read and accept the contract” to validate.",
    "invalid-address": "Please check the delivery address.",
    "unknown-relay-point": "Please choose a pick-up point from the list.",
    "unknown-place": "No pick-up point is known near this place.",
    "line-has-phone": "This line already has a phone.",
    "line-has-no-phone": "This line has no phone.",
    "files-refused": "This phone cannot take this line as it is: one of its settings holds a "
    "character the phone's configuration cannot carry. Change the password or the name, or "
    "choose another phone.",
    "order-pending": "A phone is already on order for this line.",
    "no-free-slot": "This phone has no free slot any more.",
    "slot-taken": "This phone has no free slot any more.",
    "too-few-slots": "This model cannot carry all the lines of your phone.",
    "unknown-model": "Please choose a model.",
    "not-orderable": "This model cannot be ordered.",
    "invalid-mac": "This is not a MAC address.",
    "device-exists": "A device with this MAC address already exists.",
    "order-not-open": "This order can no longer be shipped.",
    "model-mismatch": "This phone is not the model ordered.",
    "device-not-returnable": "This phone cannot be returned.",
}
_FIELD_HEADLINES = {
    # The reader sees no detail but this sentence (the detail goes to the log): an address
    # says which part is wrong.
    "address.name": "Please check the name on the parcel.",
    "address.street": "Please check the street of the delivery address.",
    "address.postcode": "Please check the postcode of the delivery address.",
    "address.town": "Please check the town of the delivery address.",
    "address.country": "Please choose a country we deliver to.",
    "contract_version": "The contract changed since you read it: please read it again before "
    "accepting it.",
    "postcode": "Please check the postcode: 5 digits.",
    "city": "Please check the name of the town.",
    "relay_point": "Please choose a pick-up point from the list.",
    "model": "Please choose a model.",
    "tracking": "Please check the tracking number.",
}


def headline(error: Any) -> str:
    """The English sentence (a msgid) that introduces a domain error on a page."""
    code = getattr(error, "code", "")
    field = getattr(error, "field", None) or ""
    if (field.startswith("address.") or field == "contract_version") and field in _FIELD_HEADLINES:
        return _FIELD_HEADLINES[field]
    if code in _HEADLINES:
        return _HEADLINES[code]
    for name in (field, field.split(".")[0]):
        if name in _FIELD_HEADLINES:
            return _FIELD_HEADLINES[name]
    if getattr(error, "status", 400) == 422:
        return "Please check what you entered."
    return "This cannot be done."
