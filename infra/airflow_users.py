"""Create or update Loopline's Airflow users: one per role of Airflow's FAB auth manager.

    admin     Admin   everything, users and roles included
    operator  Op      runs the platform: connections, variables, pools, every DAG
    engineer  User    triggers, clears and pauses DAG runs (the people who run pipelines by hand)
    viewer    Viewer  reads DAGs, runs and logs, changes nothing

Run by infra/stack.py after `airflow db migrate` (which creates FAB's tables), with the
settings of .loopline/env. Viewer and User may also read the plugin list (FAB gives it to Op and
Admin only), which the UI needs to show the Loopline view in its navigation. Each password is read from AIRFLOW_<NAME>_PASSWORD in the
environment, never from argv; a user that exists gets its password reset to that value.
"""
from __future__ import annotations

import os
import sys

USERS = {"admin": "Admin", "operator": "Op", "engineer": "User", "viewer": "Viewer"}
PLUGIN_READERS = ("Viewer", "User")  # and Op and Admin, by FAB's own defaults


def main() -> int:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        for username, role_name in USERS.items():
            password, role = os.environ[f"AIRFLOW_{username.upper()}_PASSWORD"], security.find_role(role_name)
            if role is None:
                print(f"Airflow has no role {role_name!r}: was `airflow db migrate` run?", file=sys.stderr)
                return 1
            user = security.find_user(username=username)
            if user is None:
                user = security.add_user(username, username, "(loopline)", f"{username}@loopline.invalid", role,
                                         password)
                if not user:
                    print(f"Airflow refused to create the user {username!r}", file=sys.stderr)
                    return 1
            else:
                security.reset_password(user.id, password)
                user.roles = [role]
                security.update_user(user)
        for role_name in PLUGIN_READERS:
            role = security.find_role(role_name)
            for action in ("can_read", "menu_access"):
                security.add_permission_to_role(role, security.create_permission(action, "Plugins"))
    print(f"airflow: users {', '.join(f'{u} ({r})' for u, r in USERS.items())} in place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
