"""Schedule expressions as EventBridge Scheduler reads them, and the times they name.

Three kinds (AWS's user guide, "Schedule types"):

- `at(yyyy-mm-ddThh:mm:ss)`: once, at that wall-clock time in the schedule's time zone;
- `rate(value unit)`: every `value` minutes, hours or days of elapsed time (a day is 24 hours,
  whatever daylight saving time does to the clock), from StartDate, or from when the schedule was
  created or last updated if it has none ("starts invoking the target immediately");
- `cron(minutes hours day-of-month month day-of-week year)`: wall-clock times in the time zone,
  with AWS's wildcards (`, - * / ? L W #`, month and weekday names, weekday 1 = Sunday). When the
  clock springs forward, a time that does not exist that day is skipped; when it falls back, a
  time that happens twice fires once (the first time).

Everything here is pure: times are POSIX seconds (floats), the current time is always an argument,
and randomness (the flexible time window) comes from a callable, so every rule is unit-tested
without a clock. A bad expression raises `InvalidExpression` with AWS's ValidationException text.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
WEEKDAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
YEARS = (1970, 2199)
AT = re.compile(r"at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)")
RATE = re.compile(r"rate\((\d+) ([a-z]+)\)")
CRON = re.compile(r"cron\(([^()]*)\)")
#: Catching up after downtime walks a cron schedule's missed times one by one; past this many, the
#: oldest are not counted (they are skipped either way).
CATCH_UP_LIMIT = 100_000


class InvalidExpression(ValueError):
    """A schedule expression or time zone the Scheduler API refuses; the message is AWS's."""


def invalid(expression: str) -> InvalidExpression:
    return InvalidExpression(f"Invalid Schedule Expression {expression}.")


class Expression(Protocol):
    """When a parsed expression fires; `anchor` is where a rate counts from."""

    text: str
    one_time: bool

    def at_or_after(self, t: float, tz: tzinfo, anchor: float) -> float | None:
        """The first time the expression names at or after `t`, or None when there is none."""


@dataclass(frozen=True)
class At:
    text: str
    wall: datetime  # naive: a wall-clock time in the schedule's time zone
    one_time = True

    def at_or_after(self, t: float, tz: tzinfo, anchor: float) -> float | None:
        when = self.wall.replace(tzinfo=tz).timestamp()
        return when if when >= t else None


@dataclass(frozen=True)
class Rate:
    text: str
    seconds: int
    one_time = False

    def at_or_after(self, t: float, tz: tzinfo, anchor: float) -> float | None:
        if t <= anchor:
            return anchor
        return anchor + math.ceil((t - anchor) / self.seconds) * self.seconds

    def last_at_or_before(self, t: float, anchor: float) -> float:
        """The latest time at or before `t` (t >= anchor): a catch-up without a walk."""
        return anchor + math.floor((t - anchor) / self.seconds) * self.seconds


@dataclass(frozen=True)
class DaysOfMonth:
    """The day-of-month field: plain days, `L` (the last day), `LW` (the last weekday) and `nW`
    (the weekday nearest day n, never leaving the month)."""

    days: frozenset[int]
    last: bool = False
    last_weekday: bool = False
    nearest_weekday: frozenset[int] = frozenset()

    def matching(self, year: int, month: int) -> set[int]:
        length = calendar.monthrange(year, month)[1]
        days = {day for day in self.days if day <= length}
        if self.last:
            days.add(length)
        if self.last_weekday:
            days.add(_nearest_weekday(year, month, length, length))
        for day in self.nearest_weekday:
            if day <= length:
                days.add(_nearest_weekday(year, month, day, length))
        return days


@dataclass(frozen=True)
class DaysOfWeek:
    """The day-of-week field (1 = Sunday): plain weekdays, `nL` (the month's last weekday n) and
    `n#k` (its k-th weekday n)."""

    weekdays: frozenset[int]
    last_of: frozenset[int] = frozenset()
    nth: tuple[int, int] | None = None  # (weekday, k)

    def matching(self, year: int, month: int) -> set[int]:
        first_weekday, length = calendar.monthrange(year, month)  # Monday = 0
        days: set[int] = set()
        for day in range(1, length + 1):
            weekday = (first_weekday + day) % 7 + 1  # AWS numbering: Sunday 1, Monday 2 ... Saturday 7
            if weekday in self.weekdays or (weekday in self.last_of and day + 7 > length):
                days.add(day)
            if self.nth is not None and weekday == self.nth[0] and (day - 1) // 7 + 1 == self.nth[1]:
                days.add(day)
        return days


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    weekday = calendar.weekday(year, month, day)  # Monday = 0
    if weekday == 5:  # Saturday: Friday before, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday after, unless that leaves the month
        return day + 1 if day < length else day - 2
    return day


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: DaysOfMonth | None  # exactly one of the two day fields is `?` (None)
    days_of_week: DaysOfWeek | None
    months: tuple[int, ...]
    years: tuple[int, ...]
    one_time = False

    def days(self, year: int, month: int) -> list[int]:
        spec = self.days_of_month if self.days_of_month is not None else self.days_of_week
        assert spec is not None
        return sorted(spec.matching(year, month))

    def next_wall(self, start: datetime) -> datetime | None:
        """The first wall-clock minute at or after `start` (naive) that the fields name."""
        for year in self.years:
            if year < start.year:
                continue
            same_year = year == start.year
            for month in self.months:
                if same_year and month < start.month:
                    continue
                same_month = same_year and month == start.month
                for day in self.days(year, month):
                    if same_month and day < start.day:
                        continue
                    same_day = same_month and day == start.day
                    for hour in self.hours:
                        if same_day and hour < start.hour:
                            continue
                        same_hour = same_day and hour == start.hour
                        for minute in self.minutes:
                            if not same_hour or minute >= start.minute:
                                return datetime(year, month, day, hour, minute)
        return None

    def at_or_after(self, t: float, tz: tzinfo, anchor: float) -> float | None:
        local = datetime.fromtimestamp(t, tz).replace(tzinfo=None)
        cursor = local.replace(second=0, microsecond=0)
        if cursor < local:
            cursor += timedelta(minutes=1)
        while (wall := self.next_wall(cursor)) is not None:
            when = wall.replace(tzinfo=tz, fold=0).timestamp()  # twice that day: the first one
            exists = datetime.fromtimestamp(when, tz).replace(tzinfo=None) == wall  # not in a gap
            if exists and when >= t:
                return when
            cursor = wall + timedelta(minutes=1)
        return None


def parse(expression: str) -> Expression:
    """Parse an `at(...)`, `rate(...)` or `cron(...)` expression, or raise InvalidExpression."""
    if (match := AT.fullmatch(expression)) is not None:
        try:
            wall = datetime(*(int(part) for part in match.groups()))  # type: ignore[misc]
        except ValueError:
            raise invalid(expression) from None
        return At(expression, wall)
    if (match := RATE.fullmatch(expression)) is not None:
        value, unit = int(match.group(1)), match.group(2)
        if value < 1 or unit not in RATE_UNITS:
            raise invalid(expression)
        return Rate(expression, value * RATE_UNITS[unit])
    if (match := CRON.fullmatch(expression)) is not None:
        return _parse_cron(expression, match.group(1))
    raise invalid(expression)


def _parse_cron(expression: str, body: str) -> Cron:
    fields = body.split(" ")
    if len(fields) != 6:
        raise invalid(expression)
    minutes, hours, dom, months, dow, years = fields
    if (dom == "?") == (dow == "?"):  # one day field names the days, the other is `?`
        raise invalid(expression)
    try:
        return Cron(
            expression,
            minutes=_values(minutes, 0, 59),
            hours=_values(hours, 0, 23),
            days_of_month=None if dom == "?" else _days_of_month(dom),
            days_of_week=None if dow == "?" else _days_of_week(dow),
            months=_values(months, 1, 12, MONTHS),
            years=_values(years, *YEARS),
        )
    except ValueError:
        raise invalid(expression) from None


def _number(text: str, low: int, high: int, names: dict[str, int] | None = None) -> int:
    if names is not None and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(text)
    value = int(text)
    if not low <= value <= high:
        raise ValueError(text)
    return value


def _item(item: str, low: int, high: int, names: dict[str, int] | None = None, steps: bool = True) -> set[int]:
    """One comma-separated item: `*`, `n`, `a-b` (wrapping past the end when a > b), with `/step`."""
    base, slash, step_text = item.partition("/")
    if slash and not steps:
        raise ValueError(item)
    step = _number(step_text, 1, high - low + 1) if slash else 1
    if base == "*":
        first, last = low, high
    elif "-" in base:
        start, end = base.split("-", 1)
        first, last = _number(start, low, high, names), _number(end, low, high, names)
    else:
        first = _number(base, low, high, names)
        last = high if slash else first  # `a/n`: from a to the end of the range, every n
    span = (last - first) % (high - low + 1) + 1  # a wrapping range (FRI-MON) goes round the end
    return {low + (first - low + offset) % (high - low + 1) for offset in range(0, span, step)}


def _values(field: str, low: int, high: int, names: dict[str, int] | None = None) -> tuple[int, ...]:
    values: set[int] = set()
    for item in field.split(","):
        values |= _item(item, low, high, names)
    return tuple(sorted(values))


def _days_of_month(field: str) -> DaysOfMonth:
    days: set[int] = set()
    last = last_weekday = False
    nearest: set[int] = set()
    for item in field.split(","):
        if item == "L":
            last = True
        elif item == "LW":
            last_weekday = True
        elif item.endswith("W"):
            nearest.add(_number(item[:-1], 1, 31))
        else:
            days |= _item(item, 1, 31)
    return DaysOfMonth(frozenset(days), last, last_weekday, frozenset(nearest))


def _days_of_week(field: str) -> DaysOfWeek:
    if "#" in field:  # `n#k` stands alone: "3#1,6#3" is two expressions, which AWS refuses
        weekday, _, nth = field.partition("#")
        return DaysOfWeek(frozenset(), nth=(_number(weekday, 1, 7, WEEKDAYS), _number(nth, 1, 5)))
    weekdays: set[int] = set()
    last_of: set[int] = set()
    for item in field.split(","):
        if item == "L":
            weekdays.add(7)  # the last day of the week: Saturday
        elif item.endswith("L"):
            last_of.add(_number(item[:-1], 1, 7, WEEKDAYS))
        else:
            weekdays |= _item(item, 1, 7, WEEKDAYS, steps=False)
    return DaysOfWeek(frozenset(weekdays), frozenset(last_of))


def time_zone(name: str | None) -> tzinfo:
    """The schedule's time zone (UTC when none is given), or InvalidExpression."""
    if name is None or name == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidExpression(f"Invalid ScheduleExpressionTimezone {name}.") from None


@dataclass(frozen=True)
class Timing:
    """An expression with everything that decides its times: the time zone, StartDate and EndDate
    (recurring schedules only: AWS ignores both for `at()`), and the rate's anchor. Times it gives
    are *scheduled* times; `fire_time` adds the flexible window."""

    expression: Expression
    tz: tzinfo
    start: float | None = None
    end: float | None = None
    anchor: float = 0.0

    @classmethod
    def of(cls, expression: str, tz_name: str | None, start: float | None, end: float | None,
           created: float) -> "Timing":
        """`created`: when the schedule was created or last updated (a rate without StartDate
        counts from then, in whole seconds)."""
        parsed = parse(expression)
        anchor = start if start is not None else float(math.floor(created))
        return cls(parsed, time_zone(tz_name), start, end, anchor)

    def first(self, now: float) -> float | None:
        """The first scheduled time at or after `now`, None when the schedule is over."""
        lower = now if self.expression.one_time or self.start is None else max(now, self.start)
        return self._bounded(self.expression.at_or_after(lower, self.tz, self.anchor))

    def after(self, t: float) -> float | None:
        """The first scheduled time after `t` (every scheduled time is a whole second)."""
        return self.first(math.floor(t) + 1)

    def catch_up(self, due: float, now: float) -> tuple[float, int]:
        """`due` is a scheduled time that has passed: the latest scheduled time at or before `now`
        (from `due` on), and how many earlier ones it skips. After downtime AWS delivers late, but
        a recurring schedule does not run once for every time it missed: only the latest runs."""
        if isinstance(self.expression, Rate):
            latest = max(due, self.expression.last_at_or_before(now, self.anchor))
            if self.end is not None:
                latest = max(due, min(latest, self.expression.last_at_or_before(self.end, self.anchor)))
            return latest, round((latest - due) / self.expression.seconds)
        latest, skipped = due, 0
        while skipped < CATCH_UP_LIMIT and (later := self.after(latest)) is not None and later <= now:
            latest, skipped = later, skipped + 1
        return latest, skipped

    def _bounded(self, when: float | None) -> float | None:
        if when is None or (not self.expression.one_time and self.end is not None and when > self.end):
            return None
        return when


def fire_time(scheduled: float, window_minutes: int | None, draw: Callable[[], float]) -> float:
    """When to fire a scheduled time: at once (window OFF), or at a uniformly random point of the
    FLEXIBLE window that opens then. `draw` returns a float in [0, 1) (random.random)."""
    if not window_minutes:
        return scheduled
    return scheduled + draw() * window_minutes * 60
