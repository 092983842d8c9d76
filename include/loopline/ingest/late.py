"""Late events: the intervals a run landed events for after an earlier run validated them.

Ingest files every event under its own date, however late it arrives, and counts it `late`.
The contract and scoring of that date ran before it came, so it is neither validated nor
scored until the date's interval runs again. The spec's `ingest.late_events` declares who
starts that rerun: the run that landed the events (`rerun`), or a person (`manual`). A rerun
validates the whole interval again (replacing its outputs), scores it with the model that
first scored it, and publishes the interval's predictions again only if they changed.
"""
from __future__ import annotations

from loopline.core import db
from loopline.core.interval import Interval


def intervals_to_rerun(db_url: str, pipeline: str, run_id: str, interval: Interval) -> list[Interval]:
    """The validated intervals (as validated) holding events that `run_id` landed for dates
    outside its own `interval`; an interval no run has validated yet is left to its own run."""
    with db.connect(db_url) as conn:
        rows = db.fetch_all(conn, """
            SELECT DISTINCT v.logical_date AS first, v.last_date AS last
              FROM loopline.ingest_batches b, jsonb_each_text(b.accepted_by_date) landed,
                   loopline.contract_validations v
             WHERE b.pipeline = %(p)s AND b.run_id = %(r)s AND landed.key::date NOT BETWEEN %(first)s AND %(last)s
               AND v.pipeline = b.pipeline AND landed.key::date BETWEEN v.logical_date AND v.last_date
             ORDER BY 1, 2""", {"p": pipeline, "r": run_id, "first": interval.first, "last": interval.last})
    return [Interval(r["first"], r["last"]) for r in rows]
