"""`job_stats` windows and buckets (API.md §4.3), as a pure function of the time zone and now."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest

from app.services.pipelines.stats import rollup_bounds, stats_window

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_one_day_is_24_hourly_buckets_ending_with_the_current_hour() -> None:
    now = datetime(2026, 11, 26, 14, 37, 5, tzinfo=UTC)
    w = stats_window(1, UTC, now)
    assert w.hourly
    assert len(w.keys) == 24
    assert w.keys[-1] == "2026-11-26T14:00:00+00:00"
    assert w.keys[0] == "2026-11-25T15:00:00+00:00" == w.cutoff_time
    assert w.start == datetime(2026, 11, 25, 15, tzinfo=UTC)
    assert w.end == datetime(2026, 11, 26, 15, tzinfo=UTC)


def test_hourly_keys_carry_the_environments_offset() -> None:
    now = datetime(2026, 11, 26, 14, 37, tzinfo=UTC)  # 15:37 in Berlin (+01:00)
    w = stats_window(1, BERLIN, now)
    assert w.keys[-1] == "2026-11-26T15:00:00+01:00"


@pytest.mark.parametrize("days", [7, 30])
def test_daily_buckets_end_with_today_in_the_environments_zone(days: int) -> None:
    # 23:30 UTC on the 26th is already the 27th in Berlin.
    now = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
    w = stats_window(days, BERLIN, now)
    assert not w.hourly
    assert len(w.keys) == days
    assert w.keys[-1] == "2026-11-27"
    first = datetime(2026, 11, 27, tzinfo=BERLIN) - timedelta(days=days - 1)
    assert w.keys[0] == first.date().isoformat()
    assert w.cutoff_time == f"{first.date().isoformat()}T00:00:00+01:00"
    assert w.end == datetime(2026, 11, 28, tzinfo=BERLIN)


def test_a_week_across_the_dst_change_still_has_seven_days() -> None:
    # Berlin leaves summer time on 2026-10-25: that day has 25 hours.
    now = datetime(2026, 10, 28, 12, tzinfo=UTC)
    w = stats_window(7, BERLIN, now)
    assert w.keys == [f"2026-10-{d:02d}" for d in range(22, 29)]
    assert w.start.utcoffset() == timedelta(hours=2)
    # Same-zone datetimes subtract as wall clocks; the real span is one hour longer.
    assert w.end.astimezone(UTC) - w.start.astimezone(UTC) == timedelta(days=7, hours=1)


def test_rollup_bounds_are_the_aligned_interior() -> None:
    start = datetime(2026, 11, 26, 10, 7, tzinfo=UTC)
    end = datetime(2026, 11, 26, 11, 52, tzinfo=UTC)
    inner = rollup_bounds(start, end, step=900)
    assert inner == (
        datetime(2026, 11, 26, 10, 15, tzinfo=UTC),
        datetime(2026, 11, 26, 11, 45, tzinfo=UTC),
    )
    assert rollup_bounds(start, start + timedelta(minutes=3), step=900) == (
        start + timedelta(minutes=3),
        start + timedelta(minutes=3),
    )
