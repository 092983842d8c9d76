"""
### card_fraud retraining

Scheduled on the `card_fraud_retrain_request` asset, which the nightly loop emits when feature
drift passes the spec's PSI threshold. Trains a candidate on the most recent days only
(`training.retrain_window_days`) for the logical date carried by the asset event, then
registers it through the same champion/challenger gate as the nightly loop: it is promoted
only if it beats the champion on its holdout.
"""
from loopline_airflow.dag_factory import retrain_dag

dag = retrain_dag("card_fraud", doc_md=__doc__)
