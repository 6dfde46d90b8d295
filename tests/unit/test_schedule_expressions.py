"""Schedule expressions: AWS's syntax and wording, and the times each names (no clock, no I/O)."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from lambdalet.schedules.expressions import InvalidExpression, Timing, fire_time, parse, time_zone

UTC = timezone.utc


def ts(text: str, tz: str = "UTC") -> float:
    """POSIX seconds of a wall-clock time in a zone."""
    zone = UTC if tz == "UTC" else ZoneInfo(tz)
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def iso(t: float | None, tz: str = "UTC") -> str | None:
    if t is None:
        return None
    zone = UTC if tz == "UTC" else ZoneInfo(tz)
    return datetime.fromtimestamp(t, zone).strftime("%Y-%m-%dT%H:%M:%S")


def times(expression: str, since: str, count: int, tz: str = "UTC", **kwargs) -> list[str | None]:
    """The first `count` scheduled times at or after `since` (wall clock in `tz`)."""
    timing = Timing.of(expression, None if tz == "UTC" else tz, kwargs.get("start"), kwargs.get("end"),
                       kwargs.get("created", ts(since, tz)))
    found: list[str | None] = []
    t = timing.first(ts(since, tz))
    while len(found) < count:
        found.append(iso(t, tz))
        if t is None:
            break
        t = timing.after(t)
    return found


# -- parsing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("expression", [
    "", "at()", "at(2025-13-01T00:00:00)", "at(2025-02-30T00:00:00)", "at(2025-01-01 00:00:00)",
    "at(2025-01-01T24:00:00)", "rate(0 minutes)", "rate(5 weeks)", "rate(-1 minutes)", "rate(5  minutes)",
    "rate(five minutes)", "cron(0 12 * * ? )", "cron(0 12 * * ?)", "cron(0 12 * * * *)", "cron(0 12 ? * ? *)",
    "cron(60 12 * * ? *)", "cron(0 24 * * ? *)", "cron(0 12 32 * ? *)", "cron(0 12 * 13 ? *)",
    "cron(0 12 ? * 8 *)", "cron(0 12 * * ? 2200)", "cron(0 12 * * ? 1969)", "cron(0 12 ? * 3#6 *)",
    "cron(0 12 ? * 3#1,6#3 *)", "cron(0 12 ? * 1/2 *)", "cron(0/0 12 * * ? *)", "cron(0 12 * FOO ? *)",
    "cron(0 12 L * ? *)x", "CRON(0 12 * * ? *)", "every 5 minutes",
])
def test_invalid_expressions_get_aws_wording(expression):
    with pytest.raises(InvalidExpression) as info:
        parse(expression)
    assert str(info.value) == f"Invalid Schedule Expression {expression}."


@pytest.mark.parametrize("expression", [
    "at(2030-02-28T23:59:59)", "rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(2 days)",
    "cron(0 12 * * ? *)", "cron(0/15 * ? * MON-FRI *)", "cron(0 8 L * ? *)", "cron(0 8 15W * ? *)",
    "cron(0 8 LW * ? *)", "cron(0 8 ? * 6L *)", "cron(0 8 ? * 2#1 *)", "cron(0 8 ? * L *)",
    "cron(0 8 1,15 JAN,jul ? 2030-2035)", "cron(5-55/10 1-23/2 * * ? */2)",
])
def test_valid_expressions_parse(expression):
    assert parse(expression).text == expression


def test_unknown_time_zone():
    with pytest.raises(InvalidExpression, match="Invalid ScheduleExpressionTimezone Mars/Olympus"):
        time_zone("Mars/Olympus")
    assert time_zone(None) is UTC and time_zone("Europe/Paris") == ZoneInfo("Europe/Paris")


# -- at() -----------------------------------------------------------------------------------------

def test_at_fires_once_in_its_time_zone():
    timing = Timing.of("at(2030-06-01T09:30:00)", "Europe/Paris", None, None, ts("2030-01-01T00:00:00"))
    first = timing.first(ts("2030-01-01T00:00:00"))
    assert iso(first) == "2030-06-01T07:30:00"  # CEST is UTC+2
    assert timing.after(first) is None


def test_at_in_the_past_never_fires():
    assert Timing.of("at(2020-01-01T00:00:00)", None, None, None, ts("2021-01-01T00:00:00")).first(
        ts("2021-01-01T00:00:00")) is None


def test_at_ignores_start_and_end_dates():
    timing = Timing.of("at(2030-06-01T00:00:00)", None, ts("2031-01-01T00:00:00"), ts("2030-01-02T00:00:00"),
                       ts("2030-01-01T00:00:00"))
    assert iso(timing.first(ts("2030-01-01T00:00:00"))) == "2030-06-01T00:00:00"


# -- rate() ---------------------------------------------------------------------------------------

def test_rate_without_start_date_fires_at_once_then_every_period():
    assert times("rate(5 minutes)", "2030-01-01T10:00:07", 3) == [
        "2030-01-01T10:00:07", "2030-01-01T10:05:07", "2030-01-01T10:10:07"]


def test_rate_counts_from_start_date():
    start = ts("2030-01-01T00:00:00")
    assert times("rate(2 hours)", "2030-01-01T03:10:00", 2, start=start) == [
        "2030-01-01T04:00:00", "2030-01-01T06:00:00"]
    assert times("rate(2 hours)", "2029-12-31T00:00:00", 1, start=start) == ["2030-01-01T00:00:00"]


def test_rate_ends_at_end_date():
    assert times("rate(1 day)", "2030-01-01T00:00:00", 4, end=ts("2030-01-02T12:00:00")) == [
        "2030-01-01T00:00:00", "2030-01-02T00:00:00", None]


def test_rate_of_days_is_24_hours_across_dst():
    # Paris springs forward on 2030-03-31: a day is 24 hours of elapsed time, so 13:00 on the clock
    assert times("rate(1 day)", "2030-03-30T12:00:00", 2, tz="Europe/Paris") == [
        "2030-03-30T12:00:00", "2030-03-31T13:00:00"]


# -- cron() ---------------------------------------------------------------------------------------

def test_cron_daily_and_steps():
    assert times("cron(0 12 * * ? *)", "2030-01-01T12:00:00", 2) == ["2030-01-01T12:00:00", "2030-01-02T12:00:00"]
    assert times("cron(0/20 9 * * ? *)", "2030-01-01T09:01:00", 3) == [
        "2030-01-01T09:20:00", "2030-01-01T09:40:00", "2030-01-02T09:00:00"]
    assert times("cron(1/10 * * * ? *)", "2030-01-01T00:00:30", 3) == [
        "2030-01-01T00:01:00", "2030-01-01T00:11:00", "2030-01-01T00:21:00"]


def test_cron_weekday_names_and_ranges():
    # 2030-01-04 is a Friday
    assert times("cron(0 18 ? * MON-FRI *)", "2030-01-04T19:00:00", 2) == [
        "2030-01-07T18:00:00", "2030-01-08T18:00:00"]
    assert times("cron(0 0 ? * FRI-MON *)", "2030-01-04T00:00:00", 5) == [  # wraps round Saturday
        "2030-01-04T00:00:00", "2030-01-05T00:00:00", "2030-01-06T00:00:00", "2030-01-07T00:00:00",
        "2030-01-11T00:00:00"]
    assert times("cron(0 0 ? * 1 *)", "2030-01-01T00:00:00", 1) == ["2030-01-06T00:00:00"]  # 1 = Sunday


def test_cron_last_day_and_last_weekday_of_month():
    assert times("cron(0 8 L * ? *)", "2030-01-01T00:00:00", 3) == [
        "2030-01-31T08:00:00", "2030-02-28T08:00:00", "2030-03-31T08:00:00"]
    assert times("cron(0 8 L 2 ? 2032)", "2030-01-01T00:00:00", 1) == ["2032-02-29T08:00:00"]  # leap year
    # 2030-03-31 is a Sunday, 2030-08-31 a Saturday: the last weekday is the Friday before
    assert times("cron(0 8 LW 3,8 ? 2030)", "2030-01-01T00:00:00", 2) == [
        "2030-03-29T08:00:00", "2030-08-30T08:00:00"]


def test_cron_nearest_weekday_never_leaves_the_month():
    # 2030-06-01 is a Saturday: 1W is Monday the 3rd; 2030-06-15 a Saturday: 15W is Friday the 14th;
    # 2030-06-16 a Sunday: 16W is Monday the 17th; 2030-03-31 a Sunday: 31W is Friday the 29th.
    assert times("cron(0 8 1W 6 ? 2030)", "2030-01-01T00:00:00", 1) == ["2030-06-03T08:00:00"]
    assert times("cron(0 8 15W 6 ? 2030)", "2030-01-01T00:00:00", 1) == ["2030-06-14T08:00:00"]
    assert times("cron(0 8 16W 6 ? 2030)", "2030-01-01T00:00:00", 1) == ["2030-06-17T08:00:00"]
    assert times("cron(0 8 31W 3 ? 2030)", "2030-01-01T00:00:00", 1) == ["2030-03-29T08:00:00"]


def test_cron_nth_and_last_weekday():
    # the second Tuesday (3#2) and the last Friday (6L) of each month
    assert times("cron(0 10 ? * 3#2 *)", "2030-01-01T00:00:00", 2) == ["2030-01-08T10:00:00", "2030-02-12T10:00:00"]
    assert times("cron(0 10 ? * 6L *)", "2030-01-01T00:00:00", 2) == ["2030-01-25T10:00:00", "2030-02-22T10:00:00"]
    assert times("cron(0 10 ? * L *)", "2030-01-01T00:00:00", 1) == ["2030-01-05T10:00:00"]  # L: Saturday
    assert times("cron(0 10 ? * 2#5 2030)", "2030-01-01T00:00:00", 2) == [  # months with five Mondays
        "2030-04-29T10:00:00", "2030-07-29T10:00:00"]


def test_cron_year_field_ends_the_schedule():
    assert times("cron(0 0 1 JAN ? 2030-2031)", "2029-06-01T00:00:00", 3) == [
        "2030-01-01T00:00:00", "2031-01-01T00:00:00", None]
    assert times("cron(0 0 29 2 ? *)", "2030-03-01T00:00:00", 1) == ["2032-02-29T00:00:00"]


def test_cron_in_a_time_zone():
    assert times("cron(0 9 * * ? *)", "2030-07-01T00:00:00", 1, tz="America/New_York") == ["2030-07-01T09:00:00"]
    timing = Timing.of("cron(0 9 * * ? *)", "America/New_York", None, None, 0)
    assert iso(timing.first(ts("2030-07-01T00:00:00"))) == "2030-07-01T13:00:00"  # EDT is UTC-4


def test_cron_skips_a_time_the_clock_springs_over():
    # New York springs forward at 02:00 on 2030-03-10: 02:30 does not exist that day
    assert times("cron(30 2 * * ? *)", "2030-03-09T00:00:00", 3, tz="America/New_York") == [
        "2030-03-09T02:30:00", "2030-03-11T02:30:00", "2030-03-12T02:30:00"]


def test_cron_runs_once_when_the_clock_falls_back():
    # New York falls back at 02:00 on 2030-11-03: 01:00-01:59 happens twice, and fires once
    found = times("cron(30 1 * * ? *)", "2030-11-02T12:00:00", 2, tz="America/New_York")
    assert found == ["2030-11-03T01:30:00", "2030-11-04T01:30:00"]
    timing = Timing.of("cron(0/30 * * * ? *)", "America/New_York", None, None, 0)
    first = timing.first(ts("2030-11-03T05:00:00"))  # 01:00 EDT
    got = [first]
    while len(got) < 5:
        got.append(timing.after(got[-1]))
    assert [iso(t) for t in got] == [  # UTC: 01:00 and 01:30 EDT, then 02:00 EST (07:00 UTC)
        "2030-11-03T05:00:00", "2030-11-03T05:30:00", "2030-11-03T07:00:00", "2030-11-03T07:30:00",
        "2030-11-03T08:00:00"]


def test_cron_from_within_the_repeated_hour_waits_for_the_next_day():
    timing = Timing.of("cron(45 1 * * ? *)", "America/New_York", None, None, 0)
    during_second_pass = ts("2030-11-03T06:50:00")  # 01:50 EST, after the 01:45 EDT firing
    assert iso(timing.first(during_second_pass), "America/New_York") == "2030-11-04T01:45:00"


def test_cron_start_and_end_dates():
    assert times("cron(0 * * * ? *)", "2030-01-01T00:00:00", 4, start=ts("2030-01-01T05:30:00"),
                 end=ts("2030-01-01T07:00:00")) == ["2030-01-01T06:00:00", "2030-01-01T07:00:00", None]


# -- catching up after downtime -------------------------------------------------------------------

def test_catch_up_runs_only_the_latest_missed_time():
    timing = Timing.of("rate(1 minute)", None, None, None, ts("2030-01-01T00:00:00"))
    latest, skipped = timing.catch_up(ts("2030-01-01T00:00:00"), ts("2030-01-01T01:00:30"))
    assert (iso(latest), skipped) == ("2030-01-01T01:00:00", 60)
    cron = Timing.of("cron(0/10 * * * ? *)", None, None, None, 0)
    latest, skipped = cron.catch_up(ts("2030-01-01T00:00:00"), ts("2030-01-01T00:35:00"))
    assert (iso(latest), skipped) == ("2030-01-01T00:30:00", 3)
    assert cron.catch_up(ts("2030-01-01T00:00:00"), ts("2030-01-01T00:05:00")) == (ts("2030-01-01T00:00:00"), 0)


def test_catch_up_stops_at_the_end_date():
    timing = Timing.of("rate(1 hour)", None, None, ts("2030-01-01T02:30:00"), ts("2030-01-01T00:00:00"))
    latest, skipped = timing.catch_up(ts("2030-01-01T00:00:00"), ts("2030-01-02T00:00:00"))
    assert (iso(latest), skipped) == ("2030-01-01T02:00:00", 2)


# -- flexible time window -------------------------------------------------------------------------

def test_flexible_window_draws_a_point_within_it():
    scheduled = ts("2030-01-01T00:00:00")
    assert fire_time(scheduled, None, lambda: 0.99) == scheduled  # OFF
    assert fire_time(scheduled, 15, lambda: 0.0) == scheduled
    assert fire_time(scheduled, 15, lambda: 0.5) == scheduled + 450
    assert scheduled <= fire_time(scheduled, 15, lambda: 0.999999) < scheduled + 900
