"""Model features from entity rows, the one path for training and scoring.

The spec declares them (loopline.core.spec.Features): model inputs (numeric, boolean and
categorical columns), columns built-in transforms derive (hour of day, day of week, month,
ratio, equals), and optionally a feature module beside the spec (`include/pipelines/<module>.py`):
a pure pandas function `rows -> frame of new columns`. Categoricals get a vocabulary,
declared or learned from the training rows; unseen values become missing, so a model and
the data it scores always agree on category codes. The resolved features and the module's
file are stored with every model (loopline.models.store), so a registered version scores
with the code it was trained with.
"""
from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.core.spec import TIME_PARTS, Features, Transform

if TYPE_CHECKING:
    import pandas as pd

MAX_LEARNED_CATEGORIES = 200
DeriveFunction = Callable[["pd.DataFrame"], "pd.DataFrame"]


def derive_column(transform: Transform, rows: "pd.DataFrame") -> "pd.Series":
    """The column one built-in transform derives from the rows."""
    import pandas as pd

    argument = getattr(transform, transform.kind)
    if transform.kind in TIME_PARTS:
        moment = pd.to_datetime(rows[argument], utc=True).dt
        values = {"hour_of_day": moment.hour, "day_of_week": moment.dayofweek, "month": moment.month}[transform.kind]
    elif transform.kind == "ratio":
        denominator = rows[argument[1]].astype("float64")
        values = rows[argument[0]].astype("float64") / denominator.where(denominator != 0)
    else:
        values = rows[argument[0]] == argument[1]
    return values.astype("float64")


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
            frame[column] = derive_column(transform, frame)
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
