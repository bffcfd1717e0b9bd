"""The Manager in a real browser (headless Chromium), as a new customer clicks through it:
ordering with DHL, ordering to a pick-up point (in English), changing a phone, associating a
line and watching it become applied on the handset emulator behind kamailio, and the
warehouse's shipping step. Wrong inputs on the way; a screenshot of every step."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from provisioning import accounts
from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Order
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.lab.phone import EmulatedPhone
from provisioning.orders import orders
from provisioning.orders.carriers import load_carriers
from provisioning.settings import Settings
from provisioning.web import users
from tests.conftest import World
from tests.peers.kamailio import Kamailio
from tests.web.browser import DESKTOP, PHONE, Shots
from tests.web.kit import ALICE, OPERATOR, make_manager_world

TIMEOUT_MS = 10_000


async def _server(aiohttp_client: Any, settings: Settings) -> str:
    client = await aiohttp_client(create_app(settings))
    return str(client.make_url("/manager")).rstrip("/")


async def _page(chromium: Any, base: str, lang: str, viewport: dict[str, int] = DESKTOP) -> Any:
    context = await chromium.new_context(viewport=viewport, locale="fr-FR")
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(f"{base}/language?lang={lang}&next=/manager/login")
    return page


async def _sign_in(page: Any, shots: Shots, login: str, password: str) -> None:
    await shots.take(page, "sign-in")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def _orders(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Order)) or 0)


async def test_order_with_dhl(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    await make_manager_world(sessions, world)
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "fr")
    await page.fill("input[name=login]", ALICE[0])
    await page.fill("input[name=password]", "not-the-password")
    await page.click("button[type=submit]")
    await page.get_by_text("Identifiant ou mot de passe incorrect").wait_for()
    await shots.take(page, "wrong-password")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    await shots.take(page, "lines")
    await page.get_by_role("link", name="01 23 45 67 03").click()
    await page.get_by_role("heading", name="Téléphone", exact=True).wait_for()
    await shots.take(page, "line-without-phone")
    await page.get_by_role("link", name="Commander un équipement").click()
    await page.get_by_text("Choisissez le modèle de téléphone").wait_for()
    await page.get_by_text("Yealink SIP-T46U").click()
    await shots.take(page, "model")
    await page.get_by_role("button", name="Suivant").click()
    # DHL is the default: the holder's address is filled in; empty the street.
    assert await page.input_value("input[name=address_street]") == "12 rue de la Paix"
    assert await page.get_by_text("9,99 € HT").count() == 1
    await shots.take(page, "shipping-dhl")
    await page.fill("input[name=address_street]", "")
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_text("Veuillez vérifier la rue de l'adresse de livraison").wait_for()
    assert await page.input_value("input[name=address_postcode]") == "75002"
    await shots.take(page, "empty-address-refused")
    await page.fill("input[name=address_street]", "3 rue Neuve")
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_role("heading", name="Récapitulatif", exact=True).wait_for()
    await shots.take(page, "summary")
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_text("Veuillez cocher").wait_for()
    await shots.take(page, "no-contract-refused")
    assert await _orders(sessions) == 0
    await page.get_by_label("J'ai lu et j'accepte le contrat").check()
    await page.get_by_role("button", name="Valider").dblclick()
    await page.get_by_role("heading", name="Commande confirmée").wait_for()
    await shots.take(page, "confirmation")
    assert "sera expédié au plus tard le" in await page.content()
    assert await _orders(sessions) == 1
    # The lines again, on a phone screen.
    await page.set_viewport_size(PHONE)
    await page.goto(f"{base}/lines")
    await shots.take(page, "lines-on-a-phone")


async def test_order_to_a_relay_point_in_english(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    await make_manager_world(sessions, world)
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "en", PHONE)
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="My lines").wait_for()
    await page.goto(f"{base}/lines/{world.line_ids[2]}")
    await page.get_by_role("link", name="Order equipment").click()
    await page.get_by_text("Yealink SIP-T42U").click()
    await page.get_by_role("button", name="Next").click()
    await page.get_by_role("link", name="Mondial Relay to a pick-up point").click()
    await page.get_by_text("Pick-up points nearest to 75002 Paris").wait_for()
    await page.wait_for_function("document.querySelector('.map img').complete")
    await shots.take(page, "relay-points-map")
    await page.get_by_role("button", name="Next").click()
    await page.get_by_text("Please choose a pick-up point from the list.").wait_for()
    await shots.take(page, "no-point-refused")
    await page.get_by_text("Librairie du Sentier").click()
    await page.get_by_role("button", name="Next").click()
    await page.get_by_role("heading", name="Summary", exact=True).wait_for()
    await shots.take(page, "summary")
    await page.get_by_label("I have read and accept the contract").check()
    await page.get_by_role("button", name="Validate").click()
    await page.get_by_role("heading", name="Order confirmed").wait_for()
    await shots.take(page, "confirmation")
    assert await _orders(sessions) == 1
    # Someone else's line in the URL: the same page as a line that does not exist.
    response = await page.goto(f"{base}/lines/{world.other_line_id}")
    assert response.status == 404
    await shots.take(page, "other-account-line-404")


async def test_change_a_phone(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    await make_manager_world(sessions, world)
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("link", name="01 23 45 67 01").click()
    await shots.take(page, "line-with-phone")
    await page.get_by_role("link", name="Changer de téléphone Plug & Phone").click()
    await page.get_by_text("porte 2 lignes").wait_for()
    await page.get_by_text("Yealink SIP-T48U").click()
    await shots.take(page, "model")
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_text("Votre téléphone actuel").wait_for()
    await shots.take(page, "summary")
    await page.get_by_label("J'ai lu et j'accepte le contrat").check()
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Votre ancien téléphone").wait_for()
    await shots.take(page, "confirmation")
    await page.goto(f"{base}/lines/{world.line_ids[0]}")
    await page.get_by_text("Un remplaçant (Yealink SIP-T48U) est en route").wait_for()
    await shots.take(page, "line-with-replacement-on-its-way")
    # Returning the softphone: a confirmation, then the reference.
    await page.goto(f"{base}/lines/{world.line_ids[1]}")
    await page.get_by_role("link", name="Retourner ce téléphone").click()
    await shots.take(page, "return-confirm")
    await page.get_by_role("button", name="Retourner le téléphone").click()
    await page.get_by_text("Référence de retour").wait_for()
    await shots.take(page, "return-reference")


async def test_associate_a_line_and_watch_it_applied(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, catalog: Catalog,
    kamailio: Kamailio, chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    """The handset emulator registers line 1 to kamailio; the customer puts line 2 on it in
    the browser; the status panel follows the push live until the phone has fetched it."""
    push_settings = replace(settings, push_enabled=True, push_t1_ms=100)
    cipher = Cipher(settings.secret_key)
    registrar = f"127.0.0.1:{kamailio.sip_port}"
    mac = "001565123456"
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Alice")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", username="alice",
            password="pw-alice", registrar=registrar, display_name="Alice",
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002", username="alice2",
            password="pw-alice2", registrar=registrar, display_name="Alice (bureau)",
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, mac, "yealink-t46u", account.id
        )
        await inventory.assign_line(session, mac, first.id)
        await users.set_customer_password(session, account.id, ALICE[1], login=ALICE[0])
    for user, password in (("alice", "pw-alice"), ("alice2", "pw-alice2")):
        await asyncio.to_thread(kamailio.add_user, user, password)
    client = await aiohttp_client(create_app(push_settings))
    base = str(client.make_url("/manager")).rstrip("/")
    family = catalog.families["yealink"]
    phone = EmulatedPhone(
        str(client.make_url(f"/{token}/")), mac, family, family.models["yealink-t46u"]
    )
    await phone.start()
    try:
        assert [line.user for line in phone.lines] == ["alice"]
        page = await _page(chromium, base, "fr")
        await _sign_in(page, shots, *ALICE)
        await page.get_by_role("link", name="01 00 00 00 02").click()
        await page.get_by_text("Utiliser un téléphone que vous avez déjà").wait_for()
        assert "127.0.0.1" in await page.locator(".candidate").inner_text()
        await shots.take(page, "phones-that-can-take-the-line")
        await page.get_by_role("link", name="Choisir").click()
        await page.get_by_role("dialog").wait_for()
        await shots.take(page, "confirmation-window")
        await page.get_by_role("button", name="Valider").dblclick()
        await page.get_by_role("heading", name="Suivi du changement").wait_for()
        await shots.take(page, "status-following")
        await page.locator("#status[data-state=applied]").wait_for(timeout=15_000)
        await page.get_by_text("Appliqué en").wait_for()
        await shots.take(page, "applied")
        for _ in range(40):
            if len(phone.lines) == 2:
                break
            await asyncio.sleep(0.05)
        assert [line.user for line in phone.lines] == ["alice", "alice2"]
        await page.goto(f"{base}/lines/{second.id}")
        await shots.take(page, "line-now-on-the-phone")
        assert "0015651234" in await page.content()
    finally:
        await phone.stop()


async def test_the_warehouse_ships_an_order(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    catalog: Catalog, chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    await make_manager_world(sessions, world)
    async with sessions() as session, session.begin():
        order, _ = await orders.place_order(
            session, settings, catalog, load_carriers(),
            orders.OrderRequest(line_id=world.line_ids[2], model_id="yealink-t46u",
                                carrier="dhl"),
            accept_contract=True,
        )  # fmt: skip
        order_id = order.id
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *OPERATOR)
    await page.get_by_role("heading", name="Commandes à expédier").wait_for()
    await shots.take(page, "orders-to-ship")
    await page.get_by_role("link", name="Expédier", exact=True).click()
    await page.fill("input[name=mac]", "12:34")
    await page.get_by_role("button", name="Expédier", exact=True).click()
    await page.get_by_text("Ce n'est pas une adresse MAC").wait_for()
    await shots.take(page, "wrong-mac-refused")
    await page.fill("input[name=mac]", "00:15:65:00:00:42")
    await page.fill("input[name=tracking]", "JJD000111222333444555")
    await shots.take(page, "scanned")
    await page.get_by_role("button", name="Expédier", exact=True).click()
    await page.get_by_role("heading", name=f"Commande n°{order_id} expédiée").wait_for()
    url = await page.locator("#provisioning-url").inner_text()
    assert url.startswith("http://phones.test:8080/")
    await shots.take(page, "shipped-with-provisioning-url")
    await page.goto(f"{base}/ops/devices/001565000042")
    await shots.take(page, "device-page")
    await page.goto(f"{base}/ops/pushes")
    await shots.take(page, "pushes")
    await page.goto(f"{base}/ops/returns")
    await shots.take(page, "returns")
    await page.goto(f"{base}/ops/unknown")
    await shots.take(page, "unknown-devices")
