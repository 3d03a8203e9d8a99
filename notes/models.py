from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

# 20,000 characters after newline normalisation. The textarea's maxlength (UTF-16 units, at most 3 UTF-8
# bytes each) keeps a full note plus the form's other fields under DATA_UPLOAD_MAX_MEMORY_SIZE (64 KiB)
# when sent as multipart, so a browser can never build a save the server refuses for size alone.
NOTE_MAX_CHARS = 20_000


class Note(models.Model):
    """One learner's private note on one concept. The UUID key keeps note addresses unguessable."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes")
    concept_slug = models.CharField(max_length=80)
    body = models.TextField(blank=True, max_length=NOTE_MAX_CHARS)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "concept_slug"], name="one_note_per_learner_concept")]
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"Note on {self.concept_slug}"
