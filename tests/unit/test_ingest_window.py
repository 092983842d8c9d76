from datetime import date

from loopline.sources.kafka_offsets import day_window

D, NEXT = date(2026, 11, 1), date(2026, 11, 2)


def test_window_spans_first_offset_of_day_to_first_offset_of_next_day():
    lookups = {D: {0: 10, 1: 4}, NEXT: {0: 25, 1: 9}}
    assert day_window(lookups, D, latest={0: 40, 1: 12}) == {0: (10, 25), 1: (4, 9)}


def test_open_day_runs_to_the_latest_offset():
    assert day_window({D: {0: 10}, NEXT: {0: None}}, D, latest={0: 40}) == {0: (10, 40)}


def test_day_with_no_records_yet_is_empty_at_the_end_of_the_log():
    assert day_window({D: {0: None}, NEXT: {0: None}}, D, latest={0: 40}) == {0: (40, 40)}
