"""The lab's endpoints. The paths stay under /lab/ (lab.js and bookmarks know them); the names are `lab:<name>`."""

from django.urls import path

from lab import domain_urls, exchange_views, scenario_views, views

app_name = "lab"

urlpatterns = [
    path("lab/", views.page, name="page"),
    path("lab/command/", views.command, name="command"),
    path("lab/query/", views.query, name="query"),
    path("lab/lag/", views.set_lag, name="lag"),
    path("lab/snapshot-interval/", views.set_snapshot_interval, name="snapshot-interval"),
    path("lab/schema/", views.set_schema, name="schema"),
    path("lab/projector/", views.projector_control, name="projector"),
    path("lab/snapshot/", views.take_snapshot, name="snapshot"),
    path("lab/rebuild/", views.rebuild, name="rebuild"),
    path("lab/replay-rate/", views.set_replay_rate, name="replay-rate"),
    path("lab/retro/", views.retro_model, name="retro"),
    path("lab/reset/", views.reset, name="reset"),
    path("lab/reset/undo/", views.reset_undo, name="reset-undo"),
    path("lab/log/", exchange_views.event_log, name="log"),
    path("lab/time-travel/", exchange_views.time_travel, name="time-travel"),
    path("lab/replay/", exchange_views.replay, name="replay"),
    path("lab/state/", views.state, name="state"),
    path("lab/scenario/", scenario_views.scenario, name="scenario"),
    path("lab/export/", exchange_views.export, name="export"),
    path("lab/import/", exchange_views.import_log, name="import"),
    path("lab/mode/", exchange_views.switch_mode, name="mode"),
    path("lab/predict/", views.predict, name="predict"),
    *domain_urls.urlpatterns,
]
