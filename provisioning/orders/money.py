"""Exact money: integer cents, VAT worked out with Decimal and rounded half up to the cent once
per priced item, so the items shown always add up to the total shown. Never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CURRENCY = "EUR"
# The service's flat shipping price, excluding VAT, whatever the carrier.
SHIPPING_CENTS = 999


def basis_points(rate_percent: Decimal) -> int:
    """20 -> 2000, 5.5 -> 550 (settings allow two decimals at most)."""
    return int((rate_percent * 100).to_integral_value(ROUND_HALF_UP))


def vat_cents(excl_cents: int, rate_bp: int) -> int:
    return int((Decimal(excl_cents) * rate_bp / 10_000).to_integral_value(ROUND_HALF_UP))


def amount(cents: int) -> str:
    """12900 -> "129.00" (a string: JSON numbers are floats to most readers)."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units}.{rest:02d}"


def money_view(cents: int) -> dict[str, Any]:
    return {"cents": cents, "amount": amount(cents)}


def rate_text(rate_bp: int) -> str:
    """2000 -> "20", 550 -> "5.5"."""
    value = Decimal(rate_bp) / 100
    return format(value.normalize(), "f") if value else "0"


@dataclass(frozen=True)
class PriceLine:
    description: str
    excl_cents: int
    vat_cents: int

    @property
    def incl_cents(self) -> int:
        return self.excl_cents + self.vat_cents

    def view(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "excl_vat": money_view(self.excl_cents),
            "vat": money_view(self.vat_cents),
            "incl_vat": money_view(self.incl_cents),
        }


@dataclass(frozen=True)
class Prices:
    """The phone and its shipping, each with and without VAT, and the total."""

    phone: PriceLine
    shipping: PriceLine
    rate_bp: int

    @classmethod
    def compute(
        cls, phone: str, phone_cents: int, shipping: str, shipping_cents: int, rate_bp: int
    ) -> Prices:
        return cls(
            PriceLine(phone, phone_cents, vat_cents(phone_cents, rate_bp)),
            PriceLine(shipping, shipping_cents, vat_cents(shipping_cents, rate_bp)),
            rate_bp,
        )

    @property
    def total_excl_cents(self) -> int:
        return self.phone.excl_cents + self.shipping.excl_cents

    @property
    def total_vat_cents(self) -> int:
        return self.phone.vat_cents + self.shipping.vat_cents

    @property
    def total_incl_cents(self) -> int:
        return self.total_excl_cents + self.total_vat_cents

    def view(self) -> dict[str, Any]:
        return {
            "currency": CURRENCY,
            "vat_rate": rate_text(self.rate_bp),
            "items": [self.phone.view(), self.shipping.view()],
            "total": {
                "excl_vat": money_view(self.total_excl_cents),
                "vat": money_view(self.total_vat_cents),
                "incl_vat": money_view(self.total_incl_cents),
            },
        }
