from django.urls import path

from notes import views

app_name = "notes"

urlpatterns = [
    path("", views.mine, name="mine"),
    path("export.md", views.export, name="export"),
    path("concept/<slug:slug>/", views.edit, name="edit"),
    path("<uuid:pk>/", views.detail, name="detail"),
    path("<uuid:pk>/delete/", views.delete, name="delete"),
]
