"""The `provisioning` command as scripts use it: a real subprocess, real database, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioning.db.engine import SessionFactory
from provisioning.settings import Settings


class Cli:
    def __init__(self, settings: Settings, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
            "PROVISIONING_DATABASE_URL": settings.database_url,
            "PROVISIONING_SECRET_KEY": settings.secret_key[0],
            "PROVISIONING_PUBLIC_URL": "http://prov.example.net",
            "PROVISIONING_DEFAULT_REGISTRAR": "sip.example.net:5060",
        }

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "provisioning", *args],
            cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture
def cli(settings: Settings, sessions: SessionFactory, tmp_path: Path) -> Cli:
    return Cli(settings, tmp_path)


def test_a_phone_from_scratch(cli: Cli) -> None:
    account_id = cli.run("account", "add", "Alice", "--address", "1 rue X, 75001 Paris").stdout
    account_id = account_id.strip()
    assert account_id.isdigit()
    line = cli.json("line", "add", account_id, "+33123456789", "--password", "pw-1",
                    "--display-name", "Alice")  # fmt: skip
    assert line["username"] == "33123456789"
    assert line["registrar"] == "sip.example.net:5060"
    assert "pw-1" not in json.dumps(line)
    device = cli.json("device", "add", "00:15:65:4A:A9:37", "yealink-t46u", account_id)
    assert device["url"].startswith("http://prov.example.net/")
    assert device["mac"] == "0015654aa937"
    assigned = cli.json("device", "assign", "0015.654a.a937", str(line["id"]))
    assert assigned["slot"] == 1
    assert cli.run("device", "url", "0015654aa937").stdout.strip() == device["url"]
    shown = cli.json("device", "show", "0015654aa937")
    assert shown["url"] == device["url"]
    assert shown["slots"] == [{"slot": 1, "line_id": line["id"], "number": "+33123456789"}]
    assert shown["files"] == ["0015654aa937.boot", "y000000000108.cfg", "0015654aa937.cfg"]
    rendered = cli.run("render", "0015654aa937", "0015654aa937.cfg").stdout
    assert rendered.startswith("#!version:1.0.0.1\n")
    assert "account.1.password = pw-1" in rendered
    assert "account.2.enable = 0" in rendered
    all_files = cli.json("render", "0015654aa937")
    assert set(all_files) == set(shown["files"])
    assert all_files["0015654aa937.cfg"] == rendered
    assert cli.json("device", "list", "--unknown") == []
    listed = cli.json("device", "list")
    assert [d["mac"] for d in listed] == ["0015654aa937"]
    lines = cli.json("line", "list", "--account", account_id)
    assert lines[0]["device"] == "0015654aa937" and lines[0]["slot"] == 1
    unassigned = cli.json("device", "unassign", "0015654aa937", str(line["id"]))
    assert unassigned["slot"] == 1
    assert "account.1.enable = 0" in cli.run("render", "0015654aa937", "0015654aa937.cfg").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["device", "show", "zz:zz"], "not a MAC address"),
        (["device", "show", "00:15:65:00:00:99"], "not found"),
        (["device", "add", "001565000099", "yealink-t999", "1"], "unknown model"),
        (["account", "show", "424242"], "account 424242 not found"),
        (["line", "add", "424242", "+331", "--password", "x"], "not found"),
        (["account", "add", "Bad\x01Name"], "control characters"),
        (["account", "add", "X", "--address", "nowhere"], "address"),
        (["render", "001565000099"], "not found"),
    ],
)
def test_errors_are_one_line(cli: Cli, args: list[str], message: str) -> None:
    result = cli.run(*args, ok=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_names_the_key(cli: Cli) -> None:
    cli.env["PROVISIONING_POLL_INTERVAL"] = "900"
    result = cli.run("device", "list", ok=False)
    assert result.returncode == 1
    assert "PROVISIONING_POLL_INTERVAL" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_secret_key_is_a_clear_error(cli: Cli) -> None:
    account_id = cli.run("account", "add", "A").stdout.strip()
    cli.run("device", "add", "001565000001", "yealink-t46u", account_id)
    cli.env["PROVISIONING_SECRET_KEY"] = "not-a-key"
    assert "Fernet key" in cli.run("device", "show", "001565000001", ok=False).stderr
    from provisioning.crypto import generate_key

    cli.env["PROVISIONING_SECRET_KEY"] = generate_key()
    result = cli.run("device", "show", "001565000001", ok=False)
    assert "cannot be decrypted" in result.stderr
    assert "Traceback" not in result.stderr


def test_templates_check(cli: Cli) -> None:
    result = cli.run("templates", "check")
    assert "0 with problems" in result.stdout


def test_usage_error_exit_code(cli: Cli) -> None:
    assert cli.run("device", "frobnicate", ok=False).returncode == 2


def test_overrides(cli: Cli) -> None:
    account_id = cli.run("account", "add", "A").stdout.strip()
    cli.run("device", "add", "001565000001", "yealink-t46u", account_id)
    row = cli.json("override", "set", "model", "yealink-t46u", "lang.gui", "English")
    assert row == {
        "scope": "model",
        "target": "yealink-t46u",
        "key": "lang.gui",
        "value": "English",
    }
    cli.run("override", "set", "device", "00:15:65:00:00:01", "lang.gui", "German")
    assert "lang.gui = German" in cli.run("render", "001565000001", "001565000001.cfg").stdout
    listed = cli.json("override", "list")
    assert [(r["scope"], r["target"]) for r in listed] == [
        ("device", "001565000001"),
        ("model", "yealink-t46u"),
    ]
    cli.run("override", "unset", "device", "001565000001", "lang.gui")
    assert "lang.gui = English" in cli.run("render", "001565000001", "001565000001.cfg").stdout
    bad = cli.run("override", "set", "model", "yealink-t46u", "a b", "1", ok=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: key:")


def test_tokens_audit_and_key_rotation(cli: Cli) -> None:
    account_id = cli.run("account", "add", "A").stdout.strip()
    line = cli.json("line", "add", account_id, "+33100000001", "--password", "pw-rotate")
    cli.run("device", "add", "001565000001", "yealink-t46u", account_id)
    cli.run("device", "assign", "001565000001", str(line["id"]))
    created = cli.json("token", "create", "customer", account_id, "--name", "alice app")
    assert created["token"].startswith("pp_") and created["role"] == "customer"
    assert cli.run("token", "create", "customer", ok=False).returncode == 1
    listed = cli.json("token", "list")
    assert created["token"] not in json.dumps(listed)
    revoked = cli.json("token", "revoke", str(created["id"]))
    assert revoked["revoked_at"] is not None

    events = cli.json("audit", "--account", account_id)
    actions = [e["action"] for e in events]
    assert actions[::-1][:4] == ["account.create", "line.create", "device.create", "device.assign"]
    assert all(e["actor"].startswith("cli:") for e in events)
    trail = json.dumps(cli.json("audit", "--limit", "500"))
    assert "pw-rotate" not in trail and created["token"] not in trail
    device_events = cli.json("audit", "--device", "00:15:65:00:00:01")
    assert {e["action"] for e in device_events} == {"device.create", "device.assign"}

    from provisioning.crypto import generate_key

    old_key = cli.env["PROVISIONING_SECRET_KEY"]
    new_key = generate_key()
    cli.env["PROVISIONING_SECRET_KEY"] = f"{new_key},{old_key}"
    rotated = cli.json("secret", "rotate")
    assert rotated == {"lines": 1, "devices": 1, "credentials": 0}
    cli.env["PROVISIONING_SECRET_KEY"] = new_key  # the old key is gone: everything still reads
    assert (
        "account.1.password = pw-rotate"
        in cli.run("render", "001565000001", "001565000001.cfg").stdout
    )


def test_push_after_a_template_change(cli: Cli) -> None:
    account_id = cli.run("account", "add", "A").stdout.strip()
    for mac, model in (("001565000001", "yealink-t46u"), ("001565000002", "yealink-t54w")):
        cli.run("device", "add", mac, model, account_id)
    assert cli.run("push", "devices", ok=False).returncode == 1
    assert cli.json("push", "devices", "--model", "yealink-t46u") == {"queued": 1}
    assert cli.json("push", "devices", "--family", "yealink") == {"queued": 2}
    assert cli.json("push", "status") == {"pending": 3}
    shown = cli.json("device", "show", "001565000001")
    assert shown["config_revision"] == 3
