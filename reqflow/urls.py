from django.contrib import admin
from django.urls import include, path

from reqflow.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("", include("concepts.urls")),
    path("", include("lab.urls")),
    path("accounts/", include("accounts.urls")),
    path("notes/", include("notes.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "reqflow.dbfailure.bad_request"  # concepts.views.bad_request unless the database failed
handler404 = "concepts.views.page_not_found"
handler500 = "reqflow.dbfailure.server_error"  # concepts.views.server_error unless the database failed
