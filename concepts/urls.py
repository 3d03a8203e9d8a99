from django.urls import path

from concepts import views

app_name = "concepts"

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("concepts/<slug:slug>/", views.concept_detail, name="detail"),
]
