"""Strimzi KafkaUser resources for Loopline's Kafka principals (docs/deploy-kubernetes.md).

On Kubernetes, Strimzi's User Operator owns the SCRAM credentials and the ACLs of the users it
manages, and replaces ACLs granted any other way. So the ACLs that `loopline bootstrap` grants
are declared here from the same source (loopline.ops.bootstrap's grants), and `bootstrap`
then finds them in place. The passwords stay in the Secret they are generated into.

    loopline kafka-users --cluster loopline > kafka-users.yaml   # again whenever a pipeline is added
"""
from __future__ import annotations

from loopline.core.spec import PipelineSpec
from loopline.ops.bootstrap import GROUP_GRANTS, TRANSACTIONAL_ID_GRANTS, topic_grants

ROLES = ("ingest", "producer", "scoring", "reader")  # `admin` is a super user of the Kafka resource
SECRET = "loopline-secrets"  # holds LOOPLINE_KAFKA_<ROLE>_PASSWORD (docs/deploy-kubernetes.md)


def acl(resource: str, name: str, operations: tuple[str, ...], prefixed: bool = False) -> dict:
    return {"resource": {"type": resource, "name": name, "patternType": "prefix" if prefixed else "literal"},
            "operations": sorted({operation.capitalize() for operation in operations})}


def kafka_users(specs: list[PipelineSpec], cluster: str, users: dict[str, str]) -> list[dict]:
    """One KafkaUser per role (its Kafka user name from `users`), with the role's ACLs over
    every pipeline's topics, consumer groups and transactional ids."""
    resources = []
    for role in ROLES:
        topics: dict[str, set[str]] = {}
        for spec in specs:
            for topic, operations in topic_grants(spec)[role].items():
                topics.setdefault(topic, set()).update(operations)
        acls = [acl("topic", topic, tuple(operations)) for topic, operations in sorted(topics.items())]
        if role in GROUP_GRANTS:
            acls.append(acl("group", GROUP_GRANTS[role], ("READ",), prefixed=True))
        if role in TRANSACTIONAL_ID_GRANTS:
            acls.append(acl("transactionalId", TRANSACTIONAL_ID_GRANTS[role], ("WRITE", "DESCRIBE"), prefixed=True))
        password = {"name": SECRET, "key": f"LOOPLINE_KAFKA_{role.upper()}_PASSWORD"}
        resources.append({
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaUser",
            "metadata": {"name": users[role], "labels": {"strimzi.io/cluster": cluster}},
            "spec": {"authentication": {"type": "scram-sha-512", "password": {"valueFrom": {"secretKeyRef": password}}},
                     "authorization": {"type": "simple", "acls": acls}},
        })
    return resources
