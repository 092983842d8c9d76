from loopline.ingest.availability import DataStatus
from loopline.sources.kafka_offsets import unread


def test_unread_counts_from_where_ingestion_stopped_or_from_the_log_start():
    end = {"0": 120, "1": 50, "2": 10}
    consumed_until = {"0": 100, "1": 50}  # partition 2 never ingested; its log starts at 4
    assert unread(end, consumed_until, beginning={"0": 0, "1": 0, "2": 4}) == 20 + 0 + 6


def test_unread_is_never_negative():
    assert unread({"0": 5}, {"0": 9}, beginning={"0": 0}) == 0


def test_a_date_is_ready_with_enough_unread_records_or_when_already_ingested():
    def status(unread_records, already, need=100):
        return DataStatus("2026-11-20", {"events": unread_records, "labels": 0}, already, need)

    assert status(100, 0).ready and not status(99, 0).ready
    assert status(0, 3000).ready  # a backfill: an earlier run ingested the date already
    assert "events: 99" in status(99, 0).describe() and "need 100" in status(99, 0).describe()
