"""A pipeline at run time: its spec, the service settings, and its lake, built once per task."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from loopline.config import Settings
from loopline.spec import PipelineSpec, load_spec
from loopline.storage import Lake, load_tiers


@dataclass(frozen=True)
class Pipeline:
    spec: PipelineSpec
    settings: Settings
    lake: Lake

    @classmethod
    def load(cls, name: str) -> "Pipeline":
        spec = load_spec(name)
        settings = Settings.from_env()
        return cls(spec, settings, Lake(spec.name, spec.placements, load_tiers()))

    def spark(self):
        from loopline.spark import get_spark

        return get_spark(self.settings)

    def champion_version(self) -> int | None:
        from mlflow import MlflowClient

        from loopline.model_aliases import CHAMPION, alias_version

        return alias_version(MlflowClient(), self.spec.model_name, CHAMPION)

    def scoring_version(self, day: date) -> int | None:
        """The model that scores `day`: the version that first scored it (so reruns reproduce
        the date), else the current champion; None before the first champion exists."""
        from loopline.scoring import recorded_version

        return recorded_version(self.settings.db_url, self.spec.name, day) or self.champion_version()
