"""Delivery addresses: where DHL takes the phone. A French address needs a street line, a
5-digit postcode and a town; other countries are accepted when the settings list them."""

from __future__ import annotations

from dataclasses import dataclass

from provisioning.errors import InvalidAddress
from provisioning.render.escaping import check_text

# Postcode formats of the countries phones may be shipped to: declared with the setting that
# names those countries (`shipping_countries`), which is checked against them.
from provisioning.settings import POSTCODES as POSTCODES


@dataclass(frozen=True)
class DeliveryAddress:
    name: str
    street: str
    postcode: str
    town: str
    country: str = "FR"


def _text(value: object, field: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidAddress(f"{field}: expected text", field=field)
    value = " ".join(value.split())
    if not value:
        raise InvalidAddress(f"{field}: required for a delivery address", field=field)
    if len(value) > max_length:
        raise InvalidAddress(f"{field}: at most {max_length} characters", field=field)
    # Lone surrogates (valid in JSON escapes, not in UTF-8) would fail in the database driver.
    if not check_text(value) or not _encodable(value):
        raise InvalidAddress(f"{field}: must not contain control characters", field=field)
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_address(
    *,
    name: object,
    street: object,
    postcode: object,
    town: object,
    country: object,
    countries: tuple[str, ...],
    field: str = "address",
) -> DeliveryAddress:
    """A checked address, or InvalidAddress naming the part that is wrong (`address.postcode`)."""
    code = _text(country, f"{field}.country", 2).upper()
    if code not in countries:
        raise InvalidAddress(
            f"{field}.country: phones are shipped to {', '.join(countries)} only",
            field=f"{field}.country",
        )
    zip_code = _text(postcode, f"{field}.postcode", 20).upper()
    if not POSTCODES[code].fullmatch(zip_code):
        what = "5 digits, e.g. 75002" if code == "FR" else f"a postcode of {code}"
        raise InvalidAddress(f"{field}.postcode: expected {what}", field=f"{field}.postcode")
    return DeliveryAddress(
        name=_text(name, f"{field}.name", 200),
        street=_text(street, f"{field}.street", 200),
        postcode=zip_code,
        town=_text(town, f"{field}.town", 100),
        country=code,
    )
