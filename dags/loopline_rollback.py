"""
### Roll back a model

Makes the previous champion (or the version you name) the `champion` again, in one step.
The demoted version becomes `previous_champion`, so the rollback can itself be undone. The
target must load from the registry first; every alias move is written to
`loopline.alias_history` with your reason and this run's id. Trigger it with the form
(pipeline, optional version, reason). The CLI equivalent is
`loopline rollback --pipeline card_fraud --reason "..." [--to-version N]`.
"""
from loopline_airflow.dag_factory import rollback_dag

dag = rollback_dag(doc_md=__doc__)
