from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from notes.models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    """Notes are private: staff with model permissions still see nothing; only superusers can look."""

    list_display = ["concept_slug", "owner", "updated_at"]
    list_filter = ["updated_at"]
    search_fields = ["concept_slug", "owner__username"]
    readonly_fields = ["id", "created_at", "updated_at"]
    raw_id_fields = ["owner"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Note | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Note | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Note | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser
