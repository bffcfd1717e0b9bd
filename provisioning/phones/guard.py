"""The fetch path's security steps, in one place, called at three points by `phones.files`:

1. `identify` (read-only): find the device the request proves (URL token, current or in its
   rotation overlap; a verified client certificate; a digest answer) and gather the `Evidence`
   the authorisation step weighs (`phones.auth`);
2. `refusal` / `refuse`: turn a negative decision into the answer — the one empty 404, or a 401
   digest challenge — count the miss against the source (scanner defence, `bans`) and report
   binding refusals;
3. `accept`: before a file leaves, spend the digest nonce-count (a replay is refused) and bind
   the device to where it first fetched from.

The ban check itself runs before any handler (`middleware`), on this instance's copy of the bans.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote

import netaddr
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.crypto import Cipher, token_hash
from provisioning.db.engine import SessionFactory
from provisioning.db.errors import DB_ERRORS
from provisioning.db.models import utcnow
from provisioning.devices.catalog import Catalog, FileSpec
from provisioning.devices.mac import try_mac
from provisioning.phones.auth import Decision, Evidence
from provisioning.phones.client import client_ip, peer_address
from provisioning.phones.lookup import DeviceRow, DeviceRows
from provisioning.phones.request import PhoneRequest, Reply, empty
from provisioning.security import digest
from provisioning.security.bans import BanList, BanRules, Miss, record_miss, unseen_phone
from provisioning.security.credentials import digest_secrets, mac_of_previous_token
from provisioning.security.factory import CertIdentity, FactoryCertificates, FactoryError
from provisioning.security.policy import (
    PolicyCache,
    bind_first_contact,
    binding_state,
    bound_elsewhere,
    default_policy,
    place_of,
    record_refusal,
    window_closed,
)
from provisioning.security.sources import Source, source_of
from provisioning.settings import PREFIX, Settings, SettingsError

log = logging.getLogger("provisioning.security")

# Set by the TLS-terminating proxy (see deploy/nginx/), believed from trusted proxies only:
# the client certificate it verified (URL-encoded PEM) and its verdict.
CERT_HEADER = "X-Client-Cert"
VERIFY_HEADER = "X-Client-Verify"


class Claim(NamedTuple):
    """What the request says before anything is proven."""

    token: str | None
    path_mac: str | None
    ua_mac: str | None
    # It looks like a phone of the family whose file it asks for (devices.unknown.plausible_phone)
    phone: bool = False
    # (file name, fingerprint): the file asked, read with the row found by the token if it was
    # rendered ahead (render.stored), so that a first fetch is one read.
    want: tuple[str, str] | None = None
    # The MAC the request names is the proof, as with ALLOW_MAC_ONLY on, for this request only:
    # set by a listener whose clients can carry nothing else (tftp), never from anything the
    # request says, and never over HTTP (`phones.files.fetch`'s `mac_only`).
    mac_only: bool = False


@dataclass(frozen=True)
class Refusal:
    miss: Miss | None = None  # counted against the source
    challenge: bool = False  # a 401 digest challenge instead of the 404
    stale: bool = False  # the challenge says the nonce was ours but expired
    report: str | None = None  # a binding or window refusal, recorded on the device
    device_id: int | None = None
    # A plausible phone's MAC: the miss counts only when it is new from the address (bans.POINTS)
    phone_mac: str | None = None


NO_REFUSAL = Refusal()


class Found(NamedTuple):
    """What `identify` found (named tuples: made for every fetch)."""

    device: DeviceRow | None
    source: Source | None
    evidence: Evidence | None = None
    refusal: Refusal = NO_REFUSAL  # when no device was proven
    digest_failed: bool = False  # a digest answer was sent and did not verify
    stale: bool = False
    spend: digest.DigestAnswer | None = None  # the verified digest answer, to spend on accept
    bind_to: str | None = None  # first contact: where to bind the device once served
    # Decided from the device row, as of this `row_generation` (lookup.DeviceRows), the
    # request head and the account's policy alone: the phone lane may give the same answer to
    # the same head while neither moves (phones.answers). None: something else had a say (a
    # rotated-out token, a digest answer, a certificate, a binding or first-contact window).
    replay_from: int | None = None


def factory_from_settings(settings: Settings, catalog: Catalog) -> FactoryCertificates | None:
    """The CA bundles of PROVISIONING_CLIENT_CAS, checked against the catalog."""
    if not settings.client_cas:
        return None
    try:
        return FactoryCertificates.load(settings.client_cas, catalog)
    except FactoryError as exc:
        raise SettingsError(f"{PREFIX}CLIENT_CAS: {exc}") from None


class Guard:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        cipher: Cipher,
        sessions: SessionFactory,
        rows: DeviceRows,
        factory: FactoryCertificates | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.cipher = cipher
        self.sessions = sessions
        # Device rows by token or MAC straight through the driver: the fetch path's one read.
        self.rows = rows
        self.bans = BanList()
        self.rules = BanRules.from_settings(settings)
        self.nonces = digest.Nonces(settings.secret_key, settings.digest_nonce_seconds)
        self.policies = PolicyCache(default_policy(settings))
        self.sync_interval = 2.0  # seconds between reloads of the bans other instances made
        self.factory = factory
        # This instance's counts since it started, exported by /api/v1/security/metrics.
        self.counts: Counter[tuple[str, str]] = Counter()

    # -- facts about the connection ---------------------------------------------------------

    def source(self, request: PhoneRequest) -> Source | None:
        return source_of(
            client_ip(
                peer_address(request),
                request.headers.get("X-Forwarded-For"),
                self.settings.trusted_proxies,
            )
        )

    def banned(self, request: PhoneRequest) -> bool:
        if not len(self.bans):
            return False
        source = self.source(request)
        if source is None or not self.bans.banned(source):
            return False
        self.counts["banned_requests", ""] += 1
        return True

    def _from_proxy(self, request: PhoneRequest) -> bool:
        peer = peer_address(request)
        try:
            return netaddr.IPAddress(peer) in self.settings.trusted_proxies
        except (netaddr.AddrFormatError, ValueError, TypeError):
            return False

    def secure(self, request: PhoneRequest) -> bool:
        """TLS to us, or to a trusted proxy that says so."""
        if request.transport is not None and request.transport.get_extra_info("ssl_object"):
            return True
        forwarded = request.headers.get("X-Forwarded-Proto", "").strip().lower()
        return forwarded == "https" and self._from_proxy(request)

    def certificate(self, request: PhoneRequest) -> CertIdentity | None:
        """The identity of a verified client certificate: from our own TLS handshake, or from
        a trusted TLS-terminating proxy's headers (anyone else's are ignored)."""
        if self.factory is None:
            return None
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            return self.factory.identify_der(der) if der else None
        header = request.headers.get(CERT_HEADER)
        if not header or request.headers.get(VERIFY_HEADER) != "SUCCESS":
            return None
        if not self._from_proxy(request):
            return None
        return self.factory.identify_pem(unquote(header))

    # -- 1. identify --------------------------------------------------------------------------

    async def identify(
        self, request: PhoneRequest, read_sessions: SessionFactory, claim: Claim
    ) -> Found:
        """The device row comes through `rows`; a read session is opened only for what most
        fetches never need (a rotated-out token, digest secrets, a binding)."""
        source = self.source(request)
        answer, digest_failed, stale = self._digest_answer(request)
        device: DeviceRow | None = None
        read_at: int | None = None
        if claim.token is not None:
            hashed = token_hash(claim.token)
            if claim.want is not None:
                device = await self.rows.by_token_with_file(hashed, *claim.want)
            else:
                device = await self.rows.by_token_hash(hashed)
            read_at = device.read_at if device is not None else None
            if device is None:
                # A token rotated out is still good during its overlap.
                async with read_sessions() as session:
                    previous = await mac_of_previous_token(session, hashed)
                device = await self.rows.by_mac(previous) if previous else None
            if device is None:
                return Found(None, source, refusal=Refusal(miss=Miss.BAD_TOKEN))
        cert = self.certificate(request)
        if device is None and cert is not None:
            device = await self.rows.by_mac(cert.mac)
        if device is None and answer is not None and (mac := try_mac(answer.username)):
            device = await self.rows.by_mac(mac)
        named = claim.path_mac or claim.ua_mac
        if device is None and (self.settings.allow_mac_only or claim.mac_only) and named:
            device = await self.rows.by_mac(named)
        if device is None:
            answered = answer is not None or digest_failed
            phone_mac = named if claim.phone else None
            refusal = self._nothing_proven(
                named, answered, stale, cert, phone_mac, challenge=not claim.mac_only
            )
            return Found(None, source, refusal=refusal)

        spend = None
        if answer is not None:
            async with read_sessions() as session:
                secrets = await digest_secrets(session, self.cipher, device.id)
            for username, password in secrets:
                if username == answer.username and digest.verify_response(
                    answer, password, request.method
                ):
                    spend = answer
                    break
            digest_failed = spend is None
            if digest_failed and claim.token is None and cert is None:
                # Found by the username alone: a wrong password must look exactly like an
                # unknown username, whatever the device's policy would have said.
                return Found(None, source, refusal=Refusal(miss=Miss.FAILED_DIGEST, challenge=True))
        policy = self.policies.policy_for(device.account_id)
        bound_to = window_from = None
        if policy.binding != "off" or policy.first_contact_days is not None:
            async with read_sessions() as session:
                bound_to, window_from = await binding_state(session, device.id)
        bind_to = None
        elsewhere = False
        if policy.binding != "off":
            if bound_to is None:
                bind_to = place_of(source, policy.binding) if source else None
            else:
                elsewhere = bound_elsewhere(bound_to, source)
        family = self.catalog.family_of(device.model_id).name
        evidence = Evidence(
            device_mac=device.mac,
            by_token=claim.token is not None,
            path_mac=claim.path_mac,
            ua_mac=claim.ua_mac,
            by_digest=spend is not None,
            cert_mac=cert.mac if cert else None,
            cert_vendor_ok=cert.vouches_for(family) if cert else True,
            policy=policy,
            bound_elsewhere=elsewhere,
            window_closed=window_closed(policy, device, window_from, utcnow()),
            mac_only=claim.mac_only,
        )
        plain = (
            answer is None
            and not digest_failed
            and not stale
            and self.factory is None  # a certificate on another connection would have a say
            and policy.binding == "off"
            and policy.first_contact_days is None
        )
        return Found(
            device,
            source,
            evidence,
            digest_failed=digest_failed,
            stale=stale,
            spend=spend,
            bind_to=bind_to,
            replay_from=read_at if plain else None,
        )

    def _digest_answer(
        self, request: PhoneRequest
    ) -> tuple[digest.DigestAnswer | None, bool, bool]:
        """(answer worth checking against a password, an answer failed already, nonce stale)."""
        header = request.headers.get("Authorization")
        if not header or header.lstrip()[:7].lower() != "digest ":
            return None, False, False  # no answer (another scheme is not ours to judge)
        answer = digest.parse_authorization(header)
        if answer is None:
            return None, True, False
        state = self.nonces.check(answer.nonce)
        if state == digest.NonceState.STALE:
            return None, False, True
        if (
            state != digest.NonceState.FRESH
            or answer.realm != self.settings.digest_realm
            or not digest.uri_matches(answer, request.raw_path)
        ):
            return None, True, False
        return answer, False, False

    def _nothing_proven(
        self,
        named: str | None,
        answered: bool,
        stale: bool,
        cert: CertIdentity | None,
        phone_mac: str | None,
        *,
        challenge: bool,
    ) -> Refusal:
        """The answer when no device was proven. It never depends on whether the MAC named
        exists: a scanner learns nothing from it, nor from when its ban falls. A plausible
        phone (`phone_mac`) asking without a credential is counted once per MAC and address.
        No digest challenge unless `challenge` (a request by MAC alone could not answer one)."""
        if answered:
            return Refusal(miss=Miss.FAILED_DIGEST, challenge=True)
        if stale:
            return Refusal(challenge=True, stale=True)
        if cert is not None:
            return Refusal()  # a genuine phone we do not know (kept as an unknown device)
        if self.settings.digest and challenge:
            return Refusal(miss=Miss.CHALLENGE, challenge=True, phone_mac=phone_mac)
        if phone_mac is not None:
            return Refusal(miss=Miss.UNKNOWN_PHONE, phone_mac=phone_mac)
        return Refusal(miss=Miss.UNKNOWN_MAC) if named else Refusal()

    # -- 2. refuse ----------------------------------------------------------------------------

    def refusal(
        self, request: PhoneRequest, found: Found, decision: Decision, spec: FileSpec | None
    ) -> Refusal | None:
        """None when the file may be served; else how to refuse."""
        evidence = found.evidence
        assert found.device is not None and evidence is not None
        public_only = self.settings.http == "public" and not self.secure(request)
        if spec is not None and spec.secret and public_only:
            return Refusal()  # secrets never cross plain HTTP when it is limited
        if spec is not None and decision is Decision.ALLOW:
            return None
        if spec is not None and decision is Decision.CHALLENGE:
            miss = Miss.FAILED_DIGEST if found.digest_failed else Miss.CHALLENGE
            return Refusal(miss=None if found.stale else miss, challenge=True, stale=found.stale)
        if spec is not None and decision in (Decision.ELSEWHERE, Decision.EXPIRED):
            return Refusal(report=decision.value, device_id=found.device.id)
        stated = {evidence.path_mac, evidence.ua_mac, evidence.cert_mac} - {None}
        if found.digest_failed:
            return Refusal(miss=Miss.FAILED_DIGEST)
        if stated - {evidence.device_mac} or not evidence.cert_vendor_ok:
            return Refusal(miss=Miss.WRONG_DEVICE)
        return Refusal()

    async def refuse(self, request: PhoneRequest, refusal: Refusal) -> Reply:
        source = self.source(request)
        if refusal.report and refusal.device_id is not None:
            where = source.address if source else "-"
            log.warning(
                "phone-refused device=%d host=%s reason=%s",
                refusal.device_id,
                where,
                refusal.report,
            )
            device_id, reason = refusal.device_id, refusal.report
            await self._write_behind(
                "refusal", lambda s: record_refusal(s, device_id, where, reason)
            )
        if refusal.miss is not None and source is not None and not self.rules.exempted(source):
            await self._count(source, refusal.miss, refusal.phone_mac)
        if refusal.challenge:
            self.counts["challenges", ""] += 1
            challenges = digest.challenges(
                self.settings.digest_realm, self.nonces.issue(), stale=refusal.stale
            )
            return empty(401, *(("WWW-Authenticate", value) for value in challenges))
        return empty(404)

    async def _count(self, source: Source, miss: Miss, phone_mac: str | None) -> None:
        """Count the miss against the source (a plausible phone's only when its MAC is new
        from there) and take the bans it makes at once."""
        try:
            async with self.sessions() as session, session.begin():
                if phone_mac is not None and not await unseen_phone(
                    session, source, phone_mac, self.rules
                ):
                    return  # the same phone asking again: no miss
                self.counts["misses", miss.value] += 1
                bans = await record_miss(session, source, miss, self.rules)
        except DB_ERRORS as exc:
            log.warning("phone fetch: miss not counted: %s", type(exc).__name__)
            bans = []
        for ban in bans:
            self.bans.add(ban.source, ban.until)
            self.counts["bans", "network" if "/" in ban.source else "address"] += 1

    # -- 3. accept ----------------------------------------------------------------------------

    async def accept(
        self, request: PhoneRequest, found: Found, *, bind: bool = True
    ) -> Reply | None:
        """Spend the digest nonce-count (None: go ahead; else the answer to send instead) and
        bind a device on first contact (unless not `bind`: the caller calls `bind` once the
        file has arrived)."""
        answer = found.spend
        if answer is not None:
            try:
                async with self.sessions() as session, session.begin():
                    fresh = await digest.record_use(
                        session, answer.nonce, answer.nc, self.nonces.expiry(answer.nonce)
                    )
            except DB_ERRORS as exc:
                # Without the record a replay could not be told apart: nothing leaves.
                log.warning("phone fetch: nonce not recorded: %s", type(exc).__name__)
                return empty(503, ("Retry-After", "30"))
            if not fresh:
                return await self.refuse(
                    request, Refusal(miss=Miss.REPLAYED_DIGEST, challenge=True)
                )
        if bind:
            await self.bind(found)
        return None

    async def bind(self, found: Found) -> None:
        """Bind the device to where it fetched from, on first contact (`Found.bind_to`)."""
        if found.bind_to is not None and found.device is not None:
            device_id, place = found.device.id, found.bind_to
            await self._write_behind("binding", lambda s: bind_first_contact(s, device_id, place))

    def metrics(self) -> str:
        """The counts in the Prometheus text format (one instance's view: scrape each)."""
        help_text = {
            "misses": ("counter", "Refused requests counted against their source", "reason"),
            "bans": ("counter", "Bans this instance made", "kind"),
            "refusals": ("counter", "Proven devices refused for their place or window", "reason"),
            "challenges": ("counter", "Digest challenges sent", ""),
            "banned_requests": ("counter", "Requests answered 403 for a ban", ""),
        }
        lines = []
        for name, (kind, text, label) in help_text.items():
            metric = f"provisioning_phone_{name}_total"
            lines += [f"# HELP {metric} {text}.", f"# TYPE {metric} {kind}"]
            values = sorted((k[1], v) for k, v in self.counts.items() if k[0] == name)
            if not label:
                lines.append(f"{metric} {sum(v for _, v in values)}")
            for value, count in values if label else ():
                lines.append(f'{metric}{{{label}="{value}"}} {count}')
        lines += [
            "# HELP provisioning_phone_bans_active Bans in force (this instance's copy).",
            "# TYPE provisioning_phone_bans_active gauge",
            f"provisioning_phone_bans_active {self.bans.active()}",
        ]
        return "\n".join(lines) + "\n"

    async def _write_behind(
        self, what: str, write: Callable[[AsyncSession], Awaitable[None]]
    ) -> None:
        try:
            async with self.sessions() as session, session.begin():
                await write(session)
        except DB_ERRORS as exc:
            log.warning("phone fetch: %s not recorded: %s", what, type(exc).__name__)
