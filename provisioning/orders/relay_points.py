"""Pick-up points: what a carrier offers near a town or postcode, with distance, opening hours
and coordinates. `SampleDirectory` reads the sample points shipped in `data/` (clearly marked
as sample data), so ordering works offline; real carriers bring their own search."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioning.errors import InvalidInput, UnknownPlace

SAMPLE_FILE = Path(__file__).resolve().parent / "data" / "relay_points.sample.json"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_POINTS = 20
# Farther than this, a pick-up point is not "near" the customer's town.
RADIUS_M = 25_000
_POSTCODE = re.compile(r"[0-9]{5}")
_HOURS = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]")


@dataclass(frozen=True)
class Place:
    """Where the search is centred: a postcode's or a town's centre."""

    postcode: str | None
    town: str
    lat: float
    lon: float

    @property
    def label(self) -> str:
        return f"{self.postcode} {self.town}" if self.postcode else self.town


@dataclass(frozen=True)
class RelayPoint:
    id: str
    name: str
    street: str
    postcode: str
    town: str
    country: str
    lat: float
    lon: float
    # Weekday -> ((opens, closes), ...) as "HH:MM"; an empty tuple means closed that day.
    hours: dict[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Nearby:
    point: RelayPoint
    distance_m: int


@dataclass(frozen=True)
class Search:
    place: Place
    points: list[Nearby]
    sample: bool


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> int:
    """Great-circle distance in metres (haversine)."""
    radius = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return round(2 * radius * math.asin(math.sqrt(h)))


def normalize_town(text: str) -> str:
    """ "Saint-Étienne" and "saint etienne" are the same town."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[-'\u2019.]", " ", plain).split())


def check_query(postcode: str | None, city: str | None) -> tuple[str | None, str | None]:
    """Exactly one of a French postcode or a town name."""
    postcode = (postcode or "").strip() or None
    city = (city or "").strip() or None
    if (postcode is None) == (city is None):
        raise InvalidInput("postcode or city: give one of them", field="postcode")
    if postcode is not None and not _POSTCODE.fullmatch(postcode):
        raise InvalidInput("postcode: expected 5 digits, e.g. 75002", field="postcode")
    if city is not None and not (1 <= len(city) <= 100 and normalize_town(city)):
        raise InvalidInput("city: a town name (1 to 100 characters)", field="city")
    return postcode, city


class SampleDirectory:
    """Relay points from a JSON file: `towns` (centre and postcode centres), `schedules`
    (named opening hours) and `points`. Loaded once, on first use."""

    def __init__(self, path: Path = SAMPLE_FILE) -> None:
        self.path = path
        self._loaded: tuple[bool, list[tuple[str, Place]], list[RelayPoint]] | None = None

    def _load(self) -> tuple[bool, list[tuple[str, Place]], list[RelayPoint]]:
        if self._loaded is None:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._loaded = _parse(data)
        return self._loaded

    @property
    def sample(self) -> bool:
        return self._load()[0]

    def towns(self) -> list[str]:
        return sorted({place.town for key, place in self._load()[1] if key.startswith("town:")})

    def locate(self, postcode: str | None, city: str | None) -> Place:
        postcode, city = check_query(postcode, city)
        _, places, _ = self._load()
        if postcode is not None:
            index = {key: place for key, place in places}
            # A postcode not in the file falls back to the town its first digits belong to.
            for key in (f"postcode:{postcode}", f"prefix:{postcode[:3]}", f"prefix:{postcode[:2]}"):
                if key in index:
                    found = index[key]
                    return Place(postcode, found.town, found.lat, found.lon)
        else:
            assert city is not None
            wanted = f"town:{normalize_town(city)}"
            for key, place in places:
                if key == wanted:
                    return place
        known = ", ".join(self.towns())
        raise UnknownPlace(
            f"no pick-up points known near {postcode or city} (the sample data covers {known})",
            field="postcode" if postcode else "city",
        )

    def nearest(self, place: Place, limit: int) -> list[Nearby]:
        _, _, points = self._load()
        found = [Nearby(p, distance_m(place.lat, place.lon, p.lat, p.lon)) for p in points]
        found = [n for n in found if n.distance_m <= RADIUS_M]
        found.sort(key=lambda n: (n.distance_m, n.point.id))
        return found[: max(1, min(limit, MAX_POINTS))]

    def get(self, point_id: str) -> RelayPoint | None:
        return next((p for p in self._load()[2] if p.id == point_id), None)


def _parse(data: Any) -> tuple[bool, list[tuple[str, Place]], list[RelayPoint]]:
    places: list[tuple[str, Place]] = []
    for town in data["towns"]:
        centre = Place(None, town["name"], float(town["lat"]), float(town["lon"]))
        places.append((f"town:{normalize_town(town['name'])}", centre))
        for code, (lat, lon) in town["postcodes"].items():
            places.append((f"postcode:{code}", Place(code, town["name"], float(lat), float(lon))))
            for prefix in (code[:3], code[:2]):
                if not any(key == f"prefix:{prefix}" for key, _ in places):
                    places.append((f"prefix:{prefix}", centre))
    schedules = {name: _hours(name, days) for name, days in data["schedules"].items()}
    points = [
        RelayPoint(
            id=p["id"],
            name=p["name"],
            street=p["street"],
            postcode=p["postcode"],
            town=p["town"],
            country=p["country"],
            lat=float(p["lat"]),
            lon=float(p["lon"]),
            hours=schedules[p["hours"]],
        )
        for p in data["points"]
    ]
    return bool(data.get("sample")), places, points


def _hours(name: str, days: dict[str, list[str]]) -> dict[str, tuple[tuple[str, str], ...]]:
    result = {}
    for day in WEEKDAYS:
        spans = []
        for span in days.get(day[:3], []):
            if not _HOURS.fullmatch(span):
                raise ValueError(f"relay points: schedule {name}: bad hours {span!r}")
            opens, closes = span.split("-")
            spans.append((opens, closes))
        result[day] = tuple(spans)
    return result


def point_view(point: RelayPoint) -> dict[str, Any]:
    return {
        "id": point.id,
        "name": point.name,
        "address": {
            "street": point.street,
            "postcode": point.postcode,
            "town": point.town,
            "country": point.country,
        },
        "latitude": point.lat,
        "longitude": point.lon,
        "opening_hours": {
            day: [{"opens": o, "closes": c} for o, c in spans] for day, spans in point.hours.items()
        },
    }


def place_view(place: Place) -> dict[str, Any]:
    return {
        "label": place.label,
        "postcode": place.postcode,
        "town": place.town,
        "latitude": place.lat,
        "longitude": place.lon,
    }
