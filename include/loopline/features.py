"""Model features from entity rows: declared in the spec, code only where declarations end.

A spec declares its model inputs (numeric, boolean and categorical columns), the columns
built-in transforms derive (hour of day, day of week, month, ratio, equals), and optionally
a feature module beside the spec (`include/pipelines/<module>.py`): a pure pandas function
`rows -> frame of new columns`. Categoricals get a vocabulary, declared or learned from the
training rows; unseen values become missing, so a model and the data it scores always agree
on category codes. The resolved features and the module's file are stored with every model
(loopline.models), so a registered version scores with the code it was trained with.
"""
from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import pandas as pd

    from loopline.spec import Schema

MAX_LEARNED_CATEGORIES = 200
DeriveFunction = Callable[["pd.DataFrame"], "pd.DataFrame"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Transform(_Strict):
    """One built-in transform (exactly one key): no strings are evaluated."""

    hour_of_day: str | None = Field(None, description="timestamp column -> hour 0-23")
    day_of_week: str | None = Field(None, description="timestamp column -> 0 (Monday) .. 6")
    month: str | None = Field(None, description="timestamp column -> 1 .. 12")
    ratio: tuple[str, str] | None = Field(None, description="[numerator, denominator]; NaN where it is 0")
    equals: tuple[str, str | int | float | bool] | None = Field(None, description="[column, value] -> 1.0 / 0.0")

    @model_validator(mode="after")
    def _exactly_one(self) -> "Transform":
        if len(self.model_fields_set) != 1:
            raise ValueError(f"give exactly one transform of {sorted(type(self).model_fields)}")
        return self

    @property
    def kind(self) -> str:
        (kind,) = self.model_fields_set
        return kind

    @property
    def inputs(self) -> list[str]:
        argument = getattr(self, self.kind)
        return [argument] if self.kind in ("hour_of_day", "day_of_week", "month") else \
            [argument[0], argument[1]] if self.kind == "ratio" else [argument[0]]

    def apply(self, rows: "pd.DataFrame") -> "pd.Series":
        import pandas as pd

        argument = getattr(self, self.kind)
        if self.kind in ("hour_of_day", "day_of_week", "month"):
            moment = pd.to_datetime(rows[argument], utc=True).dt
            values = {"hour_of_day": moment.hour, "day_of_week": moment.dayofweek, "month": moment.month}[self.kind]
        elif self.kind == "ratio":
            denominator = rows[argument[1]].astype("float64")
            values = rows[argument[0]].astype("float64") / denominator.where(denominator != 0)
        else:
            values = rows[argument[0]] == argument[1]
        return values.astype("float64")


class FeatureCode(_Strict):
    """A feature module beside the spec: `function(rows) -> DataFrame` of the `adds` columns."""

    module: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="include/pipelines/<module>.py")
    function: str = Field("derive", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    reads: list[str] = Field(description="entity fields the function reads (all a model's stored rows keep)")
    adds: list[str] = Field(description="the columns it returns")


class Features(_Strict):
    numeric: list[str] = []
    boolean: list[str] = []
    categorical: dict[str, list[str] | Literal["learn"]] = Field(
        {}, description="column -> its vocabulary, or 'learn' (from the training rows, stored with the model)")
    derived: dict[str, Transform] = Field({}, description="new column -> one built-in transform")
    code: FeatureCode | None = None

    @property
    def columns(self) -> list[str]:
        """The model's input columns, in order."""
        return [*self.numeric, *self.boolean, *self.categorical]

    @property
    def made(self) -> list[str]:
        """Columns derived or added by code (not read from the entity rows)."""
        return [*self.derived, *(self.code.adds if self.code else [])]

    def source_columns(self) -> list[str]:
        """The entity fields the features are built from: what a model's stored rows keep
        (and all they keep, so e.g. customer ids never leave the on-prem tier this way)."""
        read = [c for c in self.columns if c not in self.made]
        read += [i for t in self.derived.values() for i in t.inputs if i not in self.made]
        read += self.code.reads if self.code else []
        return list(dict.fromkeys(read))

    def check_against(self, schema: "Schema", path: str) -> None:
        """Refuse features that read fields the entity schema lacks, or make unused columns."""
        duplicated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if duplicated:
            raise ValueError(f"{path}: {duplicated} listed twice among numeric/boolean/categorical")
        clash = sorted(set(self.made) & set(schema.fields))
        if clash:
            raise ValueError(f"{path}: derived/code columns {clash} would replace fields of the same name")
        unknown = sorted(set(self.source_columns()) - set(schema.fields))
        if unknown:
            raise ValueError(f"{path}: {unknown} are neither fields of schema {schema.name} "
                             f"{sorted(schema.fields)} nor derived or code columns")
        unused = sorted(set(self.made) - set(self.columns) - {i for t in self.derived.values() for i in t.inputs})
        if unused:
            raise ValueError(f"{path}: {unused} are made but not model inputs: list them under numeric, boolean "
                             "or categorical (or remove them)")
        if not self.columns:
            raise ValueError(f"{path}: no model inputs (numeric, boolean, categorical)")

    @property
    def learns(self) -> bool:
        return any(v == "learn" for v in self.categorical.values())


def load_function(path: Path, function: str) -> DeriveFunction:
    """The feature function of a module file, imported under a name unique to its content, so
    two versions of one module (the spec's and a registered model's) never shadow each other."""
    source = path.read_bytes()
    name = f"loopline_feature_code_{path.stem}_{hashlib.sha256(source).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, function, None)):
        raise AttributeError(f"feature module {path.name} has no function {function}(rows)")
    return getattr(module, function)


@dataclass(frozen=True)
class FeatureBuilder:
    """Builds a model's feature frame from entity rows: the one path for training and scoring."""

    features: Features
    derive: DeriveFunction | None = None
    code_file: Path | None = None  # the feature module file, logged with the model

    @classmethod
    def for_spec(cls, features: Features, pipelines_dir: Path) -> "FeatureBuilder":
        """The spec's features with the feature module as it is now in the pipelines folder."""
        if features.code is None:
            return cls(features)
        path = pipelines_dir / f"{features.code.module}.py"
        if not path.exists():
            raise FileNotFoundError(f"features.code.module: {path.name} not found in {pipelines_dir}")
        return cls(features, load_function(path, features.code.function), path)

    def _frame(self, rows: "pd.DataFrame") -> "pd.DataFrame":
        """The entity rows plus every derived and code column."""
        frame = rows.copy()
        for column, transform in self.features.derived.items():
            frame[column] = transform.apply(frame)
        if self.derive is not None:
            added = self.derive(frame[self.features.code.reads].copy())
            missing = sorted(set(self.features.code.adds) - set(added.columns))
            if missing:
                raise ValueError(f"feature function {self.features.code.module}.{self.features.code.function} did "
                                 f"not return {missing}")
            for column in self.features.code.adds:
                frame[column] = added[column].to_numpy()
        return frame

    def learned(self, rows: "pd.DataFrame") -> "FeatureBuilder":
        """The same builder with every 'learn' vocabulary taken from `rows` (the training split)."""
        if not self.features.learns:
            return self
        frame = self._frame(rows)
        vocabularies: dict[str, Any] = {}
        for column, vocabulary in self.features.categorical.items():
            if vocabulary == "learn":
                counts = frame[column].dropna().astype(str).value_counts()
                vocabulary = sorted(counts.index[:MAX_LEARNED_CATEGORIES])
            vocabularies[column] = vocabulary
        return FeatureBuilder(self.features.model_copy(update={"categorical": vocabularies}), self.derive,
                              self.code_file)

    def build(self, rows: "pd.DataFrame") -> "pd.DataFrame":
        """Feature frame in the spec's column order; pure, no I/O."""
        import pandas as pd

        if self.features.learns:
            raise ValueError("categorical vocabularies marked 'learn' must be learned first (FeatureBuilder.learned)")
        frame = self._frame(rows)
        built = pd.DataFrame(index=rows.index)
        for column in self.features.numeric:
            built[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        for column in self.features.boolean:
            built[column] = frame[column].astype("float64")
        for column, vocabulary in self.features.categorical.items():
            values = frame[column].astype("string").astype(object).where(frame[column].notna(), None)
            built[column] = pd.Categorical(values, categories=vocabulary)
        return built[self.features.columns]
