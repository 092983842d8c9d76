"""Copy a dataset partition between storage tiers, checksum-verified (trigger with the form)."""
from loopline_airflow.dag_factory import tiering_dag

dag = tiering_dag(doc_md=__doc__)
