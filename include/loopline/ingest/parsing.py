"""Parse raw records with a pipeline's declared schema and name what is wrong with the bad ones.

Input is a Spark DataFrame of raw records, whatever the source (Kafka topic, PostgreSQL
rows, landed files): `key`, `value` (binary), `timestamp`, and the record's coordinates
`source`, `source_partition`, `source_offset`. Spark's JSON reader parses each payload once;
records that fail are parsed again as a Variant and checked field by field, in this order,
and the first failing check is the record's `reject_reason`:

    null_value  empty_value  oversize  bad_encoding  null_key  not_json  not_an_object
    unknown_schema_version  missing_field:<f>  null_field:<f>  wrong_type:<f>  key_mismatch
    unparseable (Spark's JSON reader refused it, yet no field check names why)

A field the schema declares `nullable` may be null or absent; every other field is required.
Numbers, booleans and timestamps are strict: "12.5" (a JSON string) is not a double, 12.5
is not an int. Like Spark's JSON reader, a number is accepted where a string is declared.
Sources without a message key (table rows, file lines) skip the two key checks. A schema
that declares a `version` (field and value) refuses records of another version as
`unknown_schema_version` before naming any field.
"""
from __future__ import annotations

from loopline.core.spec import Schema

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


def _reasons(text, schema: Schema, max_record_bytes: int, keyed: bool) -> list:
    """(condition, reason) pairs in the order they are checked; the first true one is the reason."""
    from pyspark.sql import functions as F

    variant = F.try_parse_json(text)
    typed, fields = {}, []
    checks = [
        (F.col("value").isNull(), F.lit("null_value")),
        (F.length("value") == 0, F.lit("empty_value")),
        (F.length("value") > max_record_bytes, F.lit("oversize")),
        (~F.is_valid_utf8(text), F.lit("bad_encoding")),
        *([(F.col("key").isNull(), F.lit("null_key"))] if keyed else []),
        (variant.isNull(), F.lit("not_json")),
        (~F.schema_of_variant(variant).startswith("OBJECT"), F.lit("not_an_object")),
    ]
    for name, field_type in schema.fields.items():
        path = f"$.`{name}`" if "." in name else f"$.{name}"
        value = F.variant_get(variant, path, "variant")
        typed[name] = F.try_variant_get(variant, path, field_type)
        wrong_type = ~_json_type_is(value, field_type) | typed[name].isNull()
        if schema.required(name):
            fields += [
                (value.isNull(), F.lit(f"missing_field:{name}")),
                (F.is_variant_null(value), F.lit(f"null_field:{name}")),
                (wrong_type, F.lit(f"wrong_type:{name}")),
            ]
        else:  # absent or null is fine; a value must still have the declared type
            fields.append((value.isNotNull() & ~F.is_variant_null(value) & wrong_type, F.lit(f"wrong_type:{name}")))
    if schema.version:  # a newer producer's shape: say so instead of naming its fields
        checks.append((typed[schema.version.field] != schema.version.value, F.lit("unknown_schema_version")))
    checks += fields
    if keyed:
        checks.append((F.col("key").cast("string") != typed[schema.key].cast("string"), F.lit("key_mismatch")))
    return checks


def classify(raw, schema: Schema, max_record_bytes: int, keyed: bool = True):
    """`raw` plus `record` (struct of the typed fields) and `reject_reason` (null = accepted).

    Fast path: Spark's JSON reader parses every payload once into the typed record; a record
    passes when nothing is null and the cheap checks hold. Only the records that do not pass
    are examined again, field by field (as a Variant), to name the first problem. A record
    whose only nulls are in nullable fields is accepted when that examination finds nothing
    (the reader also gives null for a value of the wrong type, so a null alone proves nothing).
    The steps are separate projections so the parsed record is computed once, not once per field.
    """
    from pyspark.sql import functions as F

    ddl = ", ".join(f"`{name}` {kind}" for name, kind in schema.fields.items())  # spec types are Spark SQL types
    parsed = (raw.withColumn("_text", F.col("value").cast("string"))
              .withColumn("record", F.from_json("_text", ddl)))
    record, text = F.col("record"), F.col("_text")
    passes = (F.col("value").isNotNull() & (F.length("value") <= max_record_bytes) & F.is_valid_utf8(text)
              & F.ltrim(text).startswith("{"))
    for name in schema.fields:
        if schema.required(name):
            passes = passes & record[name].isNotNull()
    if schema.version:
        passes = passes & (record[schema.version.field] == schema.version.value)
    if keyed:
        passes = passes & F.col("key").isNotNull() & (F.col("key").cast("string") == record[schema.key].cast("string"))
    fast = passes
    for name in schema.nullable:
        fast = fast & record[name].isNotNull()
    # Spark's reader refused it (or left a required field null), yet no field check names why
    unexplained = F.when(~F.col("_passes"), F.lit("unparseable"))
    detailed = F.coalesce(*[F.when(condition, label) for condition, label in _reasons(text, schema, max_record_bytes, keyed)],
                          unexplained)
    return (parsed.withColumn("_passes", passes).withColumn("_fast", fast)
            .withColumn("reject_reason", F.when(F.col("_fast"), F.lit(None).cast("string")).otherwise(detailed))
            .drop("_text", "_passes", "_fast"))
