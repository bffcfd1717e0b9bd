"""A customer's flows through the pages, as a browser without JavaScript sends them: ordering
(DHL, pick-up point, replacement), wrong inputs at every step, associating a line with a phone
the customer has, returning a phone; and a refusal that reads the same as in the API."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from provisioning import tokens
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Association, Order, utcnow
from tests.conftest import World
from tests.web.kit import ALICE, Browser, ManagerWorld, hidden_fields, mac_label, make_manager_world


@pytest.fixture
async def mw(sessions: SessionFactory, world: World) -> ManagerWorld:
    return await make_manager_world(sessions, world)


@pytest.fixture
async def alice(client: TestClient, mw: ManagerWorld) -> Browser:
    browser = Browser(client)
    status, _ = await browser.sign_in(*ALICE)
    assert status == 200
    return browser


async def _orders(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Order)) or 0)


async def test_lines_show_each_phone_or_none(alice: Browser, mw: ManagerWorld) -> None:
    status, page = await alice.get("/manager/lines")
    assert status == 200
    assert "Yealink SIP-T46U" in page and mac_label(mw.world.yealink_mac) in page
    assert "Pas de téléphone" in page and "01 23 45 67 03" in page


async def test_order_with_dhl_and_wrong_inputs(
    alice: Browser, mw: ManagerWorld, sessions: SessionFactory
) -> None:
    line = mw.free_line
    status, page = await alice.get(f"/manager/lines/{line}/order")
    assert status == 200 and "Commander un Plug &amp; Phone" in page and "Suivant" in page
    # No model chosen: back to the first step with the error.
    status, page = await alice.get(f"/manager/lines/{line}/order/shipping?model=")
    assert status == 422 and "Veuillez choisir un modèle" in page
    status, page = await alice.get(f"/manager/lines/{line}/order/shipping?model=yealink-t46u")
    assert status == 200 and "9,99\u00a0€ HT" in page
    assert 'value="12 rue de la Paix"' in page and 'value="75002"' in page  # the holder's
    # Empty street: the shipping step again, the error named, the rest kept.
    form = {"model": "yealink-t46u", "carrier": "dhl", "address_name": "Alice Martin",
            "address_street": "  ", "address_postcode": "75002", "address_town": "Paris",
            "address_country": "FR"}  # fmt: skip
    status, page = await alice.post(f"/manager/lines/{line}/order/summary", form)
    assert status == 422 and "Veuillez vérifier la rue de l&#39;adresse de livraison" in page
    # The API's English detail is for the log, not for the customer.
    assert "address.street" not in page and 'value="75002"' in page
    assert (
        'name="address_street" value="  " maxlength="200" autocomplete="street-address" aria-invalid="true"'
        in page
    )
    status, page = await alice.post(
        f"/manager/lines/{line}/order/summary", {**form, "address_postcode": "7500"}
    )
    assert status == 422 and "Veuillez vérifier le code postal de l&#39;adresse" in page
    assert "expected 5 digits" not in page
    form["address_street"] = "3 rue Neuve"
    status, page = await alice.post(f"/manager/lines/{line}/order/summary", form)
    assert (
        status == 200
        and "Récapitulatif" in page
        and 'J&#39;ai lu et j&#39;accepte <a href="/manager/contract"' in page
    )
    assert all(f"{price}\u00a0€" in page for price in ("129,00", "154,80", "9,99", "11,99"))
    hidden = hidden_fields(page)
    assert hidden["address_street"] == "3 rue Neuve" and hidden["idempotency_key"]
    # Validate without the contract: the error on the same page, nothing lost, nothing stored.
    status, page = await alice.post(f"/manager/lines/{line}/order", hidden)
    assert status == 422 and "Veuillez cocher" in page
    assert hidden_fields(page) == hidden
    assert await _orders(sessions) == 0
    # A double click: two posts with the same key give one order.
    first = await alice.client.post(
        f"/manager/lines/{line}/order", data={**hidden, "accept_contract": "yes"},
        allow_redirects=False,
    )  # fmt: skip
    second = await alice.client.post(
        f"/manager/lines/{line}/order", data={**hidden, "accept_contract": "yes"},
        allow_redirects=False,
    )  # fmt: skip
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert await _orders(sessions) == 1
    status, page = await alice.get(first.headers["Location"])
    assert status == 200 and "Commande confirmée" in page and "sera expédié au plus tard le" in page
    assert "3 rue Neuve" in page
    # The line now says a phone is on order; ordering again is not offered.
    status, page = await alice.get(f"/manager/lines/{line}")
    assert "commandé, expédition au plus tard" in page


async def test_order_to_a_pick_up_point(
    alice: Browser, mw: ManagerWorld, sessions: SessionFactory
) -> None:
    line = mw.free_line
    base = f"/manager/lines/{line}/order/shipping?model=yealink-t42u&carrier=mondial-relay"
    status, page = await alice.get(base)
    assert status == 200 and "Points relais les plus proches de 75002 Paris" in page
    points = re.findall(r'name="relay_point" value="([^"]+)"', page)
    assert len(points) == 8
    map_url = html.unescape(re.search(r'<img src="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    resp = await alice.client.get(map_url)
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    assert "Tabac de la Bourse" in await resp.text()
    status, page = await alice.get(base + "&postcode=99999")
    assert status == 200 and "Aucun point relais n&#39;est connu" in page
    status, page = await alice.get(base + "&city=Lyon")
    assert "Points relais les plus proches de Lyon" in page
    # Next without choosing a point.
    form = {"model": "yealink-t42u", "carrier": "mondial-relay"}
    status, page = await alice.post(f"/manager/lines/{line}/order/summary", form)
    assert status == 422 and "Veuillez choisir un point relais" in page
    status, page = await alice.post(
        f"/manager/lines/{line}/order/summary", {**form, "relay_point": points[0]}
    )
    assert status == 200 and "Mondial Relay" in page and "Tabac de la Bourse" in page
    hidden = hidden_fields(page)
    status, page = await alice.post(
        f"/manager/lines/{line}/order", {**hidden, "accept_contract": "yes"}
    )
    assert status == 200 and "Commande confirmée" in page and "Mondial Relay" in page
    assert "point relais Tabac de la Bourse" in page
    assert await _orders(sessions) == 1


async def test_change_the_phone(alice: Browser, mw: ManagerWorld, sessions: SessionFactory) -> None:
    line = mw.world.line_ids[0]  # on the Yealink, with line 2
    status, page = await alice.get(f"/manager/lines/{line}")
    assert "Changer de téléphone Plug &amp; Phone" in page and "Retourner ce téléphone" in page
    status, page = await alice.get(f"/manager/lines/{line}/order")
    assert status == 200 and "Changer de téléphone Plug &amp; Phone" in page
    assert "porte 2 lignes" in page
    offered = re.findall(r'name="model" value="([^"]+)"', page)
    assert offered and "yealink-t46u" in offered
    status, page = await alice.get(f"/manager/lines/{line}/order/shipping?model=yealink-t46u")
    fields = {"model": "yealink-t46u", "carrier": "dhl", "address_name": "Alice Martin",
              "address_street": "12 rue de la Paix", "address_postcode": "75002",
              "address_town": "Paris", "address_country": "FR"}  # fmt: skip
    status, page = await alice.post(f"/manager/lines/{line}/order/summary", fields)
    assert status == 200 and "Votre téléphone actuel" in page
    status, page = await alice.post(
        f"/manager/lines/{line}/order", {**hidden_fields(page), "accept_contract": "yes"}
    )
    assert (
        status == 200
        and "Votre ancien téléphone" in page
        and mac_label(mw.world.yealink_mac) in page
    )
    async with sessions() as session:
        order = (await session.scalars(select(Order))).one()
    assert order.kind == "replacement" and order.replaced_mac == mw.world.yealink_mac


async def test_associate_a_line_with_a_phone_already_there(
    alice: Browser, mw: ManagerWorld, sessions: SessionFactory
) -> None:
    line = mw.free_line
    status, page = await alice.get(f"/manager/lines/{line}")
    assert (
        "Utiliser un téléphone que vous avez déjà" in page
        and mac_label(mw.world.yealink_mac) in page
    )
    status, page = await alice.get(f"/manager/lines/{line}/associate?mac={mw.world.yealink_mac}")
    assert status == 200 and 'role="dialog"' in page and "emplacement 3" in page
    status, _ = await alice.get(f"/manager/lines/{line}/associate?mac=001565000000")
    assert status == 404
    resp = await alice.client.post(
        f"/manager/lines/{line}/associate",
        data={"mac": mw.world.yealink_mac, "csrf": alice.csrf()}, allow_redirects=False,
    )  # fmt: skip
    assert resp.status == 303
    status, page = await alice.get(resp.headers["Location"])
    assert status == 200 and "Suivi du changement" in page and "En cours" in page
    status_url = resp.headers["Location"] + "/status"
    view = await (await alice.client.get(status_url)).json()
    assert view["status"] == "pending" and view["slot"] == 3 and view["late"] is False
    # A double click on "Valider" (no script): the second follows the first, nothing doubled.
    again = await alice.client.post(
        f"/manager/lines/{line}/associate",
        data={"mac": mw.world.yealink_mac, "csrf": alice.csrf()}, allow_redirects=False,
    )  # fmt: skip
    assert again.status == 303 and again.headers["Location"] == resp.headers["Location"]
    async with sessions() as session:
        assert len((await session.scalars(select(Association))).all()) == 1
    # The linphone cannot take it any more: refused on the line page, nothing changed.
    status, page = await alice.post(
        f"/manager/lines/{line}/associate", {"mac": mw.world.linphone_mac}
    )
    assert status == 409 and "Cette ligne a déjà un téléphone" in page
    # Past five minutes without the phone fetching, the panel warns.
    async with sessions() as session, session.begin():
        await session.execute(
            update(Association).values(created_at=utcnow() - timedelta(minutes=6))
        )
    view = await (await alice.client.get(status_url)).json()
    assert view["status"] == "pending" and view["late"] is True
    status, page = await alice.get(resp.headers["Location"])
    assert 'data-field="late">Plus de 5 minutes' in page


async def test_a_refusal_is_the_api_s_said_in_the_reader_s_language(
    client: TestClient, alice: Browser, mw: ManagerWorld, sessions: SessionFactory
) -> None:
    line = mw.world.line_ids[0]  # already on the Yealink
    async with sessions() as session, session.begin():
        _, token = await tokens.create_token(session, "customer", account_id=mw.world.account_id)
    resp = await client.post(
        "/api/v1/associations", json={"line_id": line, "mac": mw.world.linphone_mac},
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    problem = await resp.json()
    assert resp.status == 409 and problem["type"].endswith("/line-has-phone")
    for lang in ("fr", "en"):
        await client.get(f"/manager/language?lang={lang}&next=/manager/")
        status, page = await alice.post(
            f"/manager/lines/{line}/associate", {"mac": mw.world.linphone_mac}
        )
        assert status == resp.status
        # The same refusal, said in the reader's language; the API's detail is for the log.
        assert html.escape(problem["detail"], quote=True) not in page, lang
        assert (
            "Cette ligne a déjà un téléphone." if lang == "fr" else "This line already has a phone."
        ) in page


async def test_return_a_phone(alice: Browser, mw: ManagerWorld) -> None:
    mac = mw.world.linphone_mac
    status, page = await alice.get(f"/manager/devices/{mac}/return")
    assert status == 200 and "Retourner le téléphone" in page
    status, page = await alice.post(f"/manager/devices/{mac}/return")
    assert status == 200 and "Référence de retour" in page
    reference = re.search(r"RT-[A-Z0-9]{4}-[A-Z0-9]{4}", page).group(0)  # type: ignore[union-attr]
    assert "bureau de poste" in page
    # Asking again gives the same reference; the lines page lists it.
    status, page = await alice.get(f"/manager/devices/{mac}/return")
    assert reference in page
    status, page = await alice.get("/manager/lines")
    assert "Téléphones à renvoyer" in page and reference in page


async def test_english_is_available(alice: Browser, mw: ManagerWorld) -> None:
    await alice.client.get("/manager/language?lang=en&next=/manager/lines")
    status, page = await alice.get(f"/manager/lines/{mw.free_line}")
    assert status == 200 and '<html lang="en">' in page and "Order a Plug &amp; Phone" in page
    assert "Order equipment" in page


async def test_a_bug_gives_a_page_not_a_traceback(
    alice: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provisioning.web import customer

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-detail-of-a-bug")

    monkeypatch.setattr(customer, "_rows", broken)
    status, page = await alice.get("/manager/lines")
    assert status == 500 and "Une erreur est survenue" in page
    assert "secret-detail-of-a-bug" not in page and "Traceback" not in page


async def test_the_shipped_contract_model(alice: Browser, mw: ManagerWorld) -> None:
    """Without CONTRACT_FILE or CONTRACT_URL, the model shipped with the software, which says
    that it is one; it is public, like any contract read before ordering."""
    status, page = await alice.get("/manager/contract")
    assert status == 200 and "Modèle de contrat fourni avec le logiciel" in page
    assert re.search(r"Version sha256-[0-9a-f]{12}", page)
    form = {"model": "yealink-t46u", "carrier": "dhl", "address_name": "Alice Martin",
            "address_street": "3 rue Neuve", "address_postcode": "75002", "address_town": "Paris",
            "address_country": "FR"}  # fmt: skip
    status, page = await alice.post(f"/manager/lines/{mw.free_line}/order/summary", form)
    assert status == 200 and 'href="/manager/contract" target="_blank"' in page
    assert re.fullmatch(r"sha256-[0-9a-f]{12}", hidden_fields(page)["contract_version"])
