"""Boot storm: the server's per-MAC fetch path against nginx serving the same bytes.

    python benchmarks/boot_storm.py [--devices 10000] [--duration 10] [--connections 50]

Seeds N devices (a mix of models, 1 to 4 lines each) in a fresh database, renders each device's
per-MAC file once into a folder that nginx serves as static files (same paths, same bytes), then
drives both with wrk in the same run — keep-alive, and a new connection per request as booting
phones do — with a Lua script choosing a random known device per request (its token, its file,
its vendor User-Agent). Prints requests/s, p50/p99 latency and the server/nginx ratio, and writes
benchmarks/results/boot_storm.json. Needs `wrk` and `nginx` (Debian packages of those names);
everything runs on loopback and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select

from provisioning.crypto import Cipher, generate_key, new_device_token, token_hash
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.migrate import upgrade
from provisioning.db.models import Account, Device, Line, LineSlot
from provisioning.devices import inventory
from provisioning.devices.catalog import load_catalog
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file
from provisioning.render.snapshot import device_data, find_device
from provisioning.settings import Settings

RESULTS = Path(__file__).parent / "results" / "boot_storm.json"
# A realistic mix: mostly Yealink, some Snom, Polycom, Fanvil, Grandstream, Cisco.
MIX = [
    ("yealink-t46u", "Yealink SIP-T46U 108.86.0.20 {colon}", 30),
    ("yealink-t54w", "Yealink SIP-T54W 96.86.0.45 {colon}", 15),
    ("yealink-t42u", "Yealink SIP-T42U 108.86.0.20 {colon}", 15),
    ("snom-d785", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004 {upper})", 10),
    ("polycom-vvx450", "FileTransport PolycomVVX-VVX_450-UA/6.4.3.5018 Type/Application", 10),
    ("fanvil-x4u", "Fanvil X4U 2.12.1 {mac}", 10),
    ("grandstream-gxp2170", "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId {mac}", 5),
    ("cisco-cp7841", "Cisco-CP-7841-3PCC/11.3.1 ({mac})", 5),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


async def seed(settings: Settings, count: int, root: Path) -> list[dict[str, str]]:
    """Devices, lines and slots by bulk inserts; every device's per-MAC file rendered into
    `root/<token>/<file>` for nginx. Returns what wrk needs per device."""
    catalog = load_catalog(settings.templates_dir)
    cipher = Cipher(settings.secret_key)
    engine = make_engine(settings.database_url)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    rng = random.Random(20261126)
    weights = [w for _, _, w in MIX]
    targets = []
    async with sessions() as session, session.begin():
        await inventory.sync_models(session, catalog)
        account_id = (
            await session.execute(
                insert(Account).values(
                    name="Storm", timezone="Europe/Paris", language="fr", street="",
                    postcode="", town="", country="FR",
                ).returning(Account.id)
            )
        ).scalar_one()  # fmt: skip
        password = cipher.encrypt("storm-password")
        batch = 2000
        for start in range(0, count, batch):
            devices, lines, plan = [], [], []
            for n in range(start, min(start + batch, count)):
                model_id, agent, _ = rng.choices(MIX, weights)[0]
                model = catalog.models[model_id]
                mac = f"02{n:010x}"
                token = new_device_token()
                devices.append(
                    {
                        "mac": mac, "model_id": model_id, "slot_count": model.slots,
                        "account_id": account_id, "state": "assigned",
                        "token_hash": token_hash(token), "token_enc": cipher.encrypt(token),
                        "config_revision": 1,
                    }
                )  # fmt: skip
                used = rng.randint(1, min(4, model.slots))
                for slot in range(1, used + 1):
                    lines.append(
                        {
                            "account_id": account_id, "number": f"+33{n:07d}{slot}",
                            "sip_username": f"s{n}x{slot}", "password_enc": password,
                            "registrar_host": "sip.example.net", "registrar_port": 5060,
                            "transport": "udp", "display_name": f"Line {slot}",
                        }
                    )  # fmt: skip
                plan.append((mac, token, model_id, agent, used))
            await session.execute(insert(Device), devices)
            await session.execute(insert(Line), lines)
            ids = dict(
                (await session.execute(select(Device.mac, Device.id).where(
                    Device.mac.in_([p[0] for p in plan])
                ))).all()
            )  # fmt: skip
            line_ids = iter(
                (
                    await session.scalars(
                        select(Line.id).order_by(Line.id.desc()).limit(len(lines))
                    )
                ).all()[::-1]
            )
            slots = []
            for mac, token, model_id, agent, used in plan:
                for slot in range(1, used + 1):
                    slots.append(
                        {
                            "device_id": ids[mac], "slot": slot, "line_id": next(line_ids),
                            "account_id": account_id,
                            "slot_count": catalog.models[model_id].slots,
                        }
                    )  # fmt: skip
                targets.append({"mac": mac, "token": token, "model": model_id, "agent": agent})
            await session.execute(insert(LineSlot), slots)
    renderer = Renderer(catalog)
    async with sessions() as session:
        for target in targets:
            device = await find_device(session, mac=target["mac"])
            assert device is not None
            data = device_data(device, cipher, settings)
            name, spec = next(
                (n, s) for n, s in device_files(catalog, device.model_id, device.mac) if s.secret
            )
            folder = root / target["token"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(render_file(renderer, settings, data, spec).body)
            mac = target["mac"]
            colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
            target["path"] = f"/{target['token']}/{name}"
            target["agent"] = target["agent"].format(colon=colon, upper=mac.upper(), mac=mac)
    await engine.dispose()
    return targets


def lua_script(targets: list[dict[str, str]], close: bool, folder: Path) -> Path:
    rows = ",\n".join(f"{{{json.dumps(t['path'])}, {json.dumps(t['agent'])}}}" for t in targets)
    connection = '["Connection"] = "close",' if close else ""
    script = folder / ("close.lua" if close else "keepalive.lua")
    script.write_text(
        f"local targets = {{\n{rows}\n}}\n"
        "math.randomseed(os.time())\n"
        "request = function()\n"
        "  local t = targets[math.random(#targets)]\n"
        f'  return wrk.format("GET", t[1], {{["User-Agent"] = t[2], {connection}}})\n'
        "end\n"
    )
    return script


def run_wrk(url: str, script: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
            "--latency", "-s", str(script), url,
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float | None:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out)
        if match is None:
            return None
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "requests_per_s": rps,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(non2xx[1]) if non2xx else 0,
    }


def start_nginx(root: Path, port: int, folder: Path) -> subprocess.Popen[bytes]:
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""
worker_processes auto;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        etag on;
    }}
}}
"""
    )
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(folder)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--server-args", default="", help="extra arguments to `serve`")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: apt-get install {tool}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key = generate_key()
        url = args.database_url or f"sqlite+aiosqlite:///{folder / 'storm.sqlite3'}"
        settings = Settings(database_url=url, secret_key=(key,), push_enabled=False)
        started = time.perf_counter()
        targets = asyncio.run(seed(settings, args.devices, folder / "static"))
        # nginx's workers run as an unprivileged user: let them read the files.
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        print(f"seeded {len(targets)} devices in {time.perf_counter() - started:.1f} s")
        server_port, nginx_port = free_port(), free_port()
        env = {
            **os.environ,
            "PROVISIONING_DATABASE_URL": url,
            "PROVISIONING_SECRET_KEY": key,
            "PROVISIONING_PUSH_ENABLED": "false",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "provisioning", "serve", "--port", str(server_port),
             *args.server_args.split()],
            env=env, stdout=subprocess.DEVNULL, stderr=(folder / "server.log").open("wb"),
        )  # fmt: skip
        nginx = start_nginx(folder / "static", nginx_port, folder)
        results: dict[str, Any] = {
            "devices": len(targets),
            "duration_s": args.duration,
            "connections": args.connections,
            "threads": args.threads,
            "database": "postgresql" if url.startswith("postgresql") else "sqlite",
        }
        try:
            wait_port(server_port)
            wait_port(nginx_port)
            for close in (False, True):
                mode = "new_connection" if close else "keep_alive"
                script = lua_script(targets, close, folder)
                # A short warm-up fills the render cache as phones' first boot would.
                run_wrk(f"http://127.0.0.1:{server_port}", script, argparse.Namespace(
                    threads=1, connections=10, duration=2))  # fmt: skip
                ours = run_wrk(f"http://127.0.0.1:{server_port}", script, args)
                reference = run_wrk(f"http://127.0.0.1:{nginx_port}", script, args)
                results[mode] = {
                    "server": ours,
                    "nginx": reference,
                    "ratio": round(ours["requests_per_s"] / reference["requests_per_s"], 3),
                }
        finally:
            server.send_signal(signal.SIGINT)
            nginx.send_signal(signal.SIGQUIT)
            server.wait(timeout=30)
            nginx.wait(timeout=30)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
