"""The run context and what every stage shares: spec, settings, storage tiers, database, intervals, metrics, alerts."""
