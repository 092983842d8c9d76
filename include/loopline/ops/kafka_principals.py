"""Create or update the SCRAM credentials of every Kafka principal (loopline.core.kafka_auth).

Run by infra/stack.py once the broker is up, logged in as the broker itself over its internal
listener (PLAIN): the principals cannot exist before someone creates them. Passwords come from
the environment (.loopline/env), never from the command line.
"""
from __future__ import annotations

import os
import sys
from typing import get_args

from loopline.core.kafka_auth import Role

# Both SCRAM variants, so that clients may use either (LOOPLINE_KAFKA_SASL_MECHANISM).
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def main() -> int:
    from kafka import KafkaAdminClient
    from kafka.admin import UserScramCredentialUpsertion

    admin = KafkaAdminClient(
        bootstrap_servers=f"127.0.0.1:{os.environ['LOOPLINE_KAFKA_INTERNAL_PORT']}", security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_plain_username="broker",
        sasl_plain_password=os.environ["LOOPLINE_KAFKA_BROKER_PASSWORD"], client_id="loopline-principals")
    try:
        logins = {os.environ[f"LOOPLINE_KAFKA_{role.upper()}_USER"]: os.environ[f"LOOPLINE_KAFKA_{role.upper()}_PASSWORD"]
                  for role in get_args(Role)}
        failed = {}
        for mechanism in MECHANISMS:  # one request each: a request may alter a user's credential only once
            failed |= {f"{user} ({mechanism})": error for user, error in admin.alter_user_scram_credentials(
                [UserScramCredentialUpsertion(user, mechanism, password) for user, password in logins.items()]).items()
                if error}
    finally:
        admin.close()
    if failed:
        print(f"Kafka refused these SCRAM credentials: {failed}", file=sys.stderr)
        return 1
    print(f"kafka: SCRAM credentials of {len(logins)} principals in place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
