"""A real headless Linphone phone (linphone-daemon) provisioned over HTTP (stdlib only)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Self

REGISTRATION_OK = "LinphoneRegistrationOk"
REGISTRATION_FAILED = "LinphoneRegistrationFailed"

# liblinphone logs each account's state change once per line naming the identity and the
# new state; counting distinct identities is robust to refresh REGISTERs repeating it.
_STATE_LINE = re.compile(
    r"for identity \[(?P<identity>[^\]]*)\] moving from state \[?\w+\]? to \[?(?P<state>\w+)"
)

# Lines worth showing when a wait fails: account states, the provisioning exchange and the
# SIP start lines liblinphone dumps, errors. The full log is mostly codec and sound noise.
_INTERESTING = re.compile(
    r"moving from state|created with proxy config|-error-|Cannot connect"
    r"|^(?:GET|POST) |^HTTP/1|^SIP/2\.0 |^[A-Z]+ sips?:\S+ SIP/2\.0|<config|<section"
)
# No sound card or database in a test sandbox: harmless, but they would bury the rest.
_NOISE = re.compile(r"alsa error|soundcard|PulseAudio|database|bctbx_file_open")


# See command(): a connection can be dropped unread while the daemon still holds another.
_COMMAND_ATTEMPTS = 4


class LinphoneError(RuntimeError):
    """linphone-daemon did not start or its control socket misbehaved."""


class LinphoneDaemon:
    """One linphone-daemon with its own state folder, linphonerc and control socket."""

    def __init__(
        self,
        workdir: Path,
        config_uri: str,
        user_agent: str | None = None,
        *,
        binary: str = "linphone-daemon",
    ) -> None:
        self.workdir = Path(workdir)
        self.config_uri = config_uri
        self.user_agent = user_agent
        self.binary = binary
        self.home = self.workdir / "home"
        self.runtime_dir = self.workdir / "run"
        self.rc_path = self.workdir / "linphonerc"
        self.log_path = self.workdir / "linphone.log"
        self.output_path = self.workdir / "daemon.out"
        # linphone-daemon always puts the socket in /tmp; the name must be unique per
        # instance and the whole path short enough for sun_path (108 bytes).
        self.pipe_name = f"lp-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.socket_path = Path("/tmp") / self.pipe_name
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._quit_sent = False

    # -- configuration --------------------------------------------------------------------

    def linphonerc(self) -> str:
        sip = [
            "[sip]",
            # -1 lets the core pick a random port: several daemons can run side by side.
            "sip_port=-1",
            "sip_tcp_port=-1",
            "sip_tls_port=0",
        ]
        if self.user_agent is not None:
            # Sets the HTTP User-Agent of the provisioning request as well as the SIP one.
            sip.append(f"user_agent={self.user_agent}")
        lines = [
            "[misc]",
            f"config-uri={self.config_uri}",
            "",
            *sip,
            "",
            "[rtp]",
            "audio_rtp_port=-1",
            "video_rtp_port=-1",
            "",
            # linphonerc has no switch to turn the audio stack off: the core still probes
            # ALSA/PulseAudio and logs harmless errors. Only per-call audio work is trimmed.
            "[sound]",
            "echocancellation=0",
            "",
            "[video]",
            "capture=0",
            "display=0",
            "automatically_initiate=0",
            "automatically_accept=0",
            "",
        ]
        return "\n".join(lines)

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # A fresh state folder per phone: liblinphone stores credentials (as ha1) and
        # provisioned accounts there, which would leak between tests.
        env.update(
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(self.runtime_dir),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
        )
        # A developer's PulseAudio would otherwise be opened by every test phone.
        env.pop("PULSE_SERVER", None)
        return env

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start the daemon and return once its control socket answers."""
        if self._proc is not None:
            raise LinphoneError("already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.chmod(0o700)
        self.rc_path.write_text(self.linphonerc())
        self._output = self.output_path.open("wb")
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--pipe",
                self.pipe_name,
                "--config",
                str(self.rc_path),
                "--log",
                str(self.log_path),
            ],
            # Commands go through the socket only; the daemon must never read the runner's stdin.
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env=self._environment(),
            cwd=self.workdir,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                self._cleanup_after_exit()
                raise LinphoneError(f"linphone-daemon exited with {code} during start\n{tail}")
            if self.socket_path.exists():
                with contextlib.suppress(OSError, LinphoneError):
                    if "Status: Ok" in self.command("version", timeout=1.0):
                        return
            time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise LinphoneError(f"linphone-daemon socket {self.socket_path} not ready\n{tail}")

    def request_stop(self) -> None:
        """Send ``quit`` without waiting, so several daemons can shut down in parallel."""
        if self._quit_sent or not self.running:
            return
        self._quit_sent = True
        # SIGTERM would leave the socket behind and skip unregistering: quit instead.
        # The daemon only closes the connection once it has unregistered and exits, so
        # do not wait for that here; the command is read before the end-of-file.
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.socket_path))
            sock.sendall(b"quit\n")

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the daemon to quit (it unregisters), kill it if it will not. Idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self.request_stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout / 2)
            if proc.poll() is None:
                # The first quit may have been dropped (the daemon serves one client).
                self._quit_sent = False
                self.request_stop()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout / 2)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self._cleanup_after_exit()

    def _cleanup_after_exit(self) -> None:
        self._proc = None
        self._quit_sent = False
        if self._output is not None:
            self._output.close()
            self._output = None
        self.socket_path.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

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

    # -- control socket -------------------------------------------------------------------

    def command(self, cmd: str, timeout: float = 5.0) -> str:
        """Send one daemon command and return its raw answer (``Status: Ok`` ...)."""
        if "\n" in cmd:
            raise ValueError("one command per call")
        for attempt in range(_COMMAND_ATTEMPTS):
            answer = self._exchange(cmd, timeout)
            # The daemon serves one client at a time and drops (closes unread) any other
            # connection, so an empty answer means the command was never run: retry.
            if answer:
                return answer
            time.sleep(0.05 * (attempt + 1))
        raise LinphoneError(f"daemon dropped the connection for {cmd!r} {_COMMAND_ATTEMPTS} times")

    def _exchange(self, cmd: str, timeout: float) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.socket_path))
            chunks: list[bytes] = []
            try:
                sock.sendall(cmd.encode() + b"\n")
                # The protocol has no end-of-answer marker. Half-closing makes the daemon
                # answer, see end-of-file and close, so EOF frames the answer; it also
                # guarantees the daemon let go of this client before the next command
                # connects (it refuses a second client while it still holds one).
                sock.shutdown(socket.SHUT_WR)
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except (ConnectionResetError, BrokenPipeError):
                pass
            except TimeoutError as exc:
                raise LinphoneError(f"no complete answer to {cmd!r} within {timeout} s") from exc
        return b"".join(chunks).decode(errors="replace")

    # -- log ------------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last interesting log lines (registration, HTTP, errors) for failure messages."""
        text = self.log_text()
        picked = [
            line
            for line in text.splitlines()
            if _INTERESTING.search(line) and not _NOISE.search(line)
        ][-lines:]
        parts = [f"--- linphone log {self.log_path} (filtered tail) ---", *picked]
        with contextlib.suppress(OSError):
            out = self.output_path.read_text(errors="replace").strip()
            if out:
                parts += ["--- daemon stdout/stderr ---", *out.splitlines()[-10:]]
        return "\n".join(parts)

    def account_states(self) -> dict[str, str]:
        """The latest registration state seen in the log, by account identity."""
        states: dict[str, str] = {}
        for match in _STATE_LINE.finditer(self.log_text()):
            states[match["identity"]] = match["state"]
        return states

    def registered_identities(self) -> list[str]:
        """Identities that reached LinphoneRegistrationOk at least once."""
        seen: dict[str, None] = {}
        for match in _STATE_LINE.finditer(self.log_text()):
            if match["state"] == REGISTRATION_OK:
                seen[match["identity"]] = None
        return list(seen)

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the log matches regular expression ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text())
            if match is not None:
                return match
            if time.monotonic() >= deadline or not self.running:
                raise AssertionError(
                    f"linphone log never matched {pattern!r} within {timeout} s"
                    f"{'' if self.running else ' (daemon exited)'}\n{self._diagnostics()}"
                )
            time.sleep(0.05)

    def wait_registrations(self, n: int, timeout: float = 15) -> None:
        """Wait until ``n`` accounts have logged LinphoneRegistrationOk."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.registered_identities()
            if len(done) >= n:
                return
            if time.monotonic() >= deadline or not self.running:
                raise AssertionError(
                    f"expected {n} successful registrations, saw {len(done)} {done} "
                    f"within {timeout} s{'' if self.running else ' (daemon exited)'}\n"
                    f"states: {self.account_states()}\n{self._diagnostics()}"
                )
            time.sleep(0.05)

    def _diagnostics(self) -> str:
        status = "(daemon not running)"
        if self.running:
            try:
                status = self.command("register-status ALL", timeout=2.0).strip()
            except (OSError, LinphoneError) as exc:
                status = f"(register-status failed: {exc!r})"
        return f"{self.log_tail()}\n--- register-status ALL ---\n{status}"
