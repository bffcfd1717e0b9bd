"""Pick-up points from the sample directory, and the map of the town."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provisioning.errors import InvalidInput, UnknownPlace
from provisioning.orders.relay_map import relay_map_svg
from provisioning.orders.relay_points import (
    RADIUS_M,
    SAMPLE_FILE,
    SampleDirectory,
    Search,
    distance_m,
    normalize_town,
)

SVG = "{http://www.w3.org/2000/svg}"


def test_the_shipped_file_says_it_is_sample_data() -> None:
    data = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    assert data["sample"] is True and data["notice"].startswith("SAMPLE DATA")
    directory = SampleDirectory()
    assert directory.sample is True
    assert directory.towns() == ["Lille", "Lyon", "Nantes", "Paris", "Toulouse", "Villeurbanne"]
    ids = [p["id"] for p in data["points"]]
    assert len(ids) == len(set(ids)) >= 25


@pytest.mark.parametrize(
    ("postcode", "city", "label"),
    [
        ("75011", None, "75011 Paris"),
        ("75018", None, "75018 Paris"),  # not in the file: the town its digits belong to
        (None, "VILLEURBANNE", "Villeurbanne"),
        (None, " lyon ", "Lyon"),
        (None, "Saint-Étienne", None),
    ],
)
def test_locate(postcode: str | None, city: str | None, label: str | None) -> None:
    directory = SampleDirectory()
    if label is None:
        with pytest.raises(UnknownPlace, match="sample data covers"):
            directory.locate(postcode, city)
        return
    assert directory.locate(postcode, city).label == label


@pytest.mark.parametrize(
    ("postcode", "city"),
    [(None, None), ("", ""), ("75002", "Paris"), ("7500", None), ("ABCDE", None)],
)
def test_bad_queries(postcode: str | None, city: str | None) -> None:
    with pytest.raises(InvalidInput):
        SampleDirectory().locate(postcode, city)


def test_nearest_first_within_reach() -> None:
    directory = SampleDirectory()
    near = directory.nearest(directory.locate("31400", None), 20)
    distances = [n.distance_m for n in near]
    assert distances == sorted(distances) and max(distances) <= RADIUS_M
    assert {n.point.town for n in near} == {"Toulouse"}
    assert len(directory.nearest(directory.locate("31400", None), 2)) == 2


def test_distance_and_names() -> None:
    # Paris (Hôtel de Ville) to Lyon (Hôtel de Ville): about 392 km as the crow flies.
    assert 388_000 < distance_m(48.8566, 2.3522, 45.7676, 4.8357) < 396_000
    assert normalize_town("Saint-Étienne") == normalize_town("saint etienne") == "saint etienne"


def test_the_map_escapes_every_text_and_numbers_the_points(tmp_path: Path) -> None:
    data = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    data["towns"][0]["name"] = 'Paris <script>"&'
    data["points"][0]["name"] = "Tabac <b>& Co</b> ]]>"
    path = tmp_path / "points.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    directory = SampleDirectory(path)
    place = directory.locate(None, 'paris <script>"&')
    search = Search(place, directory.nearest(place, 8), directory.sample)
    svg = relay_map_svg(search)
    root = ET.fromstring(svg)  # well-formed: nothing got out of its text node
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert any("Tabac <b>& Co</b> ]]>" in t for t in texts)
    assert "<script>" not in svg and "<b>" not in svg
    numbers = [t for t in texts if t.isdigit()]
    assert numbers == [str(n) for n in range(1, len(search.points) + 1)]
    # Said in French, as the whole plan: these points are samples.
    assert any("Données d'exemple" in t for t in texts)
    assert not any("sample data" in t for t in texts)
