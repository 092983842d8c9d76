"""What routing a contract's batch gives back, whichever engine routed it."""
from __future__ import annotations

from dataclasses import dataclass

REASON_SEPARATOR = "; "  # between the names of the rules a quarantined row breaks, in its `reason`
SAMPLE_SIZE = 5  # values that broke a row rule, kept as evidence (read from the quarantine)
DUPLICATE_RULE = "row:exact_duplicate"


@dataclass(frozen=True)
class Routed:
    per_rule: dict[str, int]  # quarantined rows naming each rule, counted in what was written
    quarantined: int  # rows written to the quarantine
    samples: dict[str, list]  # rule -> the first values that broke it, by source offset
