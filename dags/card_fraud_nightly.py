"""
### card_fraud nightly loop

For one logical date (a UTC day; the run starts after the day ends): **wait for data**
(deferred in the triggerer until records are unread, or the date is already ingested) →
**ingest** everything new on the Kafka topics (payment events, delayed labels) exactly once
into bronze Parquet partitioned by event date; malformed records go to quarantine and to
`<topic>.dlq` with the reason → **validate_bronze_events / validate_bronze_labels**: each
bronze partition against its Great Expectations contract; rows breaking row-level rules go
to quarantine (the rest to `valid_*`, all that later stages read), a failing batch-level rule
stops the line and fires the alert channels; the task's **Contract report** button opens the
GX Data Docs → **check feedback** (beside training, which reads no alias): the champion's
predictions whose labels came back are judged against the previous champion on the same rows;
a clear loss rolls it back (audited, alerted) before register and score → **train** a
candidate with the spec's recipe on a train | validation | holdout split by event date
(MLflow run with its data inputs, Kafka offsets, signature, pinned requirements and git
commit) → **register** it and promote it to `champion` if it passes
the gate (margin, critical slices, smoke test); every version gets a model card → **score**
the day with the champion (Parquet + `loopline.predictions`) → **monitor** drift against
the champion's training reference → **request retraining** (asset event) when drift passes
the threshold. Beside the line once validated, **late reruns**: the intervals this run landed
late events for, each rerun (a triggered run) once this run is over.

Every task is idempotent for its logical date: rerun any day and it overwrites its own
partition and rows; a rerun of ingest reads only what is new (late events of an earlier
date land in that date's partition and are counted as `late`). At cold start (too few labels) training is skipped and scoring waits
for a champion. Trigger by hand with a logical date, or backfill a range of dates.
Spec: `include/pipelines/card_fraud.yaml`; contracts: `expectations/card_payments_bronze.json`,
`expectations/card_labels_bronze.json`.
"""
from loopline_airflow.dag_factory import nightly_dag

dag = nightly_dag("card_fraud", doc_md=__doc__)
