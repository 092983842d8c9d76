"""Where a training run keeps what later stages read back (gate, monitoring, reproduction,
model cards): one place for the names, so no stage imports another to find a file."""
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"  # the holdout rows (stored columns only), for the gate
PROFILE_ARTIFACT = "reference/profile.json"  # the drift reference of the training features
# The reference of the model's outcomes: its holdout predictions' profile, the training target's
# mean (a binary target's positive rate) and the holdout scores; prediction, label and
# calibration drift and decay are measured against it.
OUTCOMES_ARTIFACT = "reference/outcomes.json"
INPUTS_ARTIFACT = "inputs/training_inputs.json"  # lineage: recipe, splits, partitions, offsets, contracts
ROW_IDS_ARTIFACT = "inputs/row_ids.parquet"  # entity key and split of every training row
GATE_REPORT_ARTIFACT = "gate/gate_report.json"
LAST_EVENT_DATE_TAG = "loopline.last_event_date"  # the newest event date a run trained on (point-in-time scoring)
