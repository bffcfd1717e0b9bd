"""The line formats beside `key = value` and XML (catalog.FORMATS): what each escaping refuses,
and that the package's validator and the strict parsers of the tests refuse the same breakage."""

from __future__ import annotations

import pytest

from provisioning.devices.catalog import FORMATS
from provisioning.render.escaping import FINALIZERS, FORBIDDEN, UnsafeValue, check_text
from provisioning.render.validate import validate
from tests.families.strict import FormatError, settings_of

TEXT_FORMATS = ("colon", "spaced", "ini", "quoted", "cli", "ini_indented")


def test_every_format_has_escaping_validation_and_a_strict_parser() -> None:
    for fmt in FORMATS:
        assert fmt in FINALIZERS and fmt in FORBIDDEN
        assert validate(fmt, b"") is not None
        assert not any("no validator" in p for p in validate(fmt, b""))


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\u2028b", "a\tb"])
def test_a_line_break_or_control_is_refused(fmt: str, value: str) -> None:
    assert not check_text(value, fmt)
    with pytest.raises(UnsafeValue):
        FINALIZERS[fmt](value)


def test_a_quote_or_comment_sign_is_refused_only_where_it_cuts_the_value() -> None:
    with pytest.raises(UnsafeValue, match="double quote"):
        FINALIZERS["quoted"]('pa"ss')
    assert not check_text('pa"ss', "quoted")
    with pytest.raises(UnsafeValue, match="comment"):
        FINALIZERS["colon"]("pa#ss")
    assert not check_text("pa#ss", "colon") and check_text("pa#ss", "ini")
    # The separators inside a value are harmless where the key ends at the first one.
    for fmt, value in (("colon", 'sip:a@b: c "q"'), ("spaced", "a b c"), ("ini", "a=b=c")):
        assert FINALIZERS[fmt](value) == value and check_text(value, fmt)


GOOD = {
    "colon": b"# comment\nsip line1 auth name: bob\nsip line1 password: p:w\n\n",
    "spaced": b"# c\n[USER_CONFIG]\nVERSION 000001\nSIP_DOMAIN1 pbx.example.net\n",
    "ini": b"[sip]\nregid1=bob\n; c\n[sys]\nconfig_sn=000000000001\n",
    "quoted": b'# Panasonic SIP Phone Standard Format File #\r\nSIP_AUTHID_1="bob"\r\n\r\n',
    "cli": b'# c\nactions\n  rule R\n    action "a b"\n\nuser x password y\n',
    "ini_indented": b"[general]\n auto_update_interval=5\n\n[sip]\n sip_id=bob\n auth_pwd=a=b\n",
}
BAD = {
    "cli": [b"  indented first\n", b"a\n    too deep\n", b'a "open\n', b"a  b\n", b"a\tb\n"],
    "ini_indented": [b" a=1\n", b"[s]\na=1\n", b"[s]\n  a=1\n", b"[s]\n a = 1\n", b"[s]\n a=1\n a=2\n",
                     b"[s]\n# c\n", b"[s]\n a=\x01\n", b" [s]\n"],
    "colon": [b"sip line1 auth name bob\n", b"a b: 1\nA B: 2\n", b"key:\x0bx\n"],
    "spaced": [b"KEY\n", b"KEY  v\n", b"K v\nK w\n", b"K v\x0bw\n", b"K " + b"v" * 80 + b"\n", b"k v\n"],
    "ini": [b"a=1\n", b"[s]\na = 1\n", b"[s]\na=1\na=2\n", b"[s]\nnot a setting\n", b"[s]\na=\x01\n"],
    "quoted": [b'A="1"\r\n', b'# Panasonic SIP Phone Standard Format File #\r\nA="x"y"\r\n',
               b"# Panasonic SIP Phone Standard Format File #\r\nA=1\r\n",
               b'# Panasonic SIP Phone Standard Format File #\nA="1"\n',  # LF alone
               b'# Panasonic SIP Phone Standard Format File #\r\nA="1"',  # last line open
               b'# Panasonic SIP Phone Standard Format File #\r\nA="1"\r\nA="2"\r\n'],
}  # fmt: skip


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_validator_and_strict_parser_agree(fmt: str) -> None:
    assert validate(fmt, GOOD[fmt]) == []
    assert settings_of(fmt, GOOD[fmt])
    for body in BAD[fmt]:
        assert validate(fmt, body), body
        with pytest.raises(FormatError):
            settings_of(fmt, body)


def test_cli_paths_follow_the_modes() -> None:
    assert settings_of("cli", GOOD["cli"]) == {
        "/actions[0]": "",
        "/actions[0]/rule[0]": "R",
        "/actions[0]/rule[0]/action[0]": '"a b"',
        "/user[0]": "x password y",
    }


def test_sections_are_part_of_the_path() -> None:
    assert settings_of("ini", GOOD["ini"]) == {"sip/regid1": "bob", "sys/config_sn": "000000000001"}
    spaced = settings_of("spaced", GOOD["spaced"])
    assert spaced["USER_CONFIG/SIP_DOMAIN1"] == "pbx.example.net"


def test_zenitel_ini_reads_indented_settings_by_section() -> None:
    assert settings_of("ini_indented", GOOD["ini_indented"]) == {
        "general/auto_update_interval": "5",
        "sip/sip_id": "bob",
        "sip/auth_pwd": "a=b",
    }
