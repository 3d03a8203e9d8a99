"""The lab's tools by name: what the page reveals one mission at a time (lab.missions) and what a scenario opens
(lab.scenarios). Each name maps to the DOM id of the element that holds the tool in templates/lab/panel.html."""

from __future__ import annotations

# name -> the id of the element holding it (a stage, a form or a <details> tool)
TOOLS: dict[str, str] = {
    "command": "lab-write",
    "event-log": "lab-log",
    "query": "lab-read",
    "reset": "lab-reset-section",
    "lag": "lab-lag",
    "read-your-writes": "lab-ryw",
    "projector": "lab-projector-form",
    "poison": "lab-poison",
    "rebuild": "lab-rebuild-section",
    "snapshots": "lab-snapshots-section",
    "retro": "lab-retro-section",
    "time-travel": "lab-time-travel",
    "replay": "lab-replay-section",
    "schema": "lab-schema-section",
}

# The core loop, always shown: send a command, see it in the log, query the read model, start again.
CORE_TOOLS = frozenset({"command", "event-log", "query", "reset"})
