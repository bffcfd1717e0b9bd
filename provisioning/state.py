"""The services one application instance owns, under one typed AppKey."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices.catalog import Catalog
from provisioning.phones.answers import Answers
from provisioning.phones.auth import Authorizer
from provisioning.phones.guard import Guard
from provisioning.phones.load import Load
from provisioning.phones.sightings import SightingBuffer
from provisioning.render.cache import RenderCache
from provisioning.render.environment import Renderer
from provisioning.render.refusals import FilesCheck
from provisioning.render.stored import StoredFiles
from provisioning.settings import Settings
from provisioning.web.signin_gate import SignInGate


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    # Writes: on SQLite each transaction starts with BEGIN IMMEDIATE.
    sessions: SessionFactory
    # Reads on the phone path: never wait behind a writer.
    read_sessions: SessionFactory
    catalog: Catalog
    renderer: Renderer
    cipher: Cipher
    cache: RenderCache
    # Files rendered ahead and kept in the database (render.stored, phones.prerender).
    stored: StoredFiles
    # The phone endpoint's authorisation step: weighs the proofs `guard` gathered.
    authorize: Authorizer
    # Proofs (token, digest, certificate), first-contact binding, scanner bans.
    guard: Guard
    # Sightings waiting for their batch (written every SIGHTING_FLUSH_MS, flushed at shutdown).
    sightings: SightingBuffer
    # Requests in flight and the event loop's lag: overload is answered 503 at once.
    load: Load
    # Answers the phone lane gives again to the same request head while they hold.
    answers: Answers
    # Manager sign-ins: scrypt one at a time, a few attempts per address a minute.
    sign_ins: SignInGate = field(default_factory=SignInGate)

    @property
    def files_check(self) -> FilesCheck:
        """What a change to a device's lines is checked against before it is written (a line
        the device's files could not carry is refused: render.refusals)."""
        return FilesCheck(self.renderer, self.settings, self.cipher)


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
