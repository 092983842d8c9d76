"""From candidate to champion: the gate, the smoke test, registration, model cards."""
