"""
### bike_demand retraining

Scheduled on the `bike_demand_retrain_request` asset (drift past the spec's threshold) or triggered by hand with the form: trains on recent days and registers the candidate through the same gate.
"""
from loopline_airflow.dag_factory import retrain_dag

dag = retrain_dag("bike_demand", doc_md=__doc__)
