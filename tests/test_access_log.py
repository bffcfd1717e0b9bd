"""The access log writes its lines itself, in batches: they must read as every other line of
the process does (the text or JSON format of `logs.configure`), tokens masked."""

from __future__ import annotations

import asyncio
import json
import logging
import re

from provisioning import logs


def test_text_lines_read_as_logging_writes_them() -> None:
    written: list[str] = []
    access = logs.AccessLog("text", written.append)
    access.add("192.0.2.7", "GET", logs.masked_path("/" + "A" * 24 + "/x.cfg"), 200, 1.25, "r1")
    assert len(written) == 1  # no event loop running: written at once
    (line,) = "".join(written).splitlines()
    record = logging.LogRecord(
        logs.ACCESS_LOGGER, logging.INFO, __file__, 1, logs.ACCESS_FORMAT,
        ("192.0.2.7", "GET", "/***/x.cfg", 200, 1.25), None,
    )  # fmt: skip
    expected = logs.RedactingFormatter(logs.TEXT_FORMAT).format(record)
    # The same fields in the same places; only the clock differs.
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(
        stamp + ' INFO aiohttp.access 192.0.2.7 "GET /\\*\\*\\*/x.cfg" 200 1.2ms', line
    )
    assert line.split(" ", 2)[2] == expected.split(" ", 2)[2]


def test_json_lines_carry_the_request_id_and_parse() -> None:
    written: list[str] = []
    access = logs.AccessLog("json", written.append)
    access.add("::1", "GET", '/a"b\\c.cfg', 404, 0.04, "abc123")
    access.add("::1", "HEAD", "/x.cfg", 200, 2.0, None)
    access.flush()
    first, second = (json.loads(line) for line in "".join(written).splitlines())
    assert list(first) == ["time", "level", "logger", "request_id", "message"]
    assert first["message"] == '::1 "GET /a"b\\c.cfg" 404 0.0ms'
    assert first["request_id"] == "abc123" and first["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["time"])
    assert "request_id" not in second


async def test_lines_wait_for_their_batch_then_are_written_together() -> None:
    written: list[str] = []
    access = logs.AccessLog("text", written.append, interval=0.05, limit=10_000)
    for n in range(3):
        access.add("192.0.2.1", "GET", f"/{n}.cfg", 200, 1.0, None)
    assert written == []
    await asyncio.sleep(0.2)
    assert len(written) == 1 and written[0].count("\n") == 3
    # Beyond `limit` bytes a batch is written at once.
    small = logs.AccessLog("text", written.append, interval=60, limit=100)
    small.add("192.0.2.1", "GET", "/" + "x" * 100, 200, 1.0, None)
    assert len(written) == 2
