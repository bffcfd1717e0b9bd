"""`provisioning lab storm`: many emulated phones in one process, bounded, with a summary."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from statistics import quantiles

import aiohttp

from provisioning.devices.catalog import Catalog
from provisioning.lab.phone import EmulatedPhone, PhoneStats


@dataclass(frozen=True)
class StormDevice:
    url: str
    mac: str
    model_id: str


def percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return quantiles(values, n=100, method="inclusive")[q - 1]


async def storm(
    catalog: Catalog,
    devices: list[StormDevice],
    *,
    concurrency: int = 50,
    duration: float = 0.0,
    progress: bool = True,
) -> dict[str, object]:
    """Boot every phone (at most `concurrency` at once), keep them up for `duration` seconds
    (answering NOTIFYs), stop them, and summarise."""
    gate = asyncio.Semaphore(concurrency)
    phones: list[EmulatedPhone] = []
    done = 0
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def boot(device: StormDevice) -> None:
            nonlocal done
            family = catalog.family_of(device.model_id)
            phone = EmulatedPhone(
                device.url, device.mac, family, family.models[device.model_id], session=http
            )
            phones.append(phone)
            async with gate:
                try:
                    await phone.start()
                except (aiohttp.ClientError, OSError, TimeoutError):
                    phone.stats.register_failed += 1
            done += 1
            if progress:
                width = 30
                filled = width * done // len(devices)
                sys.stderr.write(
                    f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{len(devices)}"
                )
                sys.stderr.flush()

        await asyncio.gather(*(boot(d) for d in devices))
        boot_seconds = time.perf_counter() - started
        if progress:
            sys.stderr.write("\n")
        if duration > 0:
            await asyncio.sleep(duration)
        await asyncio.gather(*(p.stop() for p in phones))
    total = PhoneStats()
    for phone in phones:
        total.fetch_ms += phone.stats.fetch_ms
        total.registered += phone.stats.registered
        total.register_failed += phone.stats.register_failed
        total.notifies += phone.stats.notifies
        total.notify_to_fetch_ms += phone.stats.notify_to_fetch_ms
    return {
        "phones": len(devices),
        "boot_seconds": round(boot_seconds, 3),
        "fetches": len(total.fetch_ms),
        "fetch_ms_p50": percentile(total.fetch_ms, 50),
        "fetch_ms_p99": percentile(total.fetch_ms, 99),
        "registrations_ok": total.registered,
        "registrations_failed": total.register_failed,
        "notifies": total.notifies,
        "notify_to_fetch_ms_p50": percentile(total.notify_to_fetch_ms, 50),
        "notify_to_fetch_ms_p99": percentile(total.notify_to_fetch_ms, 99),
    }
