"""Parse raw records with a pipeline's declared schema and name what is wrong with the bad ones.

Input is a Spark DataFrame of raw records, whatever the source (Kafka topic, PostgreSQL
rows, landed files): `key`, `value` (binary), `timestamp`, and the record's coordinates
`source`, `partition`, `offset`. Each payload is parsed once (as a Variant); checks run in
order and the first failing one is the record's `reject_reason`:

    null_value  empty_value  oversize  bad_encoding  null_key  not_json  not_an_object
    unknown_schema_version  missing_field:<f>  null_field:<f>  wrong_type:<f>  key_mismatch

Types are strict: "12.5" (a JSON string) is not a double, 12.5 is not an int. Sources
without a message key (table rows, file lines) skip the two key checks.
"""
from __future__ import annotations

from loopline.spec import Schema

SUPPORTED_SCHEMA_VERSION = 1
REASON_KINDS = ["null_value", "empty_value", "oversize", "bad_encoding", "null_key", "not_json", "not_an_object",
                "unknown_schema_version", "missing_field", "null_field", "wrong_type", "key_mismatch"]
# Variant types (schema_of_variant) a JSON value may have for each declared field type.
ACCEPTED_JSON_TYPES = {
    "string": ["STRING"],
    "timestamp": ["STRING"],
    "int": ["BIGINT"],
    "double": ["BIGINT", "DOUBLE", "DECIMAL"],
    "boolean": ["BOOLEAN"],
}


def _json_type_is(value, field_type: str):
    from pyspark.sql import functions as F

    json_type = F.schema_of_variant(value)
    ok = F.lit(False)
    for accepted in ACCEPTED_JSON_TYPES[field_type]:
        ok = ok | json_type.startswith(accepted)
    return ok


def classify(raw, schema: Schema, max_record_bytes: int, keyed: bool = True):
    """`raw` plus `record` (struct of the typed fields) and `reject_reason` (null = accepted)."""
    from pyspark.sql import functions as F

    text = F.col("value").cast("string")
    variant = F.try_parse_json(text)
    fields, typed = [], {}
    checks = [
        (F.col("value").isNull(), F.lit("null_value")),
        (F.length("value") == 0, F.lit("empty_value")),
        (F.length("value") > max_record_bytes, F.lit("oversize")),
        (~F.is_valid_utf8(text), F.lit("bad_encoding")),
        (F.lit(keyed) & F.col("key").isNull(), F.lit("null_key")),
        (variant.isNull(), F.lit("not_json")),
        (~F.schema_of_variant(variant).startswith("OBJECT"), F.lit("not_an_object")),
    ]
    for name, field_type in schema.fields.items():
        path = f"$.`{name}`" if "." in name else f"$.{name}"
        value = F.variant_get(variant, path, "variant")
        typed[name] = F.try_variant_get(variant, path, field_type)
        fields += [
            (value.isNull(), F.lit(f"missing_field:{name}")),
            (F.is_variant_null(value), F.lit(f"null_field:{name}")),
            (~_json_type_is(value, field_type) | typed[name].isNull(), F.lit(f"wrong_type:{name}")),
        ]
    if "schema_version" in schema.fields:  # a newer producer's shape: say so instead of naming its fields
        checks.append((typed["schema_version"] != SUPPORTED_SCHEMA_VERSION, F.lit("unknown_schema_version")))
    checks += fields
    if keyed:
        checks.append((F.col("key").cast("string") != typed[schema.key].cast("string"), F.lit("key_mismatch")))
    reason = F.coalesce(*[F.when(condition, label) for condition, label in checks])  # the first failing check wins
    record = F.struct(*[typed[name].alias(name) for name in schema.fields])
    return raw.select("*", record.alias("record"), reason.alias("reject_reason"))
