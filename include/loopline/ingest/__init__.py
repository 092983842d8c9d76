"""Sources to bronze: parse with the spec's schema, land bronze / quarantine / dead letters, reconcile."""
