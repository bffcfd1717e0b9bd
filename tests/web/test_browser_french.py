"""The Manager as a French customer reads it (issue 21, items 4 to 9), in headless Chromium:
the town's street map, the contract, French formats, refusals in French only, the small things
seen in screenshots, and a return while a replacement is on order. Every page is shot at 1280
and 390 px wide under tests/artifacts/manager/<test>/."""

from __future__ import annotations

import logging
import re
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from provisioning import accounts, tokens
from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, LineSlot, utcnow
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.orders import orders
from provisioning.orders.carriers import load_carriers
from provisioning.orders.fulfilment import ship_order
from provisioning.orders.handover import complete_delivery
from provisioning.settings import Settings
from tests.conftest import World
from tests.web.browser import DESKTOP, PHONE, Shots, at_both_widths
from tests.web.kit import ALICE, make_manager_world
from tests.web.test_browser import _orders, _page, _server, _sign_in

FRENCH_DISTANCE = re.compile(r"^\d+,\d\u202fkm$")


async def _text(page: Any) -> str:
    return str(await page.locator("main").inner_text())


async def test_french_formats(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    """Phone numbers as French customers write them, MACs with separators, distances, prices
    and dates in French, plurals without "(s)"; the data keeps E.164 and bare MACs."""
    await make_manager_world(sessions, world)
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    text = await _text(page)
    for number in ("01 23 45 67 01", "01 23 45 67 02", "01 23 45 67 03"):
        assert number in text
    assert "+33" not in text and "00:15:65:4A:A9:37" in text and "0015654aa937" not in text
    await at_both_widths(page, shots, "lines")
    # A replacement for the phone carrying two lines: "2 lignes", never "ligne(s)".
    await page.get_by_role("link", name="01 23 45 67 01").click()
    await page.get_by_role("link", name="Changer de téléphone Plug & Phone").click()
    await page.get_by_text("porte 2 lignes").wait_for()
    assert "(s)" not in await _text(page)
    slots = await page.locator(".choice-body > .muted").all_inner_texts()
    assert slots and all(re.search(r"· \d+ lignes?$", t) for t in slots), slots
    await at_both_widths(page, shots, "models")
    # A new phone to a pick-up point: distances "0,2 km" as on the map.
    await page.goto(f"{base}/lines/{world.line_ids[2]}/order/shipping?model=yealink-t46u"
                    "&carrier=mondial-relay")  # fmt: skip
    await page.get_by_text("Points relais les plus proches de 75002 Paris").wait_for()
    distances = await page.locator(".points .distance").all_inner_texts()
    assert distances and all(FRENCH_DISTANCE.match(d) for d in distances), distances
    assert await page.get_by_text("9,99\u00a0€ HT").count() == 1
    await at_both_widths(page, shots, "relay-points")
    await page.get_by_text("Librairie du Sentier").click()
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_role("heading", name="Récapitulatif", exact=True).wait_for()
    total = await page.locator(".prices tfoot").inner_text()
    assert re.search(r"\d+,\d\d\u00a0€", total), total
    await page.get_by_label("J'ai lu et j'accepte le contrat").check()
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Commande confirmée").wait_for()
    text = await _text(page)
    assert re.search(r"au plus tard le \d\d/\d\d/\d{4} \d\d:\d\d", text), text
    assert "01 23 45 67 03" in text
    await at_both_widths(page, shots, "confirmation")


async def test_a_refusal_is_said_in_french_only(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    chromium: Any, shots: Shots, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The customer reads the sentence in their language; the API's English detail (the
    field, the rule) is written to the log for the people who run the service."""
    caplog.set_level(logging.INFO, logger="provisioning.web")
    await make_manager_world(sessions, world)
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    # A town the carrier does not know.
    await page.goto(f"{base}/lines/{world.line_ids[2]}/order/shipping?model=yealink-t46u"
                    "&carrier=mondial-relay&city=Atlantide")  # fmt: skip
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert await alert.inner_text() == "Aucun point relais n'est connu près de ce lieu."
    assert "sample data" not in await _text(page)
    await at_both_widths(page, shots, "unknown-town")
    # The contract not accepted.
    await page.goto(f"{base}/lines/{world.line_ids[2]}/order/shipping?model=yealink-t46u")
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_role("heading", name="Récapitulatif", exact=True).wait_for()
    await page.get_by_role("button", name="Valider").click()
    await alert.wait_for()
    assert await alert.inner_text() == (
        "Veuillez cocher « J'ai lu et j'accepte le contrat » pour valider."
    )
    text = await _text(page)
    assert "accept_contract" not in text and "read and accept" not in text
    await at_both_widths(page, shots, "contract-not-accepted")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "accept_contract: read and accept the contract to validate the order" in logged
    assert "no pick-up points known near Atlantide" in logged


# Each cell's text: how many lines it takes on the screen.
_LINES_PER_CELL = """cells => cells.map(cell => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return new Set([...range.getClientRects()].map(r => Math.round(r.bottom))).size;
})"""


async def test_small_things_seen_in_screenshots(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    """ "Pas de téléphone" once per card; a phone is named by its model and its lines, not by
    its MAC alone; "Dernière connexion le ..., adresse IP ..."; on a 390 px screen no amount
    of the summary is cut ("€" alone on a line)."""
    await make_manager_world(sessions, world)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Device)
            .where(Device.mac == world.yealink_mac)
            .values(last_seen_at=utcnow(), last_ip="203.0.113.7")
        )
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    card = page.locator(".line-card").filter(has_text="01 23 45 67 03")
    assert (await card.inner_text()).count("Pas de téléphone") == 1
    await at_both_widths(page, shots, "lines")
    await card.get_by_role("link", name="01 23 45 67 03").click()
    candidate = page.locator(".candidate").filter(has_text="Yealink SIP-T46U")
    text = await candidate.inner_text()
    assert re.search(
        r"Dernière connexion le \d\d/\d\d/\d{4} \d\d:\d\d, adresse IP 203\.0\.113\.7", text
    ), text
    assert "depuis" not in text
    await at_both_widths(page, shots, "phones-that-can-take-the-line")
    await candidate.get_by_role("link", name="Choisir").click()
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role(
        "heading", name="Ligne 01 23 45 67 03 sur votre Yealink SIP-T46U"
    ).wait_for()
    facts = await page.locator(".phone-named").inner_text()
    assert "00:15:65:4A:A9:37" in facts
    assert "01 23 45 67 01 (Alice 1), 01 23 45 67 02 (Alice 2)" in facts
    await at_both_widths(page, shots, "association-status")
    # The summary of an order on a phone's screen: every amount on one line.
    await page.set_viewport_size(PHONE)
    await page.goto(f"{base}/lines/{world.line_ids[0]}/order/shipping?model=yealink-t54w"
                    "&carrier=dhl")  # fmt: skip
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_role("heading", name="Récapitulatif", exact=True).wait_for()
    amounts = page.locator(".prices td:not(:first-child), .prices th:not(:first-child)")
    assert await amounts.count() == 8
    assert set(await amounts.evaluate_all(_LINES_PER_CELL)) == {1}
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await shots.take(page, "summary-390")
    await page.set_viewport_size(DESKTOP)
    await shots.take(page, "summary-1280")


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG of one colour: what the loopback tile server answers."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


async def test_the_town_street_map(
    aiohttp_client: Any, aiohttp_server: Any, settings: Settings, sessions: SessionFactory,
    world: World, chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    """With MAP_TILES set, Leaflet (served by the Manager itself) draws the town from the tile
    server, its markers numbered as in the list; a marker chooses its point. Without
    JavaScript the plan and the list do the same job; without MAP_TILES the plan is the map."""
    asked: list[str] = []
    tile = _png(256, 256, (226, 236, 218))

    async def tiles(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=tile, content_type="image/png")

    app = web.Application()
    app.router.add_get("/tiles/{z}/{x}/{y}.png", tiles)
    tile_server = await aiohttp_server(app, host="127.0.0.1")
    template = f"http://127.0.0.1:{tile_server.port}/tiles/{{z}}/{{x}}/{{y}}.png"
    await make_manager_world(sessions, world)
    base = await _server(aiohttp_client, replace(settings, map_tiles=template))
    shipping = (
        f"{base}/lines/{world.line_ids[2]}/order/shipping?model=yealink-t46u&carrier=mondial-relay"
    )
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    await page.goto(shipping)
    await page.locator("#town-map.live .leaflet-tile-loaded").first.wait_for()
    assert asked and all(re.fullmatch(r"/tiles/\d+/\d+/\d+\.png", p) for p in asked)
    pins = await page.locator(".map-pin").all_inner_texts()
    numbers = await page.locator(".points li").evaluate_all("els => els.map(e => e.dataset.number)")
    assert pins == numbers == [str(n) for n in range(1, 9)]
    # The markers' names are the list's, in the same order.
    titles = await page.locator(".map-pin").evaluate_all("els => els.map(e => e.title)")
    names = await page.locator(".points strong").all_inner_texts()
    assert titles == [f"{n}. {name}" for n, name in enumerate(names, 1)]
    # No English on the page: the zoom buttons, the legend, the sample data notice.
    text = await page.locator("main").inner_text()
    assert "sample data" not in text.lower() and "Données d'exemple" in text
    assert await page.locator(".leaflet-control-zoom-in").get_attribute("title") == "Zoomer"
    assert "Points relais, numérotés comme dans la liste" in text
    legend_px = await page.locator(".legend").evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert legend_px >= 14
    await page.locator(".map-pin", has_text="3").click()
    chosen = page.locator(".points li[data-number='3'] input[type=radio]")
    assert await chosen.is_checked()
    await at_both_widths(page, shots, "street-map")
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_role("heading", name="Récapitulatif", exact=True).wait_for()
    assert names[2] in await page.locator("main").inner_text()

    # Without JavaScript: the plan, the legend and the list; choosing works the same.
    context = await chromium.new_context(viewport=PHONE, java_script_enabled=False)
    plain = await context.new_page()
    await plain.goto(f"{base}/language?lang=fr&next=/manager/login")
    await plain.fill("input[name=login]", ALICE[0])
    await plain.fill("input[name=password]", ALICE[1])
    await plain.click("button[type=submit]")
    await plain.get_by_role("heading", name="Mes lignes").wait_for()
    before = len(asked)
    await plain.goto(shipping)
    await plain.wait_for_function("document.querySelector('.map-frame img').complete")
    assert await plain.locator(".leaflet-container").count() == 0 and len(asked) == before
    legend_px = await plain.locator(".legend").evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert legend_px >= 14
    await plain.get_by_text(names[1]).click()
    await shots.take(plain, "without-javascript-390")
    await plain.set_viewport_size(DESKTOP)
    await shots.take(plain, "without-javascript-1280")
    await plain.get_by_role("button", name="Suivant").click()
    await plain.get_by_role("heading", name="Récapitulatif", exact=True).wait_for()
    assert names[1] in await plain.locator("main").inner_text()
    await context.close()


async def test_without_tiles_the_plan_is_the_map(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    """The default (tests, offline labs): no tile server, no Leaflet, no request elsewhere;
    the schematic plan in French, its legend in the page, readable on a phone."""
    assert settings.map_tiles == ""
    await make_manager_world(sessions, world)
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "fr")
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base[:-8]) else elsewhere.append(r.url))
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    await page.goto(f"{base}/lines/{world.line_ids[2]}/order/shipping?model=yealink-t46u"
                    "&carrier=mondial-relay")  # fmt: skip
    await page.wait_for_function("document.querySelector('.map-frame img').complete")
    assert await page.locator("script[src*=leaflet]").count() == 0
    assert await page.evaluate("typeof window.L") == "undefined"
    plan = await page.locator(".map-frame img").get_attribute("src")
    svg = await (await page.request.get(f"{base[:-8]}{plan}")).text()
    assert "sample data" not in svg and "Plan de 75002 Paris" in svg
    await page.set_viewport_size(PHONE)
    legend_px = await page.locator(".legend").evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)"
    )
    assert legend_px >= 14
    await at_both_widths(page, shots, "plan")
    assert elsewhere == []


async def _to_summary(page: Any, base: str, line_id: int) -> None:
    await page.goto(f"{base}/lines/{line_id}/order/shipping?model=yealink-t46u&carrier=dhl")
    await page.get_by_role("button", name="Suivant").click()
    await page.get_by_role("heading", name="Récapitulatif", exact=True).wait_for()


async def _api_order(client: Any, sessions: SessionFactory, order_id: int) -> dict[str, Any]:
    async with sessions() as session, session.begin():
        _, token = await tokens.create_token(session, "operator")
    resp = await client.get(
        f"/api/v1/orders/{order_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200
    found: dict[str, Any] = await resp.json()
    return found


async def test_the_contract(
    aiohttp_client: Any, aiohttp_server: Any, settings: Settings, sessions: SessionFactory,
    world: World, chromium: Any, shots: Shots, tmp_path: Path,
) -> None:  # fmt: skip
    """ "J'ai lu et j'accepte le contrat" opens the operator's contract beside the summary; the
    order records the version accepted, shown on the confirmation and in the API; a contract
    changed between the summary and the click is read again, not accepted."""
    text = tmp_path / "contrat.html"
    text.write_text("<h2>Contrat Télécom Exemple</h2><p>Article premier.</p>", encoding="utf-8")
    await make_manager_world(sessions, world)
    client = await aiohttp_client(create_app(replace(settings, contract_file=text)))
    base = str(client.make_url("/manager")).rstrip("/")
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    await _to_summary(page, base, world.line_ids[2])
    await at_both_widths(page, shots, "summary")
    async with page.context.expect_page() as opened:
        await page.get_by_role("link", name="le contrat").click()
    contract = await opened.value
    await contract.get_by_role("heading", name="Contrat Télécom Exemple").wait_for()
    version_text = await contract.locator("main .muted").first.inner_text()
    first = re.search(r"sha256-[0-9a-f]{12}", version_text)
    assert first is not None, version_text
    await at_both_widths(contract, shots, "contract")
    await contract.close()
    # The operator replaces the contract while the customer reads the summary.
    text.write_text("<h2>Contrat Télécom Exemple</h2><p>Article premier, revu.</p>", "utf-8")
    await page.get_by_label("J'ai lu et j'accepte le contrat").check()
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("alert").wait_for()
    assert await page.get_by_role("alert").inner_text() == (
        "Le contrat a changé depuis votre lecture : veuillez le relire avant de l'accepter."
    )
    assert await _orders(sessions) == 0
    assert not await page.get_by_label("J'ai lu et j'accepte le contrat").is_checked()
    await at_both_widths(page, shots, "contract-changed")
    await page.get_by_label("J'ai lu et j'accepte le contrat").check()
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Commande confirmée").wait_for()
    accepted = await page.locator("dt:has-text('Contrat accepté') + dd").inner_text()
    second = re.search(r"sha256-[0-9a-f]{12}", accepted)
    assert second is not None and second.group(0) != first.group(0), accepted
    await at_both_widths(page, shots, "confirmation")
    order_id = int(page.url.rsplit("/", 1)[1])
    view = await _api_order(client, sessions, order_id)
    assert view["contract_version"] == second.group(0)

    # An operator's page and a version they name (CONTRACT_URL, CONTRACT_VERSION).
    async def contract_page(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Contrat de l'opérateur</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/contrat-2026.html", contract_page)
    operator_site = await aiohttp_server(app, host="127.0.0.1")
    url = f"http://127.0.0.1:{operator_site.port}/contrat-2026.html"
    client = await aiohttp_client(
        create_app(replace(settings, contract_url=url, contract_version="2026-12"))
    )
    base = str(client.make_url("/manager")).rstrip("/")
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    await _to_summary(page, base, world.line_ids[0])
    assert await page.get_by_role("link", name="le contrat").get_attribute("href") == url
    async with page.context.expect_page() as opened:
        await page.get_by_role("link", name="le contrat").click()
    await (await opened.value).get_by_role("heading", name="Contrat de l'opérateur").wait_for()
    await page.get_by_label("J'ai lu et j'accepte le contrat").check()
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Commande confirmée").wait_for()
    assert "2026-12" in await page.locator("dt:has-text('Contrat accepté') + dd").inner_text()
    order_id = int(page.url.rsplit("/", 1)[1])
    assert (await _api_order(client, sessions, order_id))["contract_version"] == "2026-12"


async def test_a_return_while_a_replacement_is_on_order(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World,
    catalog: Catalog, chromium: Any, shots: Shots,
) -> None:  # fmt: skip
    """A phone carrying 13 lines, a replacement ordered from one of them, then the phone
    returned: the confirmation says a replacement is on order and which lines it will carry;
    every one of the 13 lines shows the replacement (none "Pas de téléphone"); the replacement
    ships planned with all 13 and carries them after its first fetch."""
    await make_manager_world(sessions, world)
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        for n in range(4, 15):
            line = await accounts.create_line(
                session, settings, cipher, world.account_id, f"+331234568{n:02d}",
                password=f"secret-{n}", display_name=f"Alice {n}",
            )  # fmt: skip
            await inventory.assign_line(session, world.yealink_mac, line.id)
        order, _ = await orders.place_order(
            session, settings, catalog, load_carriers(),
            orders.OrderRequest(line_id=world.line_ids[0], model_id="yealink-t46u",
                                carrier="dhl", kind="replacement"),
            accept_contract=True,
        )  # fmt: skip
        order_id = order.id
        carried = set(
            (
                await session.scalars(
                    select(LineSlot.line_id)
                    .join(Device, Device.id == LineSlot.device_id)
                    .where(Device.mac == world.yealink_mac)
                )
            ).all()
        )
    assert len(carried) == 13
    base = await _server(aiohttp_client, settings)
    page = await _page(chromium, base, "fr")
    await _sign_in(page, shots, *ALICE)
    await page.get_by_role("heading", name="Mes lignes").wait_for()
    await page.goto(f"{base}/devices/{world.yealink_mac}/return")
    notice = page.locator("#replacement-on-order")
    assert "Un remplaçant (Yealink SIP-T46U, commande n°" in await notice.inner_text()
    assert await page.locator(".moving-lines li").count() == 13
    await at_both_widths(page, shots, "return-confirm")
    await page.get_by_role("button", name="Retourner le téléphone").click()
    await page.get_by_text("Référence de retour").wait_for()
    assert "garde vos 13 lignes" in await page.locator("#replacement-on-order").inner_text()
    await at_both_widths(page, shots, "return-reference")
    await page.goto(f"{base}/lines")
    phone_cards = page.locator(".line-card").filter(has_text="00:15:65:4A:A9:37")
    assert await phone_cards.count() == 13
    notes = await page.locator(".line-card .replacement-note").all_inner_texts()
    assert len(notes) == 13 and all("Remplaçant en route (Yealink SIP-T46U)" in n for n in notes)
    assert await page.locator(".line-card").filter(has_text="Pas de téléphone").count() == 1
    await at_both_widths(page, shots, "lines-after-the-return")
    # The warehouse ships the replacement: it is planned with the 13 lines, and carries them
    # from its first fetch on.
    async with sessions() as session, session.begin():
        shipment = await ship_order(
            session, catalog, cipher, load_carriers(), order_id, "00:15:65:00:00:99"
        )
        assert {line for line, _ in shipment.handovers} == carried
        device_id = shipment.device.id
    async with sessions() as session, session.begin():
        await complete_delivery(session, device_id)
    await page.goto(f"{base}/lines")
    assert await page.locator(".line-card").filter(has_text="00:15:65:00:00:99").count() == 13
    await at_both_widths(page, shots, "lines-on-the-replacement")
