"""The handset emulator: behaves like a Plug & Phone desk phone of a family — fetches its files
with the vendor's User-Agent and file names, registers every line with digest auth, answers a
check-sync NOTIFY with 200 and re-fetches, polls on its interval."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from provisioning.devices.catalog import Family, Model
from provisioning.devices.mac import colon_mac
from provisioning.lab.parsers import PARSERS, USER_AGENTS, PhoneLine
from provisioning.sip.message import Message, new_branch, new_call_id, new_tag, response_to
from provisioning.sip.transport import SipEndpoint, request_with_auth

Say = Callable[[str], None]


@dataclass
class PhoneStats:
    fetch_ms: list[float] = field(default_factory=list)
    registered: int = 0
    register_failed: int = 0
    notifies: int = 0
    notify_to_fetch_ms: list[float] = field(default_factory=list)


class EmulatedPhone:
    def __init__(
        self,
        base_url: str,
        mac: str,
        family: Family,
        model: Model,
        *,
        say: Say | None = None,
        answer_notify: bool = True,
        poll_seconds: float | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if family.name not in PARSERS:
            raise ValueError(
                f"the emulator plays {', '.join(sorted(PARSERS))} phones, not {family.name}"
            )
        self.base_url = base_url.rstrip("/") + "/"
        self.mac = mac
        self.family = family
        self.model = model
        self.say = say or (lambda _text: None)
        self.answer_notify = answer_notify
        self.poll_override = poll_seconds
        self.poll_seconds: float | None = None
        ua_model = model.ua_models[0] if model.ua_models else model.id
        self.user_agent = USER_AGENTS[family.name].format(
            model=ua_model, mac_colon=colon_mac(mac), mac_upper=mac.upper()
        )
        self.lines: list[PhoneLine] = []
        self.stats = PhoneStats()
        self.endpoint = SipEndpoint()
        self._etags: dict[str, str] = {}
        self._http = session
        self._own_http = session is None
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    async def start(self, sip_host: str = "127.0.0.1") -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        await self.endpoint.open(sip_host, 0)
        self.endpoint.handler = self._on_request
        await self.fetch()
        await self.register_all()
        interval = self.poll_override or self.poll_seconds
        if interval:
            self._poller = asyncio.create_task(self._poll(interval))

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.endpoint.close()
        if self._own_http and self._http is not None:
            await self._http.close()

    # -- provisioning -------------------------------------------------------------------------

    def _file_names(self) -> list[tuple[str, bool]]:
        names = []
        for spec in self.family.files:
            name = spec.name_for(self.mac, self.model.code, self.family.mac_case)
            if name is not None:
                names.append((name, spec.secret))
        return names

    async def fetch(self) -> bool:
        """Ask for every file in the vendor's order; True if the lines changed."""
        assert self._http is not None
        changed = False
        for name, carries_lines in self._file_names():
            headers = {"User-Agent": self.user_agent}
            if name in self._etags:
                headers["If-None-Match"] = self._etags[name]
            started = time.perf_counter()
            async with self._http.get(self.base_url + name, headers=headers) as resp:
                body = await resp.text() if resp.status == 200 else ""
                self.stats.fetch_ms.append((time.perf_counter() - started) * 1000)
                self.say(f"GET {name} -> {resp.status}")
                if resp.status != 200:
                    continue
                self._etags[name] = resp.headers.get("ETag", "")
            if carries_lines:
                lines, poll = PARSERS[self.family.name](body)
                self.poll_seconds = poll
                if lines != self.lines:
                    self.lines = lines
                    changed = True
        return changed

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if await self.fetch():
                await self.register_all()

    # -- SIP ----------------------------------------------------------------------------------

    async def register_all(self) -> None:
        results = await asyncio.gather(*(self.register(line) for line in self.lines))
        for line, ok in zip(self.lines, results, strict=True):
            self.say(f"REGISTER {line.user}@{line.host}:{line.port} -> {'ok' if ok else 'failed'}")

    async def register(self, line: PhoneLine) -> bool:
        host, port = self.endpoint.address
        aor = f"sip:{line.user}@{line.host}"
        message = Message(
            f"REGISTER sip:{line.host}:{line.port} SIP/2.0",
            [
                ("Via", f"SIP/2.0/UDP {host}:{port};branch={new_branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<{aor}>;tag={new_tag()}"),
                ("To", f"<{aor}>"),
                ("Call-ID", new_call_id(host)),
                ("CSeq", "1 REGISTER"),
                ("Contact", f"<sip:{line.user}@{host}:{port}>"),
                ("Expires", "3600"),
                ("User-Agent", self.user_agent),
            ],
        )

        async def send(m: Message) -> Message | None:
            return await self.endpoint.request(m, (line.host, line.port))

        response = await request_with_auth(send, message, line.auth_user, line.password)
        ok = response is not None and response.status == 200
        if ok:
            self.stats.registered += 1
        else:
            self.stats.register_failed += 1
        return ok

    async def _on_request(self, request: Message, _addr: tuple[str, int]) -> Message | None:
        if request.method != "NOTIFY":
            return response_to(request, 405, "Method Not Allowed")
        event = (request.get("event") or "").split(";")[0].strip().lower()
        self.stats.notifies += 1
        self.say(f"NOTIFY Event: {request.get('event')}")
        if not self.answer_notify:
            return None  # a phone that ignores NOTIFYs: polling must save the day
        if event not in ("check-sync", "resync"):
            return response_to(request, 489, "Bad Event")
        task = asyncio.get_running_loop().create_task(self._resync(time.perf_counter()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return response_to(request, 200, "OK")

    async def _resync(self, since: float) -> None:
        changed = await self.fetch()
        self.stats.notify_to_fetch_ms.append((time.perf_counter() - since) * 1000)
        if changed:
            await self.register_all()
