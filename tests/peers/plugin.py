"""pytest fixtures for real SIP peers; load with ``pytest_plugins = ["tests.peers.plugin"]``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.kamailio import Kamailio
from tests.peers.linphone import LinphoneDaemon
from tests.peers.require import require_binary


class LinphoneFactory:
    """Starts linphone-daemons on demand; ``close()`` stops every one of them."""

    def __init__(self, base_dir: Path, binary: str) -> None:
        self.base_dir = base_dir
        self.binary = binary
        self.daemons: list[LinphoneDaemon] = []

    def __call__(self, config_uri: str, user_agent: str | None = None) -> LinphoneDaemon:
        daemon = LinphoneDaemon(
            self.base_dir / f"linphone-{len(self.daemons)}",
            config_uri,
            user_agent,
            binary=self.binary,
        )
        # Registered before start() so a daemon that fails half-way is still cleaned up.
        self.daemons.append(daemon)
        # The daemon fetches its configuration before it opens its socket: on a loaded CI
        # machine that took more than the 10 s default once (IPv6 registrar test).
        daemon.start(timeout=30.0)
        return daemon

    def close(self) -> None:
        # Each quit unregisters and takes about half a second: let them all run at once.
        for daemon in self.daemons:
            # Whatever goes wrong here, stop() below escalates to a kill.
            with contextlib.suppress(Exception):
                daemon.request_stop()
        errors: list[BaseException] = []
        for daemon in reversed(self.daemons):
            try:
                daemon.stop()
            except Exception as exc:  # keep stopping the others: no process may leak
                errors.append(exc)
        self.daemons.clear()
        if errors:
            raise errors[0]


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    """A started kamailio registrar on fresh loopback ports, stopped after the test."""
    binary = require_binary("kamailio")
    server = Kamailio(tmp_path / "kamailio", binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def linphone_factory(tmp_path: Path) -> Iterator[LinphoneFactory]:
    """Call with ``(config_uri, user_agent=None)`` to start a provisioned linphone-daemon."""
    binary = require_binary("linphone-daemon")
    factory = LinphoneFactory(tmp_path, binary)
    try:
        yield factory
    finally:
        factory.close()
