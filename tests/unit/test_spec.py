from pathlib import Path

import pytest
import yaml

from loopline.spec import PIPELINES_DIR, SpecError, load_spec


def test_card_fraud_spec_lists_main_and_dead_letter_topics():
    spec = load_spec("card_fraud")
    assert spec.sources["events"].topic == "card_payments"
    assert "card_payments.dlq" in spec.topics and "card_payments.feedback.dlq" in spec.topics
    assert spec.predictions_topic in spec.topics
    assert spec.features.columns[:2] == ["amount", "hour"]


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load((PIPELINES_DIR / "card_fraud.yaml").read_text())
    mutate(raw)
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def test_unknown_field_type_is_named(tmp_path):
    directory = _write(tmp_path, lambda raw: raw["schemas"]["transaction_v1"]["fields"].update(amount="money"))
    with pytest.raises(SpecError, match="amount: money"):
        load_spec("broken", directory)


def test_missing_storage_placement_is_named(tmp_path):
    directory = _write(tmp_path, lambda raw: raw["storage"].pop("predictions"))
    with pytest.raises(SpecError, match="predictions"):
        load_spec("broken", directory)


def test_unknown_pipeline_lists_known_ones():
    with pytest.raises(SpecError, match="card_fraud"):
        load_spec("no_such_pipeline")


def test_spec_placing_onprem_only_data_in_the_cloud_is_a_policy_error(tmp_path, monkeypatch):
    from loopline.storage import Lake, PlacementError, Tier

    directory = _write(tmp_path, lambda raw: raw["storage"].update(bronze_events={"tier": "cloud", "onprem_only": True}))
    spec = load_spec("broken", directory)
    tiers = {"onprem": Tier("onprem", "file:///l", "onprem"), "cloud": Tier("cloud", "s3://b/l", "cloud")}
    with pytest.raises(PlacementError, match="bronze_events"):
        Lake(spec.name, spec.storage, tiers)


def test_source_of_unknown_kind_or_missing_settings_is_named(tmp_path):
    directory = _write(tmp_path, lambda raw: raw["sources"]["events"].update(kind="ftp"))
    with pytest.raises(SpecError, match="ftp"):
        load_spec("broken", directory)
    directory = _write(tmp_path, lambda raw: raw["sources"]["events"].update(kind="postgres"))
    with pytest.raises(SpecError, match="table"):
        load_spec("broken", directory)


def test_missing_model_settings_are_named(tmp_path):
    directory = _write(tmp_path, lambda raw: (raw["monitoring"].pop("feedback"), raw["training"].pop("split")))
    with pytest.raises(SpecError, match=r"settings missing: \['training.split', 'monitoring.feedback'\]"):
        load_spec("broken", directory)


def test_a_source_without_a_contract_is_refused(tmp_path):
    directory = _write(tmp_path, lambda raw: raw["contracts"].pop("bronze_labels"))
    with pytest.raises(SpecError, match="no contract for \\['bronze_labels'\\]"):
        load_spec("broken", directory)


def test_downstream_stages_read_the_contract_output():
    spec = load_spec("card_fraud")
    assert spec.valid_dataset("events") == "valid_events" and spec.valid_dataset("labels") == "valid_labels"


def test_alert_channels_need_their_address_variable(tmp_path):
    directory = _write(tmp_path, lambda raw: raw["alerts"].append({"channel": "webhook"}))
    with pytest.raises(SpecError, match="url_env"):
        load_spec("broken", directory)
    directory = _write(tmp_path, lambda raw: raw["alerts"].append({"channel": "pager"}))
    with pytest.raises(SpecError, match="pager"):
        load_spec("broken", directory)
