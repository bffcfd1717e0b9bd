"""The `provisioning` command starts light: `--help` and the commands that need no database
import neither SQLAlchemy, aiohttp nor the ORM models (checked on `-X importtime`'s list of
modules, not on a timing), and every group of the static table `--help` lists exists and loads."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import pytest

from provisioning import cli, commands
from provisioning.settings import PROJECT_ROOT

HEAVY = ("sqlalchemy", "aiohttp", "provisioning.db.models")


def imported_modules(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime -m provisioning ARGS`; the modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "provisioning", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "provisioning.cli" in modules, result.stderr[-2000:]
    return result, modules


def heavy_among(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)}


def test_help_imports_nothing_heavy() -> None:
    result, modules = imported_modules("--help")
    assert result.returncode == 0
    assert heavy_among(modules) == set()
    # No command module was imported to list the commands.
    command_modules = {m for g in cli.GROUPS.values() for m in g.modules} - {"provisioning.cli"}
    assert command_modules & modules == set()
    # The description is a whole sentence, and every group is listed with its help.
    assert cli.DESCRIPTION in " ".join(result.stdout.split())
    listed = re.findall(r"^    (\S+)", result.stdout, re.MULTILINE)
    assert listed == list(cli.GROUPS)
    for group in cli.GROUPS.values():
        assert group.help in result.stdout


@pytest.mark.parametrize("args", [["catalog", "list"], ["secret", "generate"]])
def test_commands_without_database_import_nothing_heavy(args: list[str]) -> None:
    result, modules = imported_modules(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
    assert heavy_among(modules) == set()


def test_a_usage_error_imports_nothing_heavy() -> None:
    result, modules = imported_modules("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert heavy_among(modules) == set()


@pytest.mark.parametrize("name", list(cli.GROUPS))
def test_every_group_of_the_table_loads(name: str) -> None:
    parser = commands.build_parser(cli.GROUPS, description=cli.DESCRIPTION, load=[name])
    specs = commands.group_specs(name)
    assert specs, f"{name}: no command registered by {cli.GROUPS[name].modules}"
    for spec in specs:
        assert spec.help
        words = list(spec.path)
        with pytest.raises(SystemExit) as exited:
            parser.parse_args([*words, "--help"])
        assert exited.value.code == 0


def test_every_registered_command_is_in_the_table() -> None:
    for group in cli.GROUPS.values():
        for module in group.modules:
            __import__(module)
    groups = {spec.path[0] for spec in commands.REGISTRY.values()}
    assert groups <= set(cli.GROUPS)
    # And each spec is reached from the table: its group lists the module defining it.
    for spec in commands.REGISTRY.values():
        assert spec.handler.__module__ in cli.GROUPS[spec.path[0]].modules, spec.path


def test_a_group_is_parsed_to_its_command() -> None:
    parser = commands.build_parser(cli.GROUPS, description=cli.DESCRIPTION, load=["device"])
    args = parser.parse_args(["device", "assign", "001565000001", "3", "--slot", "2"])
    assert isinstance(args, argparse.Namespace)
    assert args.spec.path == ("device", "assign")
    assert (args.mac, args.line_id, args.slot, args.json) == ("001565000001", 3, 2, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["device", "assign", "001565000001", "0"])
