"""Boot storm: the server's per-MAC fetch path against nginx serving the same bytes.

    python benchmarks/boot_storm.py [--devices 10000] [--duration 10] [--workers 2]

Seeds N devices (a mix of models, 1 to 4 lines each) in a fresh database (SQLite in a temporary
folder, or --database-url), renders the per-MAC file of a sample of them (--sample, default all
up to 10,000) into a folder nginx serves as static files (same paths, same bytes), runs the
server once until every device's files are rendered ahead (phones.prerender; skipped with
--render-at-fetch), then starts it again (`provisioning serve --workers W`, its defaults: access
log on) and nginx (logging each request to a file, as nginx does by default) on loopback, and
drives both with wrk in the same run, with a Lua script choosing a known device per request (its
token, its file, its vendor User-Agent):

- cold: on a server just started, the sampled devices ask in turn, each at most once, each on
  a new connection: a power cut, nothing in the server's memory (the server reads the file kept
  in the database, or renders it with --render-at-fetch; nginx reads a file);
- cold_paced: the same on a server started again, at about 1,000 phones a second (p99);
- keep_alive / new_connection: random devices, every file rendered once before and the same
  request heads answered once before, by a discarded wrk run of the same script (a server that
  has been up), with keep-alive and with a new connection per request as booting phones do;
- conditional: keep-alive with the ETag the phone holds (If-None-Match): answered 304;
- paced: about 1,000 requests/s (wrk's per-request delay), to read p99 at that rate;
- overload: 1,000 connections at once, new connection per request: 503s with Retry-After
  expected, no timeouts;
- framework: the same wrk settings against a bare aiohttp handler answering fixed bytes with the
  same workers and loop (what Python can do here at all).

Prints requests/s, p50/p99 latency and server/nginx ratios, the server's start-up time and
resident memory, and writes benchmarks/results/boot_storm.json (or --output). Needs `wrk` and
`nginx` (Debian packages of those names); everything runs on loopback and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
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

from sqlalchemy import insert, select, text

from provisioning.crypto import Cipher, generate_key, new_device_token, token_hash
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.migrate import upgrade
from provisioning.db.models import Account, Device, Line, LineSlot
from provisioning.devices import inventory
from provisioning.devices.catalog import load_catalog
from provisioning.phones.lookup import open_rows
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file
from provisioning.render.stored import StoredFiles
from provisioning.settings import Settings

RESULTS = Path(__file__).parent / "results" / "boot_storm.json"
# Written into the files (firmware and config URLs): the same for the seed's copies and the server,
# so nginx serves the very bytes the server renders.
PUBLIC_URL = "http://127.0.0.1:8080"
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


def wait_port(port: int, timeout: float = 30, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(step)
    raise SystemExit(f"nothing listens on port {port}")


async def seed(settings: Settings, count: int, sample: int, root: Path) -> list[dict[str, str]]:
    """Devices, lines and slots by bulk inserts; the per-MAC file of `sample` of them rendered
    into `root/<token>/<file>` for nginx. Returns what wrk needs per sampled device."""
    catalog = load_catalog(settings.templates_dir)
    cipher = Cipher(settings.secret_key)
    engine = make_engine(settings.database_url)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    rng = random.Random(20261126)
    weights = [w for _, _, w in MIX]
    chosen = set(rng.sample(range(count), sample))
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
    batch = 5000
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
            plan.append((n, mac, token, model_id, agent, used))
        async with sessions() as session, session.begin():
            await session.execute(insert(Device), devices)
            await session.execute(insert(Line), lines)
            ids = dict(
                (await session.execute(select(Device.mac, Device.id).where(
                    Device.mac.in_([p[1] for p in plan])
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
            for n, mac, token, model_id, agent, used in plan:
                for slot in range(1, used + 1):
                    slots.append(
                        {
                            "device_id": ids[mac], "slot": slot, "line_id": next(line_ids),
                            "account_id": account_id,
                            "slot_count": catalog.models[model_id].slots,
                        }
                    )  # fmt: skip
                if n in chosen:
                    targets.append(
                        {"id": ids[mac], "mac": mac, "token": token, "model": model_id,
                         "agent": agent}
                    )  # fmt: skip
            await session.execute(insert(LineSlot), slots)
        if count >= 100_000 and (start // batch) % 20 == 0:
            print(f"  {start + len(plan)} devices", flush=True)
    renderer = Renderer(catalog)
    rows = open_rows(settings.database_url)
    for target in targets:
        found = await rows.render_rows(int(target["id"]))
        assert found is not None
        name, spec = next(
            (n, s) for n, s in device_files(catalog, target["model"], target["mac"]) if s.secret
        )
        rendered = render_file(renderer, settings, found.device_data(cipher, settings), spec)
        folder = root / target["token"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(rendered.body)
        mac = target["mac"]
        colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
        target["path"] = f"/{target['token']}/{name}"
        target["agent"] = target["agent"].format(colon=colon, upper=mac.upper(), mac=mac)
        target["etag"] = rendered.etag
    await rows.close()
    await engine.dispose()
    return targets


def lua_script(
    targets: list[dict[str, str]],
    folder: Path,
    *,
    close: bool = False,
    walk: bool = False,
    etag: bool = False,
    delay_ms: int = 0,
) -> Path:
    """wrk's request generator: a random device per request (or each device in turn, `walk`),
    optionally closing the connection, sending the ETag, or pausing between requests. The
    request is written out whole, its headers in one order, as a phone sends them: wrk.format
    takes them from a Lua table, whose order varies from one request to the next, which made
    up to six different heads of one phone's request (the server keeps answers by head)."""
    rows = ",\n".join(
        f"{{{json.dumps(t['path'])}, {json.dumps(t['agent'])}, {json.dumps(t['etag'])}}}"
        for t in targets
    )
    extra = ""
    if close:
        extra += ' .. "Connection: close\\r\\n"'
    if etag:
        extra += ' .. "If-None-Match: " .. t[3] .. "\\r\\n"'
    pick = "targets[(n % #targets) + 1]" if walk else "targets[math.random(#targets)]"
    name = f"c{int(close)}w{int(walk)}e{int(etag)}d{delay_ms}.lua"
    script = folder / name
    script.write_text(
        f"local targets = {{\n{rows}\n}}\n"
        "math.randomseed(os.time())\n"
        "local n = 0\n"
        "request = function()\n"
        f"  local t = {pick}\n"
        "  n = n + 1\n"
        '  return "GET " .. t[1] .. " HTTP/1.1\\r\\nHost: provisioning.test\\r\\n"'
        f' .. "User-Agent: " .. t[2] .. "\\r\\n"{extra} .. "\\r\\n"\n'
        "end\n" + (f"delay = function() return {delay_ms} end\n" if delay_ms else "")
    )
    return script


def run_wrk(
    url: str,
    script: Path,
    *,
    threads: int,
    connections: int,
    duration: float,
    pid: int | None = None,
) -> dict[str, Any]:
    """wrk's figures; with `pid`, also the CPU time that process and its children spent per
    request meanwhile (µs): what a request costs, which the machine's noise moves less than
    requests a second."""
    before = cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(
        [
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
            "--latency", "-s", str(script), url,
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float | None:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out)
        if match is None:
            return None
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result: dict[str, Any] = {
        "requests_per_s": rps,
        "requests": total,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx_3xx": int(non2xx[1]) if non2xx else 0,
    }
    if pid is not None and total:
        result["cpu_us_per_request"] = round((cpu_seconds(pid) - before) / total * 1e6, 1)
    if errors:
        result["socket_errors"] = dict(
            zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)
        )
    return result


def start_nginx(
    root: Path, port: int, folder: Path, access_log: bool = True
) -> subprocess.Popen[bytes]:
    """nginx serving the same bytes, logging each request to a file as a production nginx does
    by default (`access_log` off only when the server's is off too)."""
    logging = f"access_log {folder}/nginx-access.log;" if access_log else "access_log off;"
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""
worker_processes auto;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    {logging}
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


def _tree(pid: int) -> list[str]:
    """A process and its children (the workers), as /proc names them."""
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [str(pid), *children]


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) used so far by a process and its children."""
    total = 0
    for proc in _tree(pid):
        stat = Path(f"/proc/{proc}/stat")
        if stat.exists():
            fields = stat.read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the workers), in MiB."""
    total = 0
    for proc in _tree(pid):
        status = Path(f"/proc/{proc}/status")
        if status.exists():
            match = re.search(r"VmRSS:\s+(\d+) kB", status.read_text())
            total += int(match[1]) if match else 0
    return round(total / 1024, 1)


async def fetch_all(port: int, targets: list[dict[str, str]]) -> int:
    """Every sampled device's file once (a server that has been up has rendered them)."""
    import aiohttp

    statuses: list[int] = []
    limit = asyncio.Semaphore(20)
    async with aiohttp.ClientSession() as client:

        async def one(target: dict[str, str]) -> None:
            async with (
                limit,
                client.get(
                    f"http://127.0.0.1:{port}{target['path']}",
                    # A new connection each time: the kernel hands it to any worker.
                    headers={"User-Agent": target["agent"], "Connection": "close"},
                ) as resp,
            ):
                await resp.read()
                statuses.append(resp.status)

        await asyncio.gather(*(one(t) for t in targets))
    return sum(1 for s in statuses if s == 200)


async def cached_files(port: int) -> float:
    """Rendered files held by all workers' caches, from /metrics (synced every few seconds)."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        text = await resp.text()
    match = re.search(r"^provisioning_render_cache_entries(?:\{[^}]*\})? (\S+)$", text, re.M)
    return float(match[1]) if match else 0.0


def warm_up(port: int, targets: list[dict[str, str]], workers: int) -> dict[str, Any]:
    """Every sampled file in every worker's cache (a server that has been up): passes over all
    devices until the caches hold them, as /metrics reports."""
    passes, held, served = 0, 0.0, 0
    while passes < 10:
        served = asyncio.run(fetch_all(port, targets))
        passes += 1
        time.sleep(6)  # the workers copy their cache counters into /metrics every 5 s
        held = asyncio.run(cached_files(port))
        if held >= 0.98 * workers * len(targets):
            break
    return {"passes": passes, "cached_files": held, "served_last_pass": served}


async def same_bytes(server_port: int, nginx_port: int, targets: list[dict[str, str]]) -> bool:
    import aiohttp

    async with aiohttp.ClientSession() as client:
        for target in targets:
            bodies = []
            for port in (server_port, nginx_port):
                async with client.get(
                    f"http://127.0.0.1:{port}{target['path']}",
                    headers={"User-Agent": target["agent"]},
                ) as resp:
                    bodies.append(await resp.read())
            if bodies[0] != bodies[1]:
                return False
    return True


def start_profile(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy (PyPI) sampling one server worker while wrk runs, if it is installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found (pip install py-spy): no profile", file=sys.stderr)
        return None
    workers = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()  # fmt: skip
    target = workers[0] if workers else str(pid)
    return subprocess.Popen(
        [spy, "record", "-p", target, "-d", str(seconds), "-f", "raw", "-o", str(out),
         "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def profile_summary(raw: Path, top: int = 15) -> dict[str, Any]:
    """Share of the worker's samples per function: where the time went (inclusive), and which
    functions were on the CPU themselves (own)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # "function (path/file.py:line)" -> "function (path/file.py)": one entry per function.
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f]
        n = int(count)
        total += n
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n

    def share(counts: dict[str, int], keep: Any) -> list[list[Any]]:
        ranked = sorted(((n, f) for f, n in counts.items() if keep(f)), reverse=True)[:top]
        return [[f, round(n / total, 3)] for n, f in ranked]

    return {
        "samples": total,
        "inclusive_project": share(inclusive, lambda f: "provisioning/" in f),
        "own": share(own, lambda f: True),
    }


def start_server(
    env: dict[str, str], args: argparse.Namespace, log: Path
) -> tuple[subprocess.Popen[bytes], int, float]:
    """`provisioning serve` on a free port: the process, its port, seconds to listening."""
    port = free_port()
    launched = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "serve", "--port", str(port),
         "--workers", str(args.workers), *args.server_args.split()],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    wait_port(port, step=0.01)
    return server, port, time.perf_counter() - launched


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        print(f"{process.args[:4]} did not stop within 90 s: killed", file=sys.stderr)  # type: ignore[index]
        process.kill()


async def rendered_ahead(url: str, env: dict[str, str], *, clear: bool = False) -> int:
    """Devices whose files are kept in the database (render.stored) at their revision and with
    the fingerprint of a server started with `env`; `clear`: none any more."""
    fingerprint = StoredFiles.for_settings(Settings.from_env(env)).fingerprint
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            if clear:
                await connection.execute(text("DELETE FROM rendered_files"))
                return 0
            found = await connection.execute(
                text(
                    "SELECT count(DISTINCT r.device_id) FROM rendered_files r JOIN devices d"
                    " ON d.id = r.device_id AND d.config_revision = r.revision"
                    " WHERE r.fingerprint = :fingerprint"
                ),
                {"fingerprint": fingerprint},
            )
            return int(found.scalar_one())
    finally:
        await engine.dispose()


def compare(ours: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": ours,
        "nginx": reference,
        "ratio": round(ours["requests_per_s"] / reference["requests_per_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--sample", type=int, help="devices wrk asks for (default: up to 10,000)")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument(
        "--cold-duration",
        type=int,
        default=2,
        help="seconds of the cold phase: each device at most once at up to N/seconds a second",
    )
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="server processes (2 cores here)")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--server-args", default="", help="extra arguments to `serve`")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="the server's access log off, and nginx's (both log by default)",
    )
    parser.add_argument(
        "--no-phone-lane",
        action="store_true",
        help="phones' GETs through aiohttp's own route (PHONE_LANE=false), to weigh the lane",
    )
    parser.add_argument(
        "--render-at-fetch",
        action="store_true",
        help="nothing rendered ahead (PRERENDER_RATE=0): each first fetch renders",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy one worker during the keep-alive phase"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="folder keeping the seeded database, key and files: seeded on the first run, reused "
        "by the next ones (1,000,000 devices take minutes to seed)",
    )
    args = parser.parse_args()
    sample = min(args.sample or 10_000, args.devices)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: apt-get install {tool}")
    # wrk's 1,000 connections of the overload phase, and the server's side of them.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    # Logs (nginx's access log, the server's stderr) and scratch files in memory when the
    # machine has a tmpfs: on this VM's disk, write-back stalls held nginx's workers on their
    # log writes for hundreds of milliseconds (p99 0.2-0.6 s, its figures halved run to run).
    shm = Path("/dev/shm")  # noqa: S108 (a private folder made inside it by mkdtemp)
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        folder = Path(tmp)
        store = args.keep or folder
        store.mkdir(parents=True, exist_ok=True)
        url = args.database_url or f"sqlite+aiosqlite:///{store.resolve() / 'storm.sqlite3'}"
        kept = store / "targets.json"
        if args.keep and kept.exists():
            key = (store / "key").read_text()
            targets = json.loads(kept.read_text())
            seeded = json.loads((store / "seeded.json").read_text())["seconds"]
        else:
            key = generate_key()
            settings = Settings(
                database_url=url, secret_key=(key,), push_enabled=False, public_url=PUBLIC_URL
            )
            started = time.perf_counter()
            targets = asyncio.run(seed(settings, args.devices, sample, store / "static"))
            seeded = time.perf_counter() - started
            if args.keep:
                (store / "key").write_text(key)
                (store / "seeded.json").write_text(json.dumps({"seconds": seeded}))
                kept.write_text(json.dumps(targets))
        # nginx's workers run as an unprivileged user: let them read the files.
        for path in {folder, store, *store.rglob("*")}:
            path.chmod(0o755 if path.is_dir() else 0o644)
        print(f"seeded {args.devices} devices in {seeded:.1f} s; wrk asks for {len(targets)}")
        nginx_port, bare_port = free_port(), free_port()
        # The server's defaults (access log on, rendering ahead on), but for what the
        # benchmark must set.
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
            "PROVISIONING_DATABASE_URL": url,
            "PROVISIONING_SECRET_KEY": key,
            "PROVISIONING_PUSH_ENABLED": "false",
            "PROVISIONING_PUBLIC_URL": PUBLIC_URL,
        }
        if args.no_access_log:
            env["PROVISIONING_ACCESS_LOG"] = "false"
        if args.no_phone_lane:
            env["PROVISIONING_PHONE_LANE"] = "false"
        results: dict[str, Any] = {
            "devices": args.devices,
            "sampled_devices": len(targets),
            "seconds_to_seed": round(seeded, 1),
            "duration_s": args.duration,
            "connections": args.connections,
            "threads": args.threads,
            "workers": args.workers,
            "database": "postgresql" if url.startswith("postgresql") else "sqlite",
            "access_log": not args.no_access_log,
            "phone_lane": not args.no_phone_lane,
            "rendered_ahead": not args.render_at_fetch,
        }
        if args.render_at_fetch:
            env["PROVISIONING_PRERENDER_RATE"] = "0"
            asyncio.run(rendered_ahead(url, env, clear=True))
        else:
            # A server that has been up: every device's files rendered ahead (as fast as it
            # can here; its default pace is PRERENDER_RATE), then stopped.
            started = time.perf_counter()
            prep, _, _ = start_server(
                env | {"PROVISIONING_PRERENDER_RATE": "100000"}, args, folder / "prep.log"
            )
            try:
                done, last_change, count = 0, time.monotonic(), -1
                while (done := asyncio.run(rendered_ahead(url, env))) < args.devices:
                    if done != count:
                        count, last_change = done, time.monotonic()
                    elif time.monotonic() - last_change > 60:
                        raise SystemExit(f"rendering ahead stopped at {done} devices: see prep.log")
                    time.sleep(1)
            finally:
                stop(prep)
            results["seconds_to_render_ahead"] = round(time.perf_counter() - started, 1)
            print(f"every device's files rendered ahead in {results['seconds_to_render_ahead']} s")
        nginx = start_nginx(store / "static", nginx_port, folder, not args.no_access_log)
        bare = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "framework.py"), str(bare_port),
             str(args.workers)]
        )  # fmt: skip
        nginx_url = f"http://127.0.0.1:{nginx_port}"
        wrk = {"threads": args.threads, "connections": args.connections}
        server: subprocess.Popen[bytes] | None = None
        try:
            wait_port(nginx_port)
            wait_port(bare_port)
            # nginx first: the server goes on working after a phase (sightings written, the
            # renderer's pass), which would be counted against nginx measured after it.
            cold_script = lua_script(targets, folder, close=True, walk=True)
            paced_script = lua_script(targets, folder, close=True, walk=True, delay_ms=20)
            # The prep server's last writes flushed first, and nginx's files read once (the
            # server's kept files are in the database's cached pages too): measured right after
            # the prep server stopped, nginx waited on the disk (p99 0.5 s, 2,000 requests/s).
            os.sync()
            run_wrk(nginx_url, cold_script, **wrk, duration=args.cold_duration)
            nginx_cold = run_wrk(
                nginx_url, cold_script, **wrk, duration=args.cold_duration, pid=nginx.pid
            )
            nginx_paced = run_wrk(
                nginx_url, paced_script, threads=1, connections=20, duration=args.duration
            )
            # The boot storm proper, on a server just started: each device once, on a new
            # connection, nothing in the server's memory. Short enough not to come round to
            # a device again (`wrapped` says if it did: more devices, or a shorter phase).
            server, server_port, startup = start_server(env, args, folder / "server.log")
            results["startup_s"] = round(startup, 2)
            cold = run_wrk(
                f"http://127.0.0.1:{server_port}", cold_script, **wrk,
                duration=args.cold_duration, pid=server.pid,
            )  # fmt: skip
            cold["wrapped"] = cold["requests"] > len(targets)
            results["cold"] = compare(cold, nginx_cold)
            results["rss_mb_after_cold"] = rss_mb(server.pid)
            # The same at about 1,000 phones a second (20 connections, 20 ms between a
            # connection's requests), on a server just started again: p99 is the bar.
            stop(server)
            server, server_port, _ = start_server(env, args, folder / "server-paced.log")
            paced = run_wrk(
                f"http://127.0.0.1:{server_port}", paced_script, threads=1, connections=20,
                duration=args.duration,
            )  # fmt: skip
            paced["wrapped"] = paced["requests"] > len(targets)
            results["cold_paced"] = compare(paced, nginx_paced)
            ours_url = f"http://127.0.0.1:{server_port}"
            results["warm_up"] = warm_up(server_port, targets, args.workers)
            same = asyncio.run(same_bytes(server_port, nginx_port, targets[:50]))
            if not same:
                raise SystemExit("the server's files differ from nginx's copies: not comparable")
            for mode, close in (("keep_alive", False), ("new_connection", True)):
                script = lua_script(targets, folder, close=close)
                # The heads these phones send, once through each worker first: a server that
                # has been up has answered them before (phones.answers keeps answers by head;
                # the aiohttp client of the warm-up sends other headers).
                results[mode] = {
                    "server_warm_up": run_wrk(ours_url, script, **wrk, duration=args.duration)
                }
                spy = None
                if args.profile and not close:
                    spy = start_profile(server.pid, max(1, args.duration - 2), folder / "spy.txt")
                ours = run_wrk(ours_url, script, **wrk, duration=args.duration, pid=server.pid)
                if spy is not None and spy.wait(timeout=60) == 0:
                    results["profile_keep_alive"] = profile_summary(folder / "spy.txt")
                results[mode] |= compare(
                    ours, run_wrk(nginx_url, script, **wrk, duration=args.duration, pid=nginx.pid)
                )
                bare_result = run_wrk(
                    f"http://127.0.0.1:{bare_port}", script, **wrk, duration=args.duration
                )
                results[mode]["framework"] = bare_result
                results[mode]["ratio_to_framework"] = round(
                    ours["requests_per_s"] / bare_result["requests_per_s"], 3
                )
            script = lua_script(targets, folder, etag=True)
            run_wrk(ours_url, script, **wrk, duration=args.duration)  # these heads once first
            conditional = run_wrk(ours_url, script, **wrk, duration=args.duration)
            results["conditional"] = {
                "server": conditional,
                "ratio_to_keep_alive": round(
                    conditional["requests_per_s"]
                    / results["keep_alive"]["server"]["requests_per_s"],
                    3,
                ),
            }
            # About 1,000 requests/s: 20 connections, each pausing 20 ms between requests.
            script = lua_script(targets, folder, delay_ms=20)
            results["paced"] = compare(
                run_wrk(ours_url, script, threads=1, connections=20, duration=args.duration),
                run_wrk(nginx_url, script, threads=1, connections=20, duration=args.duration),
            )
            script = lua_script(targets, folder, close=True)
            results["overload"] = {
                "connections": 1000,
                "server": run_wrk(
                    ours_url, script, threads=args.threads, connections=1000, duration=args.duration
                ),
            }
            results["rss_mb"] = rss_mb(server.pid)
        finally:
            if server is not None:
                stopped = time.perf_counter()
                stop(server)
                results["seconds_to_stop"] = round(time.perf_counter() - stopped, 1)
            nginx.send_signal(signal.SIGQUIT)
            bare.send_signal(signal.SIGINT)
            for process in (nginx, bare):
                try:
                    process.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    print(f"{process.args[:4]} did not stop within 90 s: killed", file=sys.stderr)
                    process.kill()
            if args.keep:
                shutil.copy(folder / "server.log", store / "server.log")
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
