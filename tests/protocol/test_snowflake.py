"""Snowflake ids: strictly increasing whatever the clock does, time-decodable, and
parsed strictly from the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus_protocol.snowflake import (
    EPOCH_MS,
    MAX_SNOWFLAKE,
    MAX_WORKER,
    SnowflakeGenerator,
    parse_snowflake,
    snowflake_at,
    snowflake_time,
)

NOW_MS = 1_750_000_000_000  # mid-2025
TIME_SHIFT = 22  # 10 worker bits + 12 sequence bits


class FakeClock:
    def __init__(self, readings: list[int]) -> None:
        self.readings = list(readings)
        self.last = self.readings[0]

    def __call__(self) -> int:
        if self.readings:
            self.last = self.readings.pop(0)
        return self.last


def strictly_increasing(ids: list[int]) -> bool:
    return all(a < b for a, b in pairwise(ids))


def millis(snowflake: int) -> int:
    return (snowflake >> TIME_SHIFT) + EPOCH_MS


def test_five_thousand_ids_in_one_millisecond_stay_unique_and_increasing() -> None:
    generator = SnowflakeGenerator(worker_id=7, clock_ms=lambda: NOW_MS)
    ids = [generator.next_id() for _ in range(5000)]
    assert strictly_increasing(ids)
    assert len(set(ids)) == 5000
    # The 4097th id borrowed the next millisecond rather than repeating a sequence.
    assert {millis(i) for i in ids} == {NOW_MS, NOW_MS + 1}
    assert all((i >> 12) & MAX_WORKER == 7 for i in ids)
    # Once the real clock catches up past the borrowed millisecond, time is used again.
    generator = SnowflakeGenerator(clock_ms=FakeClock([NOW_MS] * 4097 + [NOW_MS + 5]))
    ids = [generator.next_id() for _ in range(4098)]
    assert millis(ids[-2]) == NOW_MS + 1
    assert millis(ids[-1]) == NOW_MS + 5
    assert ids[-1] & 0xFFF == 0


def test_clock_stepping_back_never_makes_an_id_go_backwards() -> None:
    readings = [NOW_MS, NOW_MS + 10, NOW_MS - 60_000, NOW_MS - 60_000, NOW_MS + 5, NOW_MS + 11]
    generator = SnowflakeGenerator(clock_ms=FakeClock(readings))
    ids = [generator.next_id() for _ in readings]
    assert strictly_increasing(ids)
    assert millis(ids[-1]) == NOW_MS + 11


@given(
    steps=st.lists(st.integers(min_value=-10_000, max_value=10_000), min_size=1, max_size=300),
    repeats=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=300),
    worker=st.integers(min_value=0, max_value=MAX_WORKER),
)
def test_ids_strictly_increase_whatever_the_clock_does(
    steps: list[int], repeats: list[int], worker: int
) -> None:
    readings: list[int] = []
    now = NOW_MS
    for step, repeat in zip(steps, repeats * (len(steps) // len(repeats) + 1), strict=False):
        now += step
        readings.extend([now] * repeat)
    generator = SnowflakeGenerator(worker_id=worker, clock_ms=FakeClock(readings))
    ids = [generator.next_id() for _ in readings]
    assert strictly_increasing(ids)
    for snowflake in ids:
        assert 0 < snowflake <= MAX_SNOWFLAKE
        assert (snowflake >> 12) & MAX_WORKER == worker
    # An id is never older than the clock reading it was made at.
    assert all(millis(i) >= r for i, r in zip(ids, readings, strict=True))


def test_worker_id_is_checked() -> None:
    for bad in (-1, MAX_WORKER + 1):
        with pytest.raises(ValueError):
            SnowflakeGenerator(worker_id=bad)
    SnowflakeGenerator(worker_id=MAX_WORKER)


def test_the_real_clock_makes_current_ids() -> None:
    generator = SnowflakeGenerator()
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [generator.next_id() for _ in range(1000)]
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert strictly_increasing(ids)
    assert before <= snowflake_time(ids[0]) <= snowflake_time(ids[-1]) <= after


@given(
    ms=st.integers(min_value=EPOCH_MS, max_value=EPOCH_MS + (1 << 41)),
    low=st.integers(min_value=0, max_value=(1 << TIME_SHIFT) - 1),
)
def test_snowflake_time_round_trips(ms: int, low: int) -> None:
    snowflake = ((ms - EPOCH_MS) << TIME_SHIFT) | low
    moment = snowflake_time(snowflake)
    assert moment.tzinfo is not None
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert moment == expected
    # The lowest id of that moment is this id with worker and sequence cleared.
    assert snowflake_at(moment) == snowflake >> TIME_SHIFT << TIME_SHIFT
    assert snowflake_at(moment) <= snowflake


def test_snowflake_time_matches_discord() -> None:
    # Discord's documented example: 175928847299117063 is 2016-04-30 11:18:25.796 UTC.
    assert snowflake_time(175928847299117063) == datetime(
        2016, 4, 30, 11, 18, 25, 796000, tzinfo=UTC
    )
    assert snowflake_at(datetime(2000, 1, 1, tzinfo=UTC)) == 0


@given(st.integers(min_value=0, max_value=MAX_SNOWFLAKE))
def test_parse_snowflake_accepts_strings_and_ints(value: int) -> None:
    assert parse_snowflake(value) == value
    assert parse_snowflake(str(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        -1,
        "-1",
        MAX_SNOWFLAKE + 1,
        str(MAX_SNOWFLAKE + 1),
        2**64,
        "9" * 20,
        "1" * 21,
        "0" * 21,
        "0" * 25 + "1",
        "",
        " 1",
        "1 ",
        "+1",
        "1_000",
        "0x10",
        "1e3",
        "1.0",
        "abc",
        "١٢٣",  # Arabic-Indic digits: isdigit() but not ASCII
        "²",
        1.0,
        None,
        b"1",
        [1],
    ],
)
def test_parse_snowflake_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_snowflake(value)


@given(st.text(max_size=30))
def test_parse_snowflake_accepts_only_short_ascii_digit_strings(text: str) -> None:
    ok = text.isascii() and text.isdigit() and len(text) <= 20 and int(text) <= MAX_SNOWFLAKE
    if ok:
        assert parse_snowflake(text) == int(text)
    else:
        with pytest.raises(ValueError):
            parse_snowflake(text)
