"""Scenarios: one prepared situation per claim of a concept page, as data files in lab/scenarios/data/*.json.

catalog.py  read and validate the files (every problem names its file); the cached catalog
checks.py   `manage.py check` reports each malformed file, and each claim of the page without a scenario
apply.py    load one into a learner's own sandbox: a reset (undoable), then the real commands and controls
"""
