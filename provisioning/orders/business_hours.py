"""The shipping promise: a phone leaves the warehouse within 24 business hours of validation.

Business hours are the hours of working days — Monday to Friday, public holidays excluded —
counted on the warehouse's clock (France, Europe/Paris). An order validated on Friday at 18:00
has 6 hours counted on Friday and 18 on Monday; one validated on a Saturday starts counting on
Monday at 00:00. Public holidays come from the maintained `holidays` library, not a list kept
here (Easter Monday, Ascension and Whit Monday move every year). Clock changes fall on Sundays in
France, so a working day always has 24 hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

SHIPPING_PROMISE = timedelta(hours=24)


@dataclass(frozen=True)
class WorkingCalendar:
    country: str = "FR"
    timezone: str = "Europe/Paris"
    # `holidays` subdivision, e.g. "57" for Moselle, which adds Good Friday and 26 December.
    subdivision: str | None = None

    def days_off(self, year: int) -> holidays.HolidayBase:
        # expand=True (the default): asking about a later year fills it in.
        return holidays.country_holidays(self.country, subdiv=self.subdivision, years=year)

    def is_working_day(self, day: date, days_off: holidays.HolidayBase | None = None) -> bool:
        days_off = self.days_off(day.year) if days_off is None else days_off
        return day.weekday() < 5 and day not in days_off

    def add_business_time(self, start: datetime, span: timedelta = SHIPPING_PROMISE) -> datetime:
        """The instant (UTC) when `span` of business time has passed since `start`."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        zone = ZoneInfo(self.timezone)
        days_off = self.days_off(start.astimezone(zone).year)
        remaining = span
        # Arithmetic in UTC: between two datetimes of one ZoneInfo Python counts wall-clock time.
        current = start.astimezone(UTC)
        for _ in range(3660):  # ten years of days: a calendar without working days is a bug
            local_day = current.astimezone(zone).date()
            next_midnight = datetime.combine(local_day + timedelta(days=1), time(0), tzinfo=zone)
            day_end = next_midnight.astimezone(UTC)
            if self.is_working_day(local_day, days_off):
                available = day_end - current
                if remaining <= available:
                    return current + remaining
                remaining -= available
            current = day_end
        raise ValueError(f"no working day in ten years in {self.country}")


FRANCE = WorkingCalendar()


def ship_by(validated_at: datetime, calendar: WorkingCalendar = FRANCE) -> datetime:
    return calendar.add_business_time(validated_at, SHIPPING_PROMISE)
