"""Sign-in, sign-out, the language switch, and who may open which page: customers their own
account's pages, operators the warehouse and device pages."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from provisioning.api.access import caller_ip
from provisioning.audit import Actor
from provisioning.state import SERVICES
from provisioning.web import csrf
from provisioning.web.csrf import over_https
from provisioning.web.i18n import LANGUAGES
from provisioning.web.pages import PREFIX, gettext, redirect, render, who
from provisioning.web.sessions import close_session, open_session
from provisioning.web.signin_gate import TooManyAttempts
from provisioning.web.users import Who, sign_in, who_of

SESSION_COOKIE = "pp_session"
LANG_COOKIE = "pp_lang"

routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def actor(request: web.Request) -> Actor:
    person = who(request)
    assert person is not None
    return Actor(person.actor, caller_ip(request))


# The longest page address kept through a sign-in (`next`), percent-encoded.
MAX_NEXT = 2000


def _safe_next(target: str | None) -> str | None:
    # Only back into the Manager: never an open redirect to another site.
    if not target or not target.startswith(PREFIX + "/") or target.startswith("//"):
        return None
    return None if any(c in target for c in "\\\r\n") else target


def _home(person: Who) -> str:
    return f"{PREFIX}/ops/orders" if person.is_operator else f"{PREFIX}/lines"


def _require(role: str) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            person = who(request)
            if person is None:
                target = quote(request.path_qs if request.method == "GET" else request.path)
                if len(target) > MAX_NEXT:
                    # A Location past a proxy's header buffer is its 502, past aiohttp's limit
                    # (8,190 bytes) a broken answer: sign in, then start again from home.
                    raise redirect(f"{PREFIX}/login")
                raise redirect(f"{PREFIX}/login?next={target}")
            if person.role != role:
                # The other role's pages do not exist for this person.
                raise web.HTTPNotFound()
            return await handler(request)

        return wrapped

    return decorate


customer_only = _require("customer")
operator_only = _require("operator")


@routes.get("")
@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    person = who(request)
    raise redirect(_home(person) if person else f"{PREFIX}/login")


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    person = who(request)
    if person is not None:
        raise redirect(_home(person))
    return render(
        request,
        "login.html",
        login="",
        error=None,
        next=_safe_next(request.query.get("next")) or "",
    )


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    login_name = str(form.get("login", ""))[:64]
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    services = request.config_dict[SERVICES]
    try:
        user = await sign_in(
            services.sessions, services.sign_ins, login_name, password, actor_ip=caller_ip(request)
        )
    except TooManyAttempts:
        error = gettext(request, "Too many attempts. Please try again in a minute.")
        response = render(
            request, "login.html", status=429, login=login_name, error=error, next=target or ""
        )
        response.headers["Retry-After"] = "60"
        return response
    token = person = None
    if user is not None:
        async with services.sessions() as session, session.begin():
            token = await open_session(session, user)
        person = who_of(user)
    if person is None or token is None:
        error = gettext(
            request,
            "Wrong login or password. After 5 failures the login is locked for 15 minutes.",
        )
        return render(
            request, "login.html", status=401, login=login_name, error=error, next=target or ""
        )
    response = redirect(target or _home(person))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=PREFIX,
        httponly=True,
        samesite="Lax",
        secure=over_https(request),
        max_age=12 * 3600,
    )
    csrf.renew(request)
    csrf.set_cookie(request, response, PREFIX)
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with request.config_dict[SERVICES].sessions() as session, session.begin():
            await close_session(session, token)
    response = redirect(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    csrf.renew(request)
    csrf.set_cookie(request, response, PREFIX)
    raise response


@routes.get("/language")
async def switch_language(request: web.Request) -> web.Response:
    lang = request.query.get("lang", "")
    response = redirect(_safe_next(request.query.get("next")) or f"{PREFIX}/")
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            path=PREFIX,
            samesite="Lax",
            secure=over_https(request),
            max_age=365 * 24 * 3600,
        )
    raise response
