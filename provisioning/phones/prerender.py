"""Rendering in the background (render.stored): every device's files rendered at its config
revision and kept in the database, so that a phone's first fetch after a restart reads them.

A pass looks for devices none of whose files is kept at their revision with this server's
fingerprint, renders them at most PRERENDER_RATE devices a second, and writes them a batch at
a time. A pass starts when `row_generation` moved since the last one (any change to a device's
revision moves it) and at start-up (a new template set makes every kept file stale), unless
the last whole pass of this share (`prerender_passes`) started at the very row_generation the
database has now and with this fingerprint: then nothing changed since, and the start-up pass
is skipped. That scan reads every device; a million devices cost each worker 1.2-1.8 s of CPU,
which a restart paid right in the middle of the boot storm it was restarted for. Each worker
process takes its share of the devices (id modulo the worker count); instances on one
database may render the same device twice, never wrongly (a newer revision is never replaced
by an older one).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from provisioning.crypto import SecretKeyError
from provisioning.db.errors import DB_ERRORS, describe
from provisioning.db.models import PrerenderPass, RowGeneration
from provisioning.phones.lookup import StoredRow
from provisioning.render.environment import RenderError
from provisioning.render.files import device_files, render_file
from provisioning.state import Services

log = logging.getLogger(__name__)

BATCH = 200  # devices read and written per transaction
IDLE_SECONDS = 2.0  # between passes: how soon a change is rendered ahead of its fetch
# A pass's scan for pending devices reads every device: the next pass waits at least this many
# times as long as that scan took (a million devices: a scan of about a second), so phones'
# first sightings, which move `row_generation` all through a boot storm, cost little.
SCAN_SHARE = 10


class Prerenderer:
    def __init__(self, services: Services, share: tuple[int, int] = (0, 1)) -> None:
        self.services = services
        self.share = share
        self.rate = services.settings.prerender_rate
        self.rendered = 0  # devices, since start (tests, progress)
        self.passes = 0
        self.passed = asyncio.Event()  # set after each pass (tests, the benchmark)
        self.scan_seconds = 0.0  # the last pass's reads of pending devices
        self._done_at: int | None = None
        self._failed: set[tuple[int, int]] = set()  # (device, revision) that cannot render

    async def run(self) -> None:
        while True:
            try:
                await self.pass_once()
            except DB_ERRORS as exc:
                log.warning("pre-render: database unavailable: %s", describe(exc))
            except Exception:
                log.exception("pre-render: unexpected error; trying again")
            await asyncio.sleep(max(IDLE_SECONDS, SCAN_SHARE * self.scan_seconds))

    @property
    def _share_key(self) -> str:
        index, count = self.share
        return f"{index}/{count}"

    async def _since_last_pass(self) -> tuple[int | None, bool]:
        """(row_generation now, whether this share's last whole pass started at it with this
        fingerprint: nothing to render)."""
        async with self.services.sessions() as session:
            now = await session.scalar(select(RowGeneration.value).where(RowGeneration.id == 1))
            last = await session.get(PrerenderPass, self._share_key)
        done = (
            now is not None
            and last is not None
            and last.generation == now
            and last.fingerprint == self.services.stored.fingerprint
        )
        return now, done

    async def _note_pass(self, started_at: int) -> None:
        """This share's devices all rendered, as of `started_at`."""
        try:
            async with self.services.sessions() as session, session.begin():
                last = await session.get(PrerenderPass, self._share_key)
                if last is None:
                    last = PrerenderPass(share=self._share_key)
                    session.add(last)
                last.fingerprint = self.services.stored.fingerprint
                last.generation = started_at
        except IntegrityError:
            # Another instance noted the same share at the same moment: a restart scans again.
            log.info("pre-render: pass of share %s noted elsewhere meanwhile", self._share_key)

    async def pass_once(self) -> int:
        """One pass if anything may have changed since the last; devices rendered."""
        rows = self.services.guard.rows
        generation = await rows.generation()
        if generation is not None and generation == self._done_at:
            return 0
        # Read after `generation`: a change in between makes it newer, so nothing is skipped.
        started_at, done = await self._since_last_pass()
        if done and generation is not None:
            self._done_at = generation
            self.passes += 1
            self.passed.set()
            return 0
        started = time.monotonic()
        stored = self.services.stored
        after, count, scanning = 0, 0, 0.0
        while True:
            asked = time.monotonic()
            ids = await rows.pending(after, stored.fingerprint, self.share, BATCH)
            scanning += time.monotonic() - asked
            if not ids:
                break
            after = ids[-1]
            batch: list[StoredRow] = []
            for device_id in ids:
                batch += await self._render(device_id)
                count += 1
                # At most `rate` devices a second, and the event loop's turn after each one.
                await asyncio.sleep(max(0.0, started + count / self.rate - time.monotonic()))
            if batch:
                await rows.write_rendered(batch)
            self.rendered += len({row.device_id for row in batch})
        self._done_at = generation
        self.scan_seconds = scanning
        if started_at is not None and not self._failed:
            # Whole, every device rendered (one that cannot be is tried again after a restart).
            await self._note_pass(started_at)
        self.passes += 1
        self.passed.set()
        if count:
            log.info(
                "pre-render: %d devices' files rendered and kept in %.1f s",
                count,
                time.monotonic() - started,
            )
        return count

    async def _render(self, device_id: int) -> list[StoredRow]:
        services = self.services
        found = await services.guard.rows.render_rows(device_id)
        if found is None:
            return []  # deleted meanwhile
        revision = found.device[4]
        if (device_id, revision) in self._failed:
            return []
        try:
            data = found.device_data(services.cipher, services.settings)
            out = []
            for name, spec in device_files(services.catalog, data.model_id, data.mac):
                rendered = render_file(services.renderer, services.settings, data, spec)
                sealed = services.stored.sealer.seal(rendered.body, device_id, name, revision)
                out.append(
                    StoredRow(
                        device_id,
                        name,
                        revision,
                        services.stored.fingerprint,
                        rendered.etag,
                        sealed,
                    )
                )
            return out
        except (RenderError, SecretKeyError, KeyError) as exc:
            # Asked for, it answers 503 (phones.files); here it is not tried again each pass.
            self._failed.add((device_id, revision))
            log.error("pre-render: device %d cannot be rendered: %s", device_id, exc)
            return []
