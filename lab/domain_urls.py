"""The domain labs' routes, /lab/<domain>/..., named `lab:domain-<name>` (lab.urls includes them). The domain is
one of the three in the pattern itself, so any other path segment is a plain 404 and never reaches a view."""

from django.urls import re_path

from lab import domain_views

DOMAIN = r"^lab/(?P<domain>ledger|orderbook|document)/"

urlpatterns = [
    re_path(DOMAIN + r"$", domain_views.page, name="domain-page"),
    re_path(DOMAIN + r"state/$", domain_views.state, name="domain-state"),
    re_path(DOMAIN + r"command/$", domain_views.command, name="domain-command"),
    re_path(DOMAIN + r"lag/$", domain_views.lag, name="domain-lag"),
    re_path(DOMAIN + r"snapshot/$", domain_views.snapshot, name="domain-snapshot"),
    re_path(DOMAIN + r"rebuild/$", domain_views.rebuild, name="domain-rebuild"),
    re_path(DOMAIN + r"read-model/$", domain_views.late_model, name="domain-late-model"),
    re_path(DOMAIN + r"time-travel/$", domain_views.time_travel, name="domain-time-travel"),
    re_path(r"^lab/(?P<domain>orderbook)/restart/$", domain_views.restart, name="domain-restart"),
]
