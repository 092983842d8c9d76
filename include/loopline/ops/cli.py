"""`loopline` command line: check specs, bootstrap the services, report on runs, operate the lake and models."""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from loopline.core.config import ConfigError, Settings
from loopline.core.spec import SpecError, load_spec, pipeline_names, pipelines_dir

if TYPE_CHECKING:
    from loopline.core.interval import Interval
    from loopline.core.pipeline import Pipeline


def _date(text: str) -> date:
    return date.fromisoformat(text)


def job_arguments(description: str, argv: list[str] | None = None) -> tuple["Pipeline", "Interval"]:
    """`--pipeline NAME --date YYYY-MM-DD [--to YYYY-MM-DD]`, the arguments every spark_jobs/ entry point takes."""
    from loopline.core.interval import Interval
    from loopline.core.pipeline import Pipeline

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--date", required=True, type=_date, help="(first) event date of the run (YYYY-MM-DD)")
    parser.add_argument("--to", type=_date, help="last event date of the run (default: --date)")
    args = parser.parse_args(argv)
    return Pipeline.load(args.pipeline), Interval(args.date, args.to or args.date)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from loopline.ops.bootstrap import bootstrap

    specs = [load_spec(name) for name in pipeline_names()]
    for line in bootstrap(Settings.from_env(), specs):
        print(f"  {line}")
    return 0


def cmd_kafka_users(args: argparse.Namespace) -> int:
    import yaml

    from loopline.ops.strimzi import ROLES, kafka_users

    specs = [load_spec(name) for name in pipeline_names()]
    users = {role: os.environ.get(f"LOOPLINE_KAFKA_{role.upper()}_USER") or f"loopline-{role}" for role in ROLES}
    print(yaml.safe_dump_all(kafka_users(specs, args.cluster, users), sort_keys=False), end="")
    return 0


def cmd_spec_check(args: argparse.Namespace) -> int:
    from loopline.ops.spec_check import check

    problems = check(args.pipeline)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.pipeline}: spec, feature code and contract suites are valid")
    return 2 if problems else 0


def cmd_spec_schema(args: argparse.Namespace) -> int:
    from loopline.core.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_new_pipeline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loopline.contracts.rules import expectations_dir
    from loopline.core.provenance import REPOSITORY
    from loopline.ops.onboarding import NewPipeline, OnboardingError, write

    new = NewPipeline(args.name, args.key, args.time_field, args.target, args.task, args.entities, args.labels,
                      tuple(filter(None, args.label_columns.split(","))), tuple(filter(None, args.time_from.split(","))),
                      args.time_format, args.key_from_time, args.labels_after)
    dags = Path(os.environ.get("LOOPLINE_DAGS_DIR", REPOSITORY / "dags"))
    try:
        written = write(new, Path(args.from_file), pipelines_dir(), dags, expectations_dir())
    except (OnboardingError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("wrote:\n" + "\n".join(f"  {path}" for path in written))
    print(f"""next steps (docs/authoring.md):
  1. review the spec: loopline spec check {args.name}
  2. make the topics: loopline bootstrap
  3. send history: loopline replay {args.from_file} --pipeline {args.name}
  4. ingest reference dates, then draft each contract from them:
       loopline ingest --pipeline {args.name}
       loopline contract draft bronze_{args.entities} --pipeline {args.name} --from <first date> --to <last date>
  5. backfill {args.name}_nightly in the Airflow UI (or `airflow backfill create`)""")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from loopline.core.pipeline import Pipeline
    from loopline.ingest.streaming import TooManyRejects, ingest_pipeline

    p = Pipeline.load(args.pipeline)
    now = datetime.now(timezone.utc)
    try:
        runs = ingest_pipeline(p.spark(), p, f"cli__{now.isoformat()}", now.date())
    except TooManyRejects as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    for name, run in runs.items():
        print(f"{name}: {run.batches} batches, consumed {run.consumed} = accepted {run.accepted} + "
              f"quarantined {run.quarantined}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loopline.core.pipeline import Pipeline
    from loopline.sources.replay import ReplayError, parse_duration, replay

    try:
        done = replay(Pipeline.load(args.pipeline), Path(args.file),
                      parse_duration(args.labels_after) if args.labels_after else None, args.from_date, args.to_date)
    except (ReplayError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"replayed {args.file}: {done.entities} entities and {done.labels} labels sent"
          + (f"; {done.skipped} records were sent before, skipped" if done.skipped else ""))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from loopline.monitoring.report import print_summary

    print_summary(Settings.from_env(), load_spec(args.pipeline))
    return 0


def cmd_ingest_reset(args: argparse.Namespace) -> int:
    from loopline.core.pipeline import Pipeline
    from loopline.ingest.streaming import reset_source

    pipeline = Pipeline.load(args.pipeline)
    if args.source not in pipeline.spec.sources:
        print(f"error: pipeline {args.pipeline} has no source {args.source!r}; sources: {sorted(pipeline.spec.sources)}",
              file=sys.stderr)
        return 2
    if not args.yes:
        print("this deletes the source's bronze data, quarantine, checkpoint and records; add --yes to proceed",
              file=sys.stderr)
        return 2
    for item in reset_source(pipeline, pipeline.spec.sources[args.source]):
        print(f"  deleted {item}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from loopline.core.pipeline import Pipeline
    from loopline.ops import retention

    pipeline = Pipeline.load(args.pipeline)
    planned = retention.plan(pipeline, args.as_of or datetime.now(timezone.utc).date())
    if args.apply:
        retention.apply(pipeline, planned)
    print(planned.describe(applied=args.apply))
    return 0


def cmd_tier_copy(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from loopline.core.pipeline import Pipeline
    from loopline.core.storage import StorageError
    from loopline.ops.tiering import copy_partition

    try:
        result = copy_partition(Pipeline.load(args.pipeline).lake, args.dataset, args.date, args.to)
    except (StorageError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(result)))
    return 0


def cmd_contract_draft(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loopline.contracts.draft import draft
    from loopline.core.pipeline import Pipeline
    from loopline.core.storage import StorageError

    try:
        path = draft(Pipeline.load(args.pipeline), args.dataset, args.from_date, args.to_date,
                     Path(args.output) if args.output else None)
    except (StorageError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"draft suite written to {path}: review every rule, then save it as the spec's suite name and commit it")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from loopline.models.aliases import AliasMove, RollbackError, rollback

    spec, settings = load_spec(args.pipeline), Settings.from_env()
    try:
        done = rollback(MlflowClient(), settings.db_url, spec.name, spec.model_name, AliasMove(args.reason),
                        args.to_version)
    except RollbackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{done.model_name}: champion v{done.from_version} -> v{done.to_version} ({done.reason}); "
          f"v{done.from_version} is now previous_champion; recorded in loopline.alias_history")
    return 0


def cmd_aliases(args: argparse.Namespace) -> int:
    from datetime import datetime

    from loopline.models.aliases import CHAMPION, history, version_at

    spec, settings = load_spec(args.pipeline), Settings.from_env()
    if args.at:
        moment = datetime.fromisoformat(args.at)
        version = version_at(settings.db_url, spec.model_name, CHAMPION, moment)
        print(f"{spec.model_name}: champion at {moment.isoformat()} was " + (f"v{version}" if version else "none"))
        return 0
    for row in history(settings.db_url, spec.model_name):
        print(f"{row['changed_at']:%Y-%m-%d %H:%M:%S%z}  {row['alias']:<17} v{row['from_version'] or '-'} -> "
              f"v{row['to_version']}  {row['reason']}  ({row['dag_id'] or 'cli'} {row['run_id'] or ''})")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from loopline.core.pipeline import Pipeline
    from loopline.training.reproduce import ReproductionError, retrain_from_version

    try:
        reproduction = retrain_from_version(Pipeline.load(args.pipeline), args.from_version)
    except ReproductionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(reproduction.describe())
    return 0 if reproduction.reproduced else 1


def cmd_model_card(args: argparse.Namespace) -> int:
    import mlflow
    from mlflow.exceptions import MlflowException

    from loopline.release.model_card import HTML, MARKDOWN

    spec = load_spec(args.pipeline)
    try:
        print(mlflow.artifacts.load_text(f"models:/{spec.model_name}/{args.version}/"
                                         f"{HTML if args.html else MARKDOWN}"), end="")
    except MlflowException as error:
        print(f"error: no model card for {spec.model_name} v{args.version} ({error.message}); cards are written "
              "when a version is registered through the gate", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loopline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bootstrap", help="create topics, bucket and tables (idempotent)").set_defaults(func=cmd_bootstrap)

    users = sub.add_parser("kafka-users", help="print Strimzi KafkaUser resources with every pipeline's ACLs "
                           "(Kubernetes: docs/deploy-kubernetes.md)")
    users.add_argument("--cluster", default="loopline", help="the Strimzi Kafka resource's name (default loopline)")
    users.set_defaults(func=cmd_kafka_users)

    spec = sub.add_parser("spec", help="pipeline specs: validate one, or print the JSON Schema for editors")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True)
    checking = spec_sub.add_parser("check", help="validate a spec, its feature code and its suites (no service)")
    checking.add_argument("pipeline")
    checking.set_defaults(func=cmd_spec_check)
    spec_sub.add_parser("schema", help="print the JSON Schema of spec files").set_defaults(func=cmd_spec_schema)

    new = sub.add_parser("new-pipeline", help="write a new pipeline's spec, feature stub, DAGs and starter "
                         "contracts from a sample file")
    new.add_argument("name")
    new.add_argument("--from-file", required=True, help="a sample of the data (csv or parquet)")
    new.add_argument("--key", required=True, help="the entity key (a column, or a new field: see --key-from-time)")
    new.add_argument("--time-field", required=True, help="the event time (a column, or a new field: see --time-from)")
    new.add_argument("--target", required=True, help="the column holding the outcome")
    new.add_argument("--task", choices=["binary", "regression"], default="binary")
    new.add_argument("--entities", default="entities", help="name of the source of entities (default: entities)")
    new.add_argument("--labels", default="outcomes", help="name of the source of outcomes (default: outcomes)")
    new.add_argument("--label-columns", default="", help="other outcome columns (comma-separated): never features")
    new.add_argument("--time-from", default="", help="columns the event time is built from (comma-separated)")
    new.add_argument("--time-format", help="strptime format of those columns joined with a space")
    new.add_argument("--key-from-time", help="strftime format of the event time that makes the key")
    new.add_argument("--labels-after", default="0s", help="how long after its event an outcome arrives (e.g. 2h)")
    new.set_defaults(func=cmd_new_pipeline)

    replaying = sub.add_parser("replay", help="stream a historical file (csv, parquet) into a pipeline's topics")
    replaying.add_argument("file")
    replaying.add_argument("--pipeline", required=True)
    replaying.add_argument("--labels-after", help="delay of the outcomes after their events (default: the spec's)")
    replaying.add_argument("--from", dest="from_date", type=_date, help="first event date to send")
    replaying.add_argument("--to", dest="to_date", type=_date, help="last event date to send")
    replaying.set_defaults(func=cmd_replay)

    ingesting = sub.add_parser("ingest", help="ingest what is new in every source now (as the nightly run's "
                               "ingest task does), e.g. reference days to draft contracts from")
    ingesting.add_argument("--pipeline", required=True)
    ingesting.set_defaults(func=cmd_ingest)

    summary = sub.add_parser("summary", help="per-day report of the nightly loop")
    summary.add_argument("--pipeline", required=True)
    summary.set_defaults(func=cmd_summary)

    gc = sub.add_parser("gc", help="apply the spec's retention: delete expired partitions (never one a registered "
                        "model's lineage names) and set the topics' retention; a dry run unless --apply")
    gc.add_argument("--pipeline", required=True)
    gc.add_argument("--as-of", type=_date, help="the date retention counts back from (default: today, UTC)")
    gc.add_argument("--apply", action="store_true", help="do it (default: show the plan and change nothing)")
    gc.set_defaults(func=cmd_gc)

    reset = sub.add_parser("ingest-reset", help="forget a source's ingested data so it is read again from the start")
    reset.add_argument("--pipeline", required=True)
    reset.add_argument("--source", required=True, help="a source name of the spec")
    reset.add_argument("--yes", action="store_true", help="confirm the deletion")
    reset.set_defaults(func=cmd_ingest_reset)

    tier = sub.add_parser("tier-copy", help="copy a dataset partition to another storage tier (checksum-verified)")
    tier.add_argument("--pipeline", required=True)
    tier.add_argument("--dataset", required=True)
    tier.add_argument("--date", required=True, type=_date)
    tier.add_argument("--to", required=True, help="target tier (see include/storage.yaml)")
    tier.set_defaults(func=cmd_tier_copy)

    contract = sub.add_parser("contract", help="data contracts (GX suites in expectations/)")
    contract_sub = contract.add_subparsers(dest="contract_command", required=True)
    drafting = contract_sub.add_parser("draft", help="profile reference dates and write a draft suite to review")
    drafting.add_argument("dataset", help="bronze dataset of a source (bronze_<source name>)")
    drafting.add_argument("--pipeline", required=True)
    drafting.add_argument("--from", dest="from_date", required=True, type=_date, help="first reference date")
    drafting.add_argument("--to", dest="to_date", type=_date, help="last reference date (default: --from); "
                          "a month of dates drafts rules the next days keep")
    drafting.add_argument("--output", help="file to write (default: expectations/<suite>.draft.json)")
    drafting.set_defaults(func=cmd_contract_draft)

    back = sub.add_parser("rollback", help="make the previous (or a named) model version champion again")
    back.add_argument("--pipeline", required=True)
    back.add_argument("--to-version", type=int, help="version to restore (default: previous_champion)")
    back.add_argument("--reason", required=True, help="why, for the audit trail")
    back.set_defaults(func=cmd_rollback)

    aliases = sub.add_parser("aliases", help="the audit trail of registry aliases, or the champion at a time")
    aliases.add_argument("--pipeline", required=True)
    aliases.add_argument("--at", help="ISO timestamp with zone: print the champion at that moment")
    aliases.set_defaults(func=cmd_aliases)

    retrain = sub.add_parser("retrain", help="retrain a version from its recorded inputs and compare the metrics")
    retrain.add_argument("--pipeline", required=True)
    retrain.add_argument("--from-version", type=int, required=True, help="registered version to reproduce")
    retrain.set_defaults(func=cmd_retrain)

    card = sub.add_parser("model-card", help="print a version's model card (Markdown, or --html)")
    card.add_argument("version", type=int)
    card.add_argument("--pipeline", required=True)
    card.add_argument("--html", action="store_true")
    card.set_defaults(func=cmd_model_card)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, SpecError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
