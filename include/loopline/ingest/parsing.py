"""Parse raw records with a pipeline's declared schema and name what is wrong with the bad ones.

Input is a Spark DataFrame of raw records, whatever the source (Kafka topic, PostgreSQL
rows, landed files): `key`, `value` (binary), `timestamp`, and the record's coordinates
`source`, `source_partition`, `source_offset`. Spark's JSON reader parses each payload once;
records that fail are parsed again as a Variant and checked field by field, in this order,
and the first failing check is the record's `reject_reason`:

    null_value  empty_value  oversize  bad_encoding  null_key  byte_order_mark  parser_limit
    duplicate_key  not_json  not_an_object  unknown_schema_version  missing_field:<f>
    null_field:<f>  wrong_type:<f>  out_of_range:<f>  not_finite:<f>  nul_character:<f>
    unknown_field:<f,...>  key_mismatch
    unparseable (Spark's JSON reader refused it, yet no field check names why)

Beyond what JSON itself forbids, a record is refused when a later stage could not hold it, or
when two readers could see different data in it:
- `bad_encoding`: not UTF-8, or a `\\u` escape of half a surrogate pair (Spark would silently
  turn it into "?");
- `byte_order_mark`: a UTF-8 byte-order mark before the document (JSON on the wire has none);
- `parser_limit`: valid JSON beyond the parser's limits (nesting deeper than 1000 levels, a
  number longer than 1000 digits);
- `duplicate_key`: a top-level key given twice (Spark keeps the last, other readers the first);
- `not_json`, also for content after the value (Spark's parsers ignore it, other readers refuse it);
- `out_of_range`: a timestamp outside the years 1 to 9999 (neither Python nor PostgreSQL holds it);
- `not_finite`: a double that is NaN or infinite (`1e309` overflows to infinity, and Spark's
  reader also takes "NaN" and a bare NaN, which JSON does not have);
- `nul_character`: a string with a NUL character (PostgreSQL's text cannot hold it).

A field the schema declares `nullable` may be null or absent; every other field is required.
Every type is strict: "12.5" (a JSON string) is not a double, 12.5 is not an int, and a
string or timestamp field takes only a JSON string (Spark's reader would keep the text of a
number or boolean given for a string, and read a number given for a timestamp as seconds
since 1970).
Sources without a message key (table rows, file lines) skip the two key checks. A schema
that declares a `version` (field and value) refuses records of another version as
`unknown_schema_version` before naming any field. A source may accept several versions side
by side (`older_schemas`): each record is checked against the schema its version names.

A top-level field the schema does not declare is never dropped silently: every record keeps
the names of its `unknown_fields`. The schema's policy decides what follows: `report` lands
the record without them (ingest counts each such field), `quarantine` rejects the record as
`unknown_field:<names>`.
"""
from __future__ import annotations

from loopline.core.spec import Schema, merged_schema

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


# A `\u` escape of a high surrogate not followed by a low one, or a low one without a high one
# before it (an escaped backslash before the `\u` makes it text, not an escape).
LONE_SURROGATE = (r"(?<!\\)\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
                  r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)\\u[dD][c-fC-F][0-9a-fA-F]{2}")
# Past the JSON parser's limits (Jackson's defaults, which Spark keeps): 1001 brackets opened
# one inside the other, or a number of more than 1000 digits.
BEYOND_PARSER_LIMITS = r"(?:[\[{][^\[\]{}]*){1001}|[0-9]{1001}"
OUT_OF_BOUNDS_REASON = {"timestamp": "out_of_range", "double": "not_finite", "string": "nul_character"}
# Declared types whose JSON value is always a string, so in the text it has a pair of quotes.
QUOTED_TYPES = {kind for kind, json_types in ACCEPTED_JSON_TYPES.items() if json_types == ["STRING"]}


def _out_of_bounds(value, field_type: str):
    """True where a typed value is one no later stage can hold, per OUT_OF_BOUNDS_REASON."""
    from pyspark.sql import functions as F

    if field_type == "timestamp":
        return ~F.year(value).between(1, 9999)
    if field_type == "double":
        return F.isnan(value) | (F.abs(value) == F.lit(float("inf")))
    return value.contains(chr(0))  # contains compares bytes; instr would count characters


def _bad_encoding(text):
    """Not UTF-8, or an escaped lone surrogate (the regex runs only on text with an escape)."""
    from pyspark.sql import functions as F

    escaped = F.when(text.contains("\\u"), text.rlike(LONE_SURROGATE)).otherwise(F.lit(False))
    return ~F.is_valid_utf8(text) | escaped


def _duplicate_key(keys):
    """True where a JSON object's top-level `keys` (json_object_keys) name a key twice."""
    from pyspark.sql import functions as F

    return F.coalesce(F.size(keys) != F.size(F.array_distinct(keys)), F.lit(False))


def _one_value(text):
    """True where `text` is one JSON value and nothing after it. Spark's JSON parsers stop after
    the first value and ignore the rest (`{...}xyz` parses as `{...}`). One value makes an array
    of one wrapped as `[text]`, and of two wrapped as `[text,0]`; content after it breaks an
    array or changes a length in at least one of the two (`]...` ends the first wrap early,
    `,...]` lengthens the second)."""
    from pyspark.sql import functions as F

    def wrapped_length(after: str):
        return F.json_array_length(F.concat(F.lit("["), text, F.lit(after)))

    return F.coalesce((wrapped_length("]") == 1) & (wrapped_length(",0]") == 2), F.lit(False))


def _unknown_fields(keys, schema: Schema):
    """The top-level `keys` of a JSON object that the schema does not declare (empty otherwise)."""
    from pyspark.sql import functions as F

    declared = F.array(*[F.lit(name) for name in schema.fields])
    return F.array_except(F.coalesce(keys, F.array().cast("array<string>")), declared)


def _path(name: str) -> str:
    """The Variant path of a top-level field."""
    return f"$.`{name}`" if "." in name else f"$.{name}"


def _field_checks(values: dict, schema: Schema) -> list:
    """(condition, reason) per declared field of `schema`: missing, null, wrong type, out of
    bounds. `values`: each field's value as a Variant column (null where it is absent)."""
    from pyspark.sql import functions as F

    checks = []
    for name, field_type in schema.fields.items():
        value = values[name]
        typed = F.try_variant_get(value, "$", field_type)
        wrong_type = ~_json_type_is(value, field_type) | typed.isNull()
        present = value.isNotNull() & ~F.is_variant_null(value)
        if schema.required(name):
            checks += [
                (value.isNull(), F.lit(f"missing_field:{name}")),
                (F.is_variant_null(value), F.lit(f"null_field:{name}")),
                (wrong_type, F.lit(f"wrong_type:{name}")),
            ]
        else:  # absent or null is fine; a value must still have the declared type
            checks.append((present & wrong_type, F.lit(f"wrong_type:{name}")))
        if field_type in OUT_OF_BOUNDS_REASON:
            checks.append((present & _out_of_bounds(typed, field_type), F.lit(f"{OUT_OF_BOUNDS_REASON[field_type]}:{name}")))
    return checks


def _first(checks: list):
    """The reason of the first true condition (null if none)."""
    from pyspark.sql import functions as F

    return F.coalesce(*[F.when(condition, label) for condition, label in checks]) if checks else F.lit(None)


def _version_checks(variant, values: dict, versions: list[Schema]) -> list:
    """The record's version picks the schema its fields are checked against: a version no
    schema declares is `unknown_schema_version`, a record without one is checked against the
    newest (which names the missing field)."""
    from pyspark.sql import functions as F

    newest = versions[0]
    if newest.version is None:
        return _field_checks(values, newest)
    version = F.try_variant_get(variant, f"$.{newest.version.field}", "int")
    if len(versions) == 1:  # a newer producer's shape: say so instead of naming its fields
        return [(version != newest.version.value, F.lit("unknown_schema_version")), *_field_checks(values, newest)]
    reason = F.when(version.isNull(), _first(_field_checks(values, newest)))
    for schema in versions:
        reason = reason.when(version == schema.version.value, _first(_field_checks(values, schema)))
    reason = reason.otherwise(F.lit("unknown_schema_version"))
    return [(reason.isNotNull(), reason)]


def _reasons(text, variant, values: dict, versions: list[Schema], merged: Schema, max_record_bytes: int,
             keyed: bool) -> list:
    """(condition, reason) pairs in the order they are checked; the first true one is the reason.
    `variant`: the text parsed as a Variant (null where it is not JSON); `values`: each field's
    value in it."""
    from pyspark.sql import functions as F

    checks = [
        (F.col("value").isNull(), F.lit("null_value")),
        (F.length("value") == 0, F.lit("empty_value")),
        (F.length("value") > max_record_bytes, F.lit("oversize")),
        (_bad_encoding(text), F.lit("bad_encoding")),
        *([(F.col("key").isNull(), F.lit("null_key"))] if keyed else []),
        (F.hex(F.substring("value", 1, 3)) == "EFBBBF", F.lit("byte_order_mark")),
        (variant.isNull() & text.rlike(BEYOND_PARSER_LIMITS), F.lit("parser_limit")),
        (_duplicate_key(F.col("_keys")), F.lit("duplicate_key")),
        (variant.isNull() | ~_one_value(text), F.lit("not_json")),
        (~F.schema_of_variant(variant).startswith("OBJECT"), F.lit("not_an_object")),
        *_version_checks(variant, values, versions),
    ]
    if merged.unknown_fields == "quarantine":
        unknown = F.col("unknown_fields")
        checks.append((F.size(unknown) > 0, F.concat(F.lit("unknown_field:"), F.array_join(unknown, ","))))
    if keyed:
        typed_key = F.try_variant_get(variant, f"$.{merged.key}", merged.fields[merged.key])
        checks.append((F.col("key").cast("string") != typed_key.cast("string"), F.lit("key_mismatch")))
    return checks


def _follows(record, schema: Schema):
    """Spark Column: the parsed record has `schema`'s version and all its required fields."""
    from pyspark.sql import functions as F

    follows = F.lit(True)
    for name in schema.fields:
        if schema.required(name):
            follows = follows & record[name].isNotNull()
    if schema.version:
        follows = follows & (record[schema.version.field] == schema.version.value)
    return follows


def _occurrences(text, mark: str):
    """Spark Column: how many times `mark` occurs in `text`, by one byte-level replace."""
    from pyspark.sql import functions as F

    return (F.octet_length(text) - F.octet_length(F.replace(text, F.lit(mark), F.lit("")))) / len(mark.encode())


def _at_most_keys(text, count: int):
    """Spark Column: true where the JSON object `text` surely has at most `count` top-level keys,
    found without parsing it. Two bounds, the second tried only where the first fails:
    - commas: the object's keys are separated by commas, and any other comma only adds, so
      there are at most one more key than commas, whatever the layout;
    - `":` marks, for text with commas inside its strings: in JSON with no whitespace after a
      quote, every key is followed by `":`, and any other `":` sits inside a string (after an
      escaped quote). Text with whitespace after a quote is never sure (false)."""
    from pyspark.sql import functions as F

    spaced = F.lit(False)
    for blank in (" ", "\t", "\n", "\r"):
        spaced = spaced | text.contains('"' + blank)
    return (_occurrences(text, ",") < count) | (~spaced & (_occurrences(text, '":') <= count))


def _exactly_filled(record, text, schema: Schema):
    """Spark Column: every field the schema declares is filled with a plain value of its JSON
    type, and the object has no other key. With each declared name present and at most as many
    keys as names, every key is a declared name, once: no duplicate and no undeclared key,
    without listing the keys (a second JSON pass).

    Spark's reader is lenient where the examination is not, so what it cannot show is
    examined (where it is wrong_type): it puts the JSON text of an object, array, number or
    boolean into a field declared string, and reads a number as a timestamp. So a string
    starting with `{` or `[` is examined, and so is text with another count of quotes than
    its keys and string values make (each a pair). A string with an escaped quote in it is
    examined too, and accepted there."""
    quoted = len(schema.fields) + sum(kind in QUOTED_TYPES for kind in schema.fields.values())
    filled = (_follows(record, schema) & _at_most_keys(text, len(schema.fields))
              & (_occurrences(text, '"') == 2 * quoted))
    for name in schema.nullable:
        filled = filled & record[name].isNotNull()
    for name, field_type in schema.fields.items():
        if field_type == "string":
            filled = filled & ~record[name].startswith("{") & ~record[name].startswith("[")
    return filled


def _ends_with_its_object(text):
    """Spark Column: true where the text's only `}` is its last byte, so an object that starts the
    text ends with it (nothing follows it, which Spark's reader would ignore)."""
    return text.endswith("}") & (_occurrences(text, "}") == 1)


def _outside_fused_loop(column):
    """`column`, evaluated on its own for each row that reaches it rather than compiled into
    Spark's fused per-row loop. The examination's checks are long: inside that loop they push
    its method past the JIT's 8,000-byte limit (Spark logs "Generated method too long to be JIT
    compiled"), and then every row, not only the ones examined, runs in the JVM's interpreter.
    A higher-order function is never compiled into the loop, so this one-element transform is
    the fence."""
    from pyspark.sql import functions as F

    return F.try_element_at(F.transform(F.array(F.lit(0)), lambda _: column), F.lit(1))


def classify(raw, versions: list[Schema], max_record_bytes: int, keyed: bool = True):
    """`raw` plus `record` (struct of the typed fields), `unknown_fields` (names no schema
    declares) and `reject_reason` (null = accepted). `versions`: the source's schemas, newest
    first; with more than one, a record is checked against the one its version names, and
    `record` has the fields of all (null where its version has none).

    Fast path: Spark's JSON reader parses every payload once into the typed record (strictly:
    no single-quoted strings). A record passes untouched when every declared field is filled
    with a plain value, its text shows no more keys than the schema declares (so each
    declared name once, and nothing else: no duplicate, no undeclared key, without listing the
    keys), nothing follows the object, and the cheap checks hold. Only the others are examined
    again, field by field (as a Variant), to name the first problem. A record whose only nulls are in nullable fields is accepted when that
    examination finds nothing (the reader also gives null for a value of the wrong type, so a
    null alone proves nothing). The steps are separate projections so the parsed record is
    computed once, not once per field.
    """
    from pyspark.sql import functions as F

    schema = versions[0] if len(versions) == 1 else merged_schema(versions)
    ddl = ", ".join(f"`{name}` {kind}" for name, kind in schema.fields.items())  # spec types are Spark SQL types
    parsed = (raw.withColumn("_text", F.col("value").cast("string"))
              .withColumn("record", F.from_json("_text", ddl, {"allowSingleQuotes": "false"})))
    record, text, keys = F.col("record"), F.col("_text"), F.col("_keys")
    cheap = F.col("value").isNotNull() & (F.length("value") <= max_record_bytes) & ~_bad_encoding(text)
    for name, field_type in schema.fields.items():
        if field_type in OUT_OF_BOUNDS_REASON:
            cheap = cheap & ~F.coalesce(_out_of_bounds(record[name], field_type), F.lit(False))
    if keyed:
        cheap = cheap & F.col("key").isNotNull() & (F.col("key").cast("string") == record[schema.key].cast("string"))
    # With several versions every record is examined: only the examination checks each field
    # against the version the record names (the reader parsed it with all versions' fields).
    exact = _exactly_filled(record, text, schema) if len(versions) == 1 else F.lit(False)
    fast = F.coalesce(cheap & text.startswith("{") & _ends_with_its_object(text) & exact, F.lit(False))
    # Spark's reader accepted it apart from nulls in nullable fields, yet neither the fast path
    # nor any field check decides: it passes. Otherwise the reader refused it: `unparseable`.
    follows_one = F.lit(False)
    for version in versions:
        follows_one = follows_one | _follows(record, version)
    passes = cheap & F.ltrim(text).startswith("{") & ~_duplicate_key(keys) & follows_one
    if schema.unknown_fields == "quarantine":
        passes = passes & (F.size("unknown_fields") == 0)
    unexplained = F.when(~passes, F.lit("unparseable"))
    # The records examined are parsed as a Variant once, and each field taken out of it once, in
    # projections of their own (a value used by several checks would otherwise be computed for each).
    values = {name: f"_value{index}" for index, name in enumerate(schema.fields)}
    reasons = _reasons(text, F.col("_variant"), {name: F.col(column) for name, column in values.items()}, versions,
                       schema, max_record_bytes, keyed)
    detailed = _outside_fused_loop(F.coalesce(_first(reasons), unexplained))
    no_names = F.array().cast("array<string>")
    return (parsed.withColumn("_fast", fast)
            .withColumn("_keys", F.when(~F.col("_fast"), F.json_object_keys(text)))  # listed once, if examined
            .withColumn("unknown_fields", F.when(F.col("_fast"), no_names).otherwise(_unknown_fields(keys, schema)))
            .withColumn("_variant", F.when(~F.col("_fast"), F.try_parse_json(text)))
            .withColumns({column: F.variant_get("_variant", _path(name), "variant") for name, column in values.items()})
            .withColumn("reject_reason", F.when(F.col("_fast"), F.lit(None).cast("string")).otherwise(detailed))
            .drop("_text", "_keys", "_variant", "_fast", *values.values()))
