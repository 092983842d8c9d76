"""Operating Loopline: the command line, bootstrap, tiering, onboarding, spec checks."""
