"""SIP messages: building requests and responses, parsing what comes off the wire (RFC 3261 §7).
Header names are matched case-insensitively, compact forms included."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from provisioning.numbers import parse_int

COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "o": "event",
    "k": "supported",
}
MAGIC_COOKIE = "z9hG4bK"


class SipParseError(ValueError):
    """Not a SIP message we can read."""


@dataclass
class Message:
    first_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_response(self) -> bool:
        return self.first_line.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        if not self.is_response:
            raise SipParseError("not a response")
        try:
            return int(self.first_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            raise SipParseError("bad status line") from None

    @property
    def method(self) -> str:
        if self.is_response:
            cseq = self.get("cseq") or ""
            return cseq.split()[-1] if cseq.split() else ""
        return self.first_line.split(" ", 1)[0]

    @property
    def uri(self) -> str:
        return self.first_line.split(" ")[1]

    def get(self, name: str) -> str | None:
        wanted = _canonical(name)
        for key, value in self.headers:
            if _canonical(key) == wanted:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        wanted = _canonical(name)
        return [value for key, value in self.headers if _canonical(key) == wanted]

    def encode(self) -> bytes:
        lines = [self.first_line]
        lines += [f"{k}: {v}" for k, v in self.headers if _canonical(k) != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def _canonical(name: str) -> str:
    lowered = name.strip().lower()
    return COMPACT.get(lowered, lowered)


def parse(data: bytes) -> Message:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0].strip()
    if not (first.startswith("SIP/2.0 ") or first.endswith(" SIP/2.0")):
        raise SipParseError("no SIP start line")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # folded continuation line
            key, value = headers[-1]
            headers[-1] = (key, value + " " + line.strip())
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise SipParseError("bad header line")
        headers.append((key.strip(), value.strip()))
    message = Message(first, headers, body)
    length = message.get("content-length")
    size = None if length is None else parse_int(length, 0, len(body))
    if size is not None:
        message.body = body[:size]
    return message


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


def param(header: str, name: str) -> str | None:
    """A `;name=value` parameter of a header value such as Via or To."""
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == name:
            return value
    return None


def response_to(request: Message, status: int, reason: str) -> Message:
    """A response copying Via, From, To (with a tag), Call-ID and CSeq (RFC 3261 §8.2.6)."""
    headers = [(k, v) for k, v in request.headers if _canonical(k) == "via"]
    to = request.get("to") or ""
    if status > 100 and param(to, "tag") is None:
        to = f"{to};tag={new_tag()}"
    headers += [
        ("From", request.get("from") or ""),
        ("To", to),
        ("Call-ID", request.get("call-id") or ""),
        ("CSeq", request.get("cseq") or ""),
    ]
    return Message(f"SIP/2.0 {status} {reason}", headers)
