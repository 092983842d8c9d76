"""Point-in-time scoring on the real registry, PostgreSQL and Spark: a date is never scored by
a model that trained on it, so a backfill scores with the champion of its time."""
from __future__ import annotations

from datetime import date

import pytest

from lifecycle_data import booster, gate, labelled, lightgbm_model, write_labelled_days
from loopline.core import db
from loopline.core.interval import Interval
from loopline.core.pipeline import Pipeline
from loopline.core.run_artifacts import LAST_EVENT_DATE_TAG
from loopline.scoring.score import NoPointInTimeModel, score, scoring_version

FIRST_CUTOFF, SECOND_CUTOFF = date(2026, 5, 7), date(2026, 5, 20)


@pytest.fixture(scope="module")
def two_champions(make_pipeline):
    """v1 trained through May 7 and v2 through May 20, promoted in that order."""
    p = Pipeline.load(make_pipeline(gate={"min_improvement": 0.0, "critical_slices": {}}))
    history, holdout = labelled([date(2026, 5, d) for d in range(1, 8)]), labelled([date(2026, 5, 21)])
    model = lightgbm_model(p.spec, booster(p.spec, history))
    _, first = gate(p, holdout, model, FIRST_CUTOFF, tags={LAST_EVENT_DATE_TAG: FIRST_CUTOFF.isoformat()})
    _, second = gate(p, holdout, model, SECOND_CUTOFF, tags={LAST_EVENT_DATE_TAG: SECOND_CUTOFF.isoformat()})
    assert first.promoted and second.promoted
    return p, first.model_version, second.model_version


def test_a_date_after_the_champions_training_is_scored_by_the_champion(two_champions):
    p, _, current = two_champions
    assert scoring_version(p, date(2026, 5, 21)) == current


def test_a_backfilled_date_is_scored_by_the_champion_that_did_not_train_on_it(two_champions):
    """A date whose first run failed, rerun after v2 (which trained on it) became champion."""
    p, earlier, _ = two_champions
    day = date(2026, 5, 12)
    write_labelled_days(p, labelled([day], per_day=400))
    version = scoring_version(p, day)
    assert version == earlier
    result = score(p, Interval.of_day(day), version)
    with db.connect(p.settings.db_url) as conn:
        used = db.fetch_all(conn, "SELECT DISTINCT model_version FROM loopline.predictions WHERE pipeline = %s "
                                  "AND score_date = %s", (p.spec.name, day))
    assert result.rows == 400 and [row["model_version"] for row in used] == [earlier]
    assert scoring_version(p, day) == earlier  # recorded: a rerun reproduces it


def test_a_date_every_champion_trained_on_is_not_scored_and_says_why(two_champions):
    p, earlier, current = two_champions
    with pytest.raises(NoPointInTimeModel) as refused:
        scoring_version(p, FIRST_CUTOFF)
    assert f"v{current} through {SECOND_CUTOFF}" in str(refused.value)
    assert f"v{earlier} through {FIRST_CUTOFF}" in str(refused.value)
