"""A phone's token is a credential: it never reaches a log line, however the request spells it.
The server masks what it decoded (the token it would use), not a pattern of the raw text."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from provisioning.settings import Settings
from tests.conftest import YEALINK_MAC, YEALINK_UA, World
from tests.test_lane import exchange, get, serving, split_responses


def _spellings(token: str) -> list[str]:
    first = f"%{ord(token[0]):02X}"  # the token's first character percent-encoded
    lower = f"%{ord(token[0]):02x}"
    return [
        f"/{first}{token[1:]}/{YEALINK_MAC}.cfg",
        f"/{lower}{token[1:]}/{YEALINK_MAC}.cfg",
        f"/{YEALINK_MAC}.cfg?%74oken={token}",
        f"/{YEALINK_MAC}.cfg?tok%65n={first}{token[1:]}",
        f"/{YEALINK_MAC}.cfg?token={token}",
        f"/{YEALINK_MAC}.cfg?a=1&token={token}&b=2",
        f"/{token}/{YEALINK_MAC}.cfg",
    ]


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "aiohttp"])
async def test_no_spelling_of_a_token_reaches_the_log(
    settings: Settings,
    world: World,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    lane: bool,
) -> None:
    token = world.yealink_token
    async with serving(replace(settings, phone_lane=lane)) as (url, _):
        with caplog.at_level(logging.DEBUG):
            for path in _spellings(token):
                request = get(path, f"User-Agent: {YEALINK_UA}")
                answered = split_responses(await exchange(url, request))
                assert answered[0][0] == 200, path  # served: the token was understood
    # Every line: the access log's (written in batches to stderr, the last at shutdown) and
    # every other logger's.
    lines = [record.getMessage() for record in caplog.records]
    lines += capsys.readouterr().err.splitlines()
    assert sum(f"/{YEALINK_MAC}.cfg" in line for line in lines) >= len(_spellings(token))
    leaked = [line for line in lines if token[1:] in line]
    assert not leaked, leaked
