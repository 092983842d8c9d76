from datetime import date

import pytest

from loopline.core.storage import Lake, PlacementError, Placement, StorageError, Tier, load_tiers

TIERS = {"onprem": Tier("onprem", "file:///data/lake", "onprem"),
         "cloud": Tier("cloud", "s3://bucket/lake", "cloud", s3_endpoint="http://127.0.0.1:9000"),
         "archive": Tier("archive", "hdfs://namenode:8020/archive", "cloud")}
PLACEMENT = {"bronze": Placement("onprem", onprem_only=True), "predictions": Placement("cloud"),
             "quarantine": Placement("onprem")}


def test_same_dataset_code_resolves_to_either_tier():
    lake = Lake("p", PLACEMENT, TIERS)
    assert lake.location("bronze", date(2026, 1, 2)).spark_uri == "file:///data/lake/p/bronze/date=2026-01-02"
    assert lake.location("predictions", date(2026, 1, 2)).spark_uri == "s3a://bucket/lake/p/predictions/date=2026-01-02"
    assert lake.location("predictions").arrow_path == "bucket/lake/p/predictions"
    assert lake.location("predictions", tier="archive").spark_uri == "hdfs://namenode:8020/archive/p/predictions"


def test_subdir_keeps_sources_apart():
    lake = Lake("p", PLACEMENT, TIERS)
    assert lake.location("quarantine", date(2026, 1, 2), subdir="bronze_events").arrow_path == \
        "/data/lake/p/quarantine/bronze_events/date=2026-01-02"


def test_unplaced_dataset_and_unknown_tier_are_errors():
    with pytest.raises(StorageError, match="no storage placement"):
        Lake("p", {}, TIERS).location("bronze")
    with pytest.raises(StorageError, match="unknown storage tiers"):
        Lake("p", {"bronze": Placement("tape")}, TIERS)


def test_onprem_only_data_never_gets_a_cloud_location():
    lake = Lake("p", PLACEMENT, TIERS)
    for tier in ("cloud", "archive"):
        with pytest.raises(PlacementError, match="onprem_only"):
            lake.location("bronze", date(2026, 1, 2), tier=tier)
    with pytest.raises(PlacementError, match="bronze"):
        Lake("p", {"bronze": Placement("cloud", onprem_only=True)}, TIERS)


def test_tiers_come_from_the_config_file_with_environment_values(tmp_path, monkeypatch):
    config = tmp_path / "storage.yaml"
    config.write_text("tiers:\n  disk: {uri: 'file://${LAKE}', residency: onprem}\n"
                      "  other_s3: {uri: 's3://b2/x', endpoint: '${EP}', residency: cloud}\n")
    monkeypatch.setenv("LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("EP", "http://127.0.0.1:1")
    tiers = load_tiers(config)
    assert tiers["disk"].spark_uri("a") == f"file://{tmp_path}/lake/a"
    assert tiers["other_s3"].s3_endpoint == "http://127.0.0.1:1" and tiers["other_s3"].root == "b2/x"
    monkeypatch.delenv("EP")
    with pytest.raises(StorageError, match="EP"):
        load_tiers(config)
