"""A real kamailio registrar/proxy on loopback, driven over JSON-RPC (stdlib only)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import string
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.peers.require import free_port

_TEMPLATE = Path(__file__).with_name("kamailio.cfg.tmpl")

# An http_proxy in the environment (CI images, developer shells) must not capture the
# loopback RPC calls.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Port pick and kamailio's bind are not atomic; another process can win the race.
_START_ATTEMPTS = 3


class KamailioError(RuntimeError):
    """kamailio did not start, or a JSON-RPC call returned an error."""


class KamailioRPCError(KamailioError):
    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {code} {message}")
        self.method = method
        self.code = code
        self.message = message


class Kamailio:
    """One kamailio process: registrar with digest auth against htable ``users``.

    ``sip_port`` serves SIP on UDP and TCP, ``rpc_port`` JSON-RPC over HTTP at ``/RPC``.
    """

    # The config template listens on this address only.
    host = "127.0.0.1"

    def __init__(self, workdir: Path, *, binary: str = "kamailio") -> None:
        self.workdir = Path(workdir)
        self.binary = binary
        self.sip_port = free_port("udp")
        self.rpc_port = free_port("tcp")
        self.cfg_path = self.workdir / "kamailio.cfg"
        self.log_path = self.workdir / "kamailio.log"
        self.pid_path = self.workdir / "kamailio.pid"
        self.run_dir = self.workdir / "run"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._ids = itertools.count(1)

    # -- addresses ------------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.rpc_port}/RPC"

    @property
    def domain(self) -> str:
        """Host part that phones register to (the realm is taken from it)."""
        return self.host

    def proxy_uri(self, transport: str = "udp") -> str:
        """The outbound proxy in the form linphone's ``reg_proxy`` expects."""
        return f"<sip:{self.host}:{self.sip_port};transport={transport}>"

    def aor(self, username: str) -> str:
        return f"sip:{username}@{self.host}"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start kamailio and return once it answers JSON-RPC."""
        if self._proc is not None:
            raise KamailioError("already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._spawn()
            try:
                self._wait_ready(timeout)
                return
            except KamailioError:
                log = self.log_tail()
                self._shutdown()
                if attempt < _START_ATTEMPTS and "Address already in use" in log:
                    self.sip_port = free_port("udp")
                    self.rpc_port = free_port("tcp")
                    continue
                raise

    def _spawn(self) -> None:
        template = string.Template(_TEMPLATE.read_text())
        self.cfg_path.write_text(
            template.substitute(SIP_PORT=self.sip_port, RPC_PORT=self.rpc_port)
        )
        # Append so a retried start keeps the log of the failed attempt for diagnosis.
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                self.binary,
                "-DD",  # foreground, so stop() owns the process and its children
                "-E",
                "-f",
                str(self.cfg_path),
                "-P",
                str(self.pid_path),
                "-Y",
                str(self.run_dir),
                "-m",
                "64",
                "-M",
                "8",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Own process group: stop() can kill the workers if the main process hangs.
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise KamailioError(f"kamailio exited with {code} during start\n{self.log_tail()}")
            try:
                self.rpc("core.version", timeout=1.0)
                return
            except (OSError, KamailioError) as exc:
                last_error = exc
            time.sleep(0.05)
        raise KamailioError(
            f"kamailio did not answer JSON-RPC on {self.rpc_url} within {timeout} s "
            f"({last_error!r})\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop kamailio (SIGTERM, then SIGKILL of its process group). Idempotent."""
        self._shutdown(timeout)

    def _shutdown(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Kill the whole group before reaping the leader, so the group id cannot
                # have been reused by an unrelated process.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # A main process that died abnormally leaves its workers behind. While any of
            # them lives, the kernel keeps the group id reserved, so this reaches only them.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- JSON-RPC -------------------------------------------------------------------------

    def rpc(self, method: str, *params: Any, timeout: float = 5.0) -> Any:
        """Call a kamailio RPC command and return its ``result``."""
        body = json.dumps(
            {"jsonrpc": "2.0", "method": method, "params": list(params), "id": next(self._ids)}
        ).encode()
        request = urllib.request.Request(
            self.rpc_url,
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            # jsonrpcs maps RPC errors to HTTP status codes but still sends the JSON body.
            raw = exc.read()
            exc.close()
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise KamailioError(f"{method}: not JSON: {raw[:200]!r}") from exc
        if "error" in answer:
            error = answer["error"]
            raise KamailioRPCError(method, int(error.get("code", 0)), str(error.get("message")))
        return answer.get("result")

    def add_user(self, username: str, password: str) -> None:
        """Create or update a user that may REGISTER (``username`` is the AOR user part)."""
        self.rpc("htable.sets", "users", username, password)

    def remove_user(self, username: str) -> None:
        self.rpc("htable.delete", "users", username)

    def _aors(self) -> dict[str, list[str]]:
        result = self.rpc("ul.dump")
        aors: dict[str, list[str]] = {}
        for domain in result.get("Domains", []):
            for entry in domain.get("Domain", {}).get("AoRs", []):
                info = entry.get("Info", {})
                contacts = [
                    str(c["Contact"]["Address"])
                    for c in info.get("Contacts", [])
                    if "Contact" in c and "Address" in c["Contact"]
                ]
                aors.setdefault(str(info.get("AoR")), []).extend(contacts)
        return aors

    def registered_contacts(self, username: str) -> list[str]:
        """Contact URIs currently bound to ``username``; empty when it is not registered."""
        return self._aors().get(username, [])

    def registered_users(self) -> list[str]:
        return sorted(user for user, contacts in self._aors().items() if contacts)

    def clear_registrations(self) -> None:
        """Drop every binding, so a relayed request never waits on a dead phone's contact."""
        for username in self._aors():
            # KamailioRPCError: expired between the dump and the removal, already gone.
            with contextlib.suppress(KamailioRPCError):
                self.rpc("ul.rm", "location", username)

    # -- diagnostics ----------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return "\n".join(["--- kamailio log tail ---", *tail])
