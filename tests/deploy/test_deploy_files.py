"""Every file in deploy/ checked by the validator its software ships (nginx -t, systemd-analyze,
kea-dhcp4 -t, dnsmasq --test, kubernetes-validate) or, where none runs offline (compose,
Containerfile), by reading it: paths that exist, settings the server knows, a non-root user."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import netaddr
import yaml

from provisioning.crypto import generate_key
from provisioning.settings import PROJECT_ROOT, Settings
from tests.deploy.conftest import server_env
from tests.deploy.servers import UPSTREAM_LINE, Instance, instances, nginx_config
from tests.peers.require import free_port, require_binary

DEPLOY = PROJECT_ROOT / "deploy"
SETTING_NAMES = {f"PROVISIONING_{name.upper()}" for name in Settings.__dataclass_fields__}


def check_settings(env: dict[str, str]) -> None:
    """Each PROVISIONING_* variable is a setting the server knows, with a value it accepts
    (placeholders replaced, paths that only exist on the target host left out)."""
    names = {k for k in env if k.startswith("PROVISIONING_")}
    assert names <= SETTING_NAMES, names - SETTING_NAMES
    values = {}
    for key, value in env.items():
        if not key.startswith("PROVISIONING_") or key.endswith(("_DIR", "_FILE")):
            continue
        if key == "PROVISIONING_SECRET_KEY":
            value = generate_key()
        # Compose interpolation: ${VAR:-default} gives the default, ${VAR:?error} a value.
        value = re.sub(
            r"\$\{\w+(?::?([-?])([^}]*))?\}",
            lambda m: m.group(2) if m.group(1) == "-" else "value",
            value,
        )
        values[key[len("PROVISIONING_") :].lower()] = value.replace("CHANGE-ME", "x")
    Settings.from_mapping(values)


# -- nginx ---------------------------------------------------------------------------------------


def test_nginx_configuration_passes_nginx_t(tmp_path: Path) -> None:
    nginx = require_binary("nginx")
    config = nginx_config(tmp_path, [free_port("tcp"), free_port("tcp")], 8080, 8443)
    run = subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(tmp_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    site = (DEPLOY / "nginx" / "provisioning.conf").read_text()
    # What the server relies on, in both server blocks.
    for header in ("X-Forwarded-For $remote_addr", "X-Request-Id $request_id"):
        assert site.count(f"proxy_set_header {header};") == 2, header
    assert "X-Client-Cert $ssl_client_escaped_cert" in site
    assert site.count('proxy_set_header X-Client-Cert "";') == 1  # plain HTTP: never believed
    assert "ssl_verify_client optional;" in site


# -- systemd -------------------------------------------------------------------------------------


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    unit = (DEPLOY / "systemd" / "provisioning.service").read_text()
    assert "ExecStart=/opt/provisioning/.venv/bin/provisioning serve" in unit
    # The unit as installed, the program where it says (here: this venv's).
    program = Path(sys.executable).parent / "provisioning"
    installed = tmp_path / "provisioning.service"
    installed.write_text(unit.replace("/opt/provisioning/.venv/bin/provisioning", str(program)))
    run = subprocess.run(
        [analyze, "verify", str(installed)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    problems = [
        line
        for line in run.stderr.splitlines()
        if "provisioning.service" in line and "postgresql.service" not in line
    ]
    assert problems == [], run.stderr
    run = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(installed)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", run.stdout)
    assert found is not None, run.stdout[-2000:] + run.stderr
    assert float(found.group(1)) <= 2.0, run.stdout
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=\n"):
        assert option in unit


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            env[key.strip()] = value.strip()
    return env


def test_systemd_environment_file_holds_valid_settings() -> None:
    env = read_env_file(DEPLOY / "systemd" / "provisioning.env")
    check_settings(env)
    assert env["PROVISIONING_LOG_FORMAT"] == "json"


# -- container image and compose -----------------------------------------------------------------


def containerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "container" / "Containerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_container_image_runs_unprivileged_with_a_health_check() -> None:
    instructions = containerfile()
    final = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    health = next(rest for word, rest in final if word == "HEALTHCHECK")
    assert "/healthz" in health and "--interval" in health
    assert ("EXPOSE", "8080") in final
    for word, rest in instructions:
        if word == "COPY" and "--from" not in rest:
            for source in shlex.split(rest)[:-1]:
                assert (PROJECT_ROOT / source).exists(), source
    env: dict[str, str] = {}
    for word, rest in final:
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    check_settings(env)
    ignore = (DEPLOY / "container" / "Containerfile.dockerignore").read_text()
    assert "!provisioning" in ignore and "!templates" in ignore


async def test_the_health_check_command_works_against_a_server(
    database_url: str, tmp_path: Path
) -> None:
    """The image's HEALTHCHECK command, run as Docker runs it, against a real server (its port
    put in place of 8080), then against nothing."""
    health = next(rest for word, rest in containerfile() if word == "HEALTHCHECK")
    command = yaml.safe_load(health[health.index("CMD") + 3 :].strip())
    assert command[0] == "python" and "127.0.0.1:8080/healthz" in command[-1]
    server = Instance("health", tmp_path, server_env(database_url))

    def check(port: int) -> int:
        script = command[-1].replace(":8080/", f":{port}/")
        run = subprocess.run(
            [sys.executable, *command[1:-1], script], capture_output=True, timeout=30, check=False
        )
        return run.returncode

    with instances(server):
        server.start()
        await server.ready()
        assert await asyncio.to_thread(check, server.port) == 0
    assert await asyncio.to_thread(check, server.port) != 0


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_postgres_two_instances_and_nginx() -> None:
    data = compose()
    services = data["services"]
    assert {"postgres", "migrate", "provisioning-a", "provisioning-b", "nginx"} <= set(services)
    instances = [services["provisioning-a"], services["provisioning-b"]]
    subnet = netaddr.IPNetwork(data["networks"]["provisioning"]["ipam"]["config"][0]["subnet"])
    nginx_ip = services["nginx"]["networks"]["provisioning"]["ipv4_address"]
    for service in (*instances, services["migrate"]):
        env = service["environment"]
        check_settings(env)
        assert "postgres:5432" in env["PROVISIONING_DATABASE_URL"]
        assert netaddr.IPAddress(nginx_ip) in netaddr.IPSet([env["PROVISIONING_TRUSTED_PROXIES"]])
        build = service["build"]
        assert (DEPLOY / "compose" / build["context"] / build["dockerfile"]).is_file()
    for service in instances:
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        address = service["networks"]["provisioning"]["ipv4_address"]
        assert service["environment"]["PROVISIONING_PUSH_SIP_HOST"] == address
        assert netaddr.IPAddress(address) in subnet
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # nginx: the shipped site, its upstream line replaced by both instances.
    nginx = services["nginx"]
    script = nginx["command"][-1]
    assert f"s/{UPSTREAM_LINE}/" in script
    assert "server provisioning-a:8080;" in script and "server provisioning-b:8080;" in script
    for volume in nginx["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / "compose" / source).exists() or source == "./tls", source
    assert UPSTREAM_LINE in (DEPLOY / "nginx" / "provisioning.conf").read_text()
    env_example = read_env_file(DEPLOY / "compose" / "env.example")
    assert {"POSTGRES_PASSWORD", "PROVISIONING_SECRET_KEY"} <= set(env_example)


# -- Kubernetes ----------------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    files = [
        str(p) for p in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        if p.name != "kustomization.yaml"
    ]  # fmt: skip
    run = subprocess.run(
        [str(validator), "--strict", "-k", "1.30.0", *files],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("passed") == len(files), run.stdout


def test_kubernetes_manifests_fit_together() -> None:
    docs = manifests()
    deployment, service, pdb, job = (
        docs["Deployment"], docs["Service"], docs["PodDisruptionBudget"], docs["Job"]
    )  # fmt: skip
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["terminationGracePeriodSeconds"] > 60  # the server drains for 60 s
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {docs["ConfigMap"]["metadata"]["name"], docs["Secret"]["metadata"]["name"]}
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    check_settings({**docs["ConfigMap"]["data"], **docs["Secret"]["stringData"]})
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    assert all((DEPLOY / "kubernetes" / r).is_file() for r in kustomization["resources"])
    assert len(kustomization["resources"]) == len(list((DEPLOY / "kubernetes").glob("*.yaml"))) - 1


# -- DHCP option 66 ------------------------------------------------------------------------------


def test_kea_example_passes_kea_dhcp4_t(tmp_path: Path) -> None:
    kea = require_binary("kea-dhcp4")
    config = DEPLOY / "dhcp" / "kea-dhcp4.conf"
    run = subprocess.run(
        [kea, "-t", str(config)], capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tftp-server-name" in config.read_text()
    broken = tmp_path / "broken.conf"
    broken.write_text(config.read_text().replace('"tftp-server-name"', '"no-such-option"'))
    run = subprocess.run(
        [kea, "-t", str(broken)], capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode != 0  # the check is a real one


def test_dnsmasq_example_passes_dnsmasq_test(tmp_path: Path) -> None:
    dnsmasq = require_binary("dnsmasq")
    config = DEPLOY / "dhcp" / "dnsmasq.conf"
    run = subprocess.run(
        [dnsmasq, "--test", "-C", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r'^dhcp-option=66,"https?://', config.read_text(), re.M)
    broken = tmp_path / "broken.conf"
    broken.write_text(config.read_text().replace("dhcp-range=", "dhcp-rnge="))
    run = subprocess.run(
        [dnsmasq, "--test", "-C", str(broken)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode != 0


# -- fail2ban ------------------------------------------------------------------------------------


def test_fail2ban_filter_reads_text_and_json_log_lines() -> None:
    import configparser
    import json
    import logging

    from provisioning.logs import TEXT_FORMAT, JsonFormatter, RedactingFormatter

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(DEPLOY / "fail2ban" / "filter.d" / "provisioning.conf")
    failregex = parser["Definition"]["failregex"].strip()
    # fail2ban's <HOST> is an address group.
    pattern = re.compile(failregex.replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)"))
    record = logging.LogRecord(
        "provisioning.security.guard", logging.WARNING, __file__, 1,
        "phone-ban host=%s source=%s seconds=%d misses=%d",
        ("203.0.113.9", "203.0.113.0/24", 600, 20), None,
    )  # fmt: skip
    for line in (
        RedactingFormatter(TEXT_FORMAT).format(record),
        JsonFormatter().format(record),
    ):
        found = pattern.search(line)
        assert found is not None and found.group("host") == "203.0.113.9", line
    assert json.loads(JsonFormatter().format(record))["message"].startswith("phone-ban")


def test_readme_documents_every_deploy_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name != "README.md":
            relative = path.relative_to(DEPLOY).as_posix()
            assert relative in readme, f"deploy/README.md does not mention {relative}"
