from datetime import date

import pytest

from loopline.storage import Lake, StorageError, Tier

TIERS = {"onprem": Tier("onprem", "file", "/data/lake"),
         "cloud": Tier("cloud", "s3", "bucket/lake", s3_endpoint="http://127.0.0.1:9000")}


def test_same_dataset_code_resolves_to_either_tier():
    lake = Lake("p", {"bronze": "onprem", "predictions": "cloud"}, TIERS)
    assert lake.location("bronze", date(2026, 1, 2)).spark_uri == "file:///data/lake/p/bronze/date=2026-01-02"
    assert lake.location("predictions", date(2026, 1, 2)).spark_uri == "s3a://bucket/lake/p/predictions/date=2026-01-02"
    assert lake.location("predictions").arrow_path == "bucket/lake/p/predictions"


def test_subdir_keeps_sources_apart():
    lake = Lake("p", {"quarantine": "onprem"}, TIERS)
    assert lake.location("quarantine", date(2026, 1, 2), subdir="bronze_events").arrow_path == \
        "/data/lake/p/quarantine/bronze_events/date=2026-01-02"


def test_unplaced_dataset_and_unknown_tier_are_errors():
    with pytest.raises(StorageError, match="no storage placement"):
        Lake("p", {}, TIERS).location("bronze")
    with pytest.raises(StorageError, match="unknown storage tiers"):
        Lake("p", {"bronze": "tape"}, TIERS)
