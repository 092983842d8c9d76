"""Labelled data, the time split, fitting and recording a run, reproducing a version."""
