"""The 24-business-hour shipping promise at awkward times: Friday evening, the day before a
public holiday, weekends, holidays themselves, a clock change. The clock is a parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from provisioning.orders.business_hours import FRANCE, WorkingCalendar, ship_by

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("validated", "expected", "why"),
    [
        (paris(2026, 11, 24, 10, 0), paris(2026, 11, 25, 10, 0), "a Tuesday: the next day"),
        (paris(2026, 11, 27, 18, 0), paris(2026, 11, 30, 18, 0), "Friday evening: 6 h + 18 h"),
        (paris(2026, 11, 27, 23, 59), paris(2026, 11, 30, 23, 59), "Friday just before midnight"),
        (paris(2026, 11, 28, 10, 0), paris(2026, 12, 1, 0, 0), "Saturday: counting starts Monday"),
        (paris(2026, 11, 29, 23, 0), paris(2026, 12, 1, 0, 0), "Sunday night, the same"),
        (paris(2026, 5, 13, 15, 0), paris(2026, 5, 15, 15, 0), "the day before Ascension"),
        (paris(2026, 4, 3, 18, 0), paris(2026, 4, 7, 18, 0), "Friday before Easter Monday"),
        (paris(2026, 12, 24, 23, 0), paris(2026, 12, 28, 23, 0), "Christmas Eve, late"),
        (paris(2026, 7, 14, 10, 0), paris(2026, 7, 16, 0, 0), "on Bastille Day itself"),
        (paris(2026, 5, 7, 12, 0), paris(2026, 5, 11, 12, 0), "Thursday before 8 May (Friday)"),
        (paris(2026, 10, 23, 20, 0), paris(2026, 10, 26, 20, 0), "across the autumn clock change"),
        (paris(2026, 3, 27, 9, 30), paris(2026, 3, 30, 9, 30), "across the spring clock change"),
    ],
)
def test_ship_by(validated: datetime, expected: datetime, why: str) -> None:
    got = ship_by(validated)
    assert got == expected, why
    assert got.tzinfo is not None and got.utcoffset() == UTC.utcoffset(None)


def test_any_time_zone_in_gives_the_same_instant() -> None:
    friday_evening = paris(2026, 11, 27, 18, 0)
    assert ship_by(friday_evening.astimezone(UTC)) == ship_by(friday_evening)
    tokyo = friday_evening.astimezone(ZoneInfo("Asia/Tokyo"))  # already Saturday there
    assert ship_by(tokyo) == paris(2026, 11, 30, 18, 0)


def test_holidays_come_from_the_library_for_any_year() -> None:
    # Easter Monday moves: 2027-03-29, 2030-04-22. No list in this repository knows that.
    assert not FRANCE.is_working_day(datetime(2027, 3, 29).date())
    assert not FRANCE.is_working_day(datetime(2030, 4, 22).date())
    assert FRANCE.is_working_day(datetime(2030, 4, 23).date())


def test_a_warehouse_in_moselle_also_rests_on_good_friday() -> None:
    moselle = WorkingCalendar(subdivision="57")
    thursday_noon = paris(2026, 4, 2, 12, 0)
    assert ship_by(thursday_noon) == paris(2026, 4, 3, 12, 0)
    assert moselle.add_business_time(thursday_noon) == paris(2026, 4, 7, 12, 0)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        ship_by(datetime(2026, 11, 27, 18, 0))
