"""Demo data for `provisioning serve --demo`: an account, two lines, a Yealink multi-line phone
and a Linphone softphone. Idempotent: a second run finds them and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.models import Device, WebUser
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.render.files import device_files
from provisioning.render.refusals import FilesCheck
from provisioning.settings import Settings
from provisioning.web import users

# Sign-ins of the web Manager, printed by `provisioning serve --demo` (public on purpose).
DEMO_CUSTOMER = ("alice", "alice-manager-2026")
DEMO_OPERATOR = ("operator", "operator-manager-2026")

YEALINK_MAC = "0015654aa937"
LINPHONE_MAC = "020000c0ffee"  # locally administered: a softphone has no real MAC


@dataclass(frozen=True)
class DemoDevice:
    mac: str
    label: str
    urls: list[str]
    user_agent: str


async def seed(
    session: AsyncSession, settings: Settings, catalog: Catalog, cipher: Cipher
) -> list[DemoDevice]:
    existing = await session.scalar(select(Device).where(Device.mac == YEALINK_MAC))
    if existing is None:
        account = await accounts.create_account(
            session,
            settings,
            "Alice Martin",
            address=accounts.Address.parse("12 rue de la Paix, 75002 Paris"),
        )
        first = await accounts.create_line(
            session,
            settings,
            cipher,
            account.id,
            "+33123456701",
            username="alice",
            password="alice-secret-1",
            display_name="Alice Martin",
        )
        second = await accounts.create_line(
            session,
            settings,
            cipher,
            account.id,
            "+33123456702",
            username="alice-office",
            password="alice-secret-2",
            display_name="Alice (bureau)",
        )
        await inventory.add_device(
            session, catalog, cipher, YEALINK_MAC, "yealink-t46u", account.id
        )
        await inventory.add_device(
            session, catalog, cipher, LINPHONE_MAC, "linphone-softphone", account.id
        )
        # Checked as every assignment is: demo data a phone's files could not carry would
        # fail here, not at the demo phone's first fetch.
        check = FilesCheck.for_settings(catalog, settings, cipher)
        await inventory.assign_line(session, YEALINK_MAC, first.id, 1, files=check)
        await inventory.assign_line(session, LINPHONE_MAC, second.id, 1, files=check)
        # A line without a phone: in the Manager, order one or put it on the Yealink.
        await accounts.create_line(
            session,
            settings,
            cipher,
            account.id,
            "+33123456703",
            username="alice-fax",
            password="alice-secret-3",
            display_name="Alice (accueil)",
        )
    # Apart, so that a demo database made before the Manager gets its sign-ins too.
    if await session.scalar(select(WebUser).where(WebUser.login == DEMO_CUSTOMER[0])) is None:
        yealink = await inventory.get_device(session, YEALINK_MAC)
        if yealink.account_id is not None:
            await users.set_customer_password(
                session, yealink.account_id, DEMO_CUSTOMER[1], login=DEMO_CUSTOMER[0]
            )
            await users.create_operator(session, *DEMO_OPERATOR)
    shown = []
    for mac, agent in (
        (YEALINK_MAC, "Yealink SIP-T46U 108.86.0.20 00:15:65:4a:a9:37"),
        (LINPHONE_MAC, "Linphone/5.1.65 (demo)"),
    ):
        device = await inventory.get_device(session, mac)
        base = inventory.provisioning_url(settings.base_url, cipher, device)
        files = [name for name, _ in device_files(catalog, device.model_id, device.mac)]
        label = catalog.models[device.model_id].label
        shown.append(DemoDevice(mac, label, [base + name for name in files], agent))
    return shown
