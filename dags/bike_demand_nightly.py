"""
### bike_demand nightly loop

Wait for data, ingest, validate each source's contract, check the champion on returned labels, train and gate a candidate, score, monitor drift and request retraining, for every date of the run's interval. Spec: `include/pipelines/bike_demand.yaml`.
"""
from loopline_airflow.dag_factory import nightly_dag

dag = nightly_dag("bike_demand", doc_md=__doc__)
