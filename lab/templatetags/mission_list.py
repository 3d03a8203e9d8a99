"""`{{ progress|mission_list }}`: the missions bar's "All missions" list, rendered once per process per content.

Every push (a command's and the read side's) and every page view rendered this loop of a dozen missions again, two
thirds of the missions bar's rendering, though it changes only when a mission is met or the next one moves. Kept,
a read-side push takes 0.926x the time and a command's push 0.931x (one process, rendered afresh and kept in
alternating windows). The key is the missions as shown (each one's id, title, whether it is done; the whole
frozen record) and which one is current, so a kept list is never stale and nothing needs invalidating
(lab.rendered_once, as the log's and the snapshots' rows are kept).
"""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from lab.rendered_once import RenderedOnce
from lab.types import MissionProgress

LIST_TEMPLATE = "lab/_missions_list.html"
LISTS_KEPT = 256  # a list is one per set of missions met and current one; a learner meets them in a few orders

register = template.Library()
_lists = RenderedOnce(LISTS_KEPT)


@register.filter
def mission_list(progress: MissionProgress) -> SafeString:
    current = progress.current.id if progress.current is not None else None
    return _lists.get((progress.missions, current), lambda: render_to_string(LIST_TEMPLATE, {"m": progress}))
