"""Create or update MLflow's users: a writer for the pipeline's tasks, a viewer for people.

Run by infra/stack.py once the MLflow server (its basic-auth app) is up, logged in as the
admin that server created from MLFLOW_AUTH_ADMIN_PASSWORD. Every authenticated user reads
everything (`default_permission = READ`); only the writer, and the admin, change anything.
MLflow gives the creator of an experiment or registered model MANAGE on it, so what the
tasks create is theirs; anything that existed before the writer (a stack from before
authentication) is granted to it here. Passwords come from the environment, never argv.
"""
from __future__ import annotations

import os
import sys

ADMIN = "admin"
WRITER_PERMISSION = "MANAGE"


def ensure_user(client, username: str, password: str) -> None:
    """The user exists with this password (created, or its password reset to the env's)."""
    from mlflow.exceptions import RestException

    try:
        client.get_user(username)
    except RestException:
        client.create_user(username, password)
    else:
        client.update_user_password(username, password)


def grant_existing(client, writer: str) -> int:
    """Give the writer MANAGE on every experiment and registered model it lacks it on."""
    from mlflow import MlflowClient
    from mlflow.exceptions import RestException

    tracking = MlflowClient()
    resources = [("experiment", e.experiment_id) for e in tracking.search_experiments()]
    resources += [("registered_model", m.name) for m in tracking.search_registered_models()]
    granted = 0
    for resource_type, resource_id in resources:
        try:
            client.grant_user_permission(writer, resource_type, resource_id, WRITER_PERMISSION)
            granted += 1
        except RestException as error:
            if "RESOURCE_ALREADY_EXISTS" not in str(error):
                raise
    return granted


def main() -> int:
    from mlflow.server.auth.client import AuthServiceClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = ADMIN
    os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"]
    client = AuthServiceClient(os.environ["MLFLOW_TRACKING_URI"])
    writer, viewer = os.environ["LOOPLINE_MLFLOW_WRITER_USER"], os.environ["LOOPLINE_MLFLOW_VIEWER_USER"]
    ensure_user(client, writer, os.environ["LOOPLINE_MLFLOW_WRITER_PASSWORD"])
    ensure_user(client, viewer, os.environ["LOOPLINE_MLFLOW_VIEWER_PASSWORD"])
    granted = grant_existing(client, writer)
    print(f"mlflow: users {writer} (writer) and {viewer} (viewer) in place"
          + (f"; {writer} granted {granted} resources created before it" if granted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
