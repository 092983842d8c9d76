"""`loopline kafka-users`: Strimzi KafkaUsers that carry exactly the ACLs `loopline bootstrap`
grants (Strimzi's User Operator replaces ACLs granted any other way), for every pipeline."""
from loopline.core.spec import load_spec, pipeline_names
from loopline.ops.bootstrap import GROUP_GRANTS, TRANSACTIONAL_ID_GRANTS, topic_grants
from loopline.ops.strimzi import ROLES, kafka_users

USERS = {role: f"loopline-{role}" for role in ROLES}


def granted(user: dict) -> set[tuple[str, str, str, str]]:
    return {(acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], operation)
            for acl in user["spec"]["authorization"]["acls"] for operation in acl["operations"]}


def test_each_principal_gets_bootstraps_grants_over_every_pipeline_and_nothing_more():
    specs = [load_spec(name) for name in pipeline_names()]
    users = {user["metadata"]["name"]: user for user in kafka_users(specs, "loopline", USERS)}
    assert set(users) == set(USERS.values())
    for role, name in USERS.items():
        expected = {("topic", topic, "literal", operation.capitalize())
                    for spec in specs for topic, operations in topic_grants(spec)[role].items()
                    for operation in operations}
        if role in GROUP_GRANTS:
            expected.add(("group", GROUP_GRANTS[role], "prefix", "Read"))
        if role in TRANSACTIONAL_ID_GRANTS:
            expected |= {("transactionalId", TRANSACTIONAL_ID_GRANTS[role], "prefix", op) for op in ("Write", "Describe")}
        assert granted(users[name]) == expected, role


def test_users_log_in_with_scram_sha_512_and_their_password_stays_in_the_secret():
    (user, *_) = kafka_users([load_spec(pipeline_names()[0])], "my-cluster", USERS)
    assert user["metadata"]["labels"] == {"strimzi.io/cluster": "my-cluster"}
    authentication = user["spec"]["authentication"]
    assert authentication["type"] == "scram-sha-512"
    reference = authentication["password"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "loopline-secrets", "key": "LOOPLINE_KAFKA_INGEST_PASSWORD"}
