"""A pipeline at run time: its spec, the service settings, and its lake, built once per task.

The run context knows no stage: stages take it and ask it for their spec, settings, lake and
Spark session."""
from __future__ import annotations

from dataclasses import dataclass

from loopline.core.config import Settings
from loopline.core.spec import PipelineSpec, load_spec
from loopline.core.storage import Lake, load_tiers


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
        from loopline.core.spark import get_spark

        return get_spark(self.settings)
