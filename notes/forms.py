from __future__ import annotations

from django import forms

from notes.models import NOTE_MAX_CHARS


class NoteForm(forms.Form):
    # strip=False: leading indentation is Markdown (code blocks), so it must survive a save.
    body = forms.CharField(required=False, strip=False, widget=forms.Textarea)

    def clean_body(self) -> str:
        # Browsers send CRLF line ends but count them as one character for maxlength; store LF so the
        # cap the learner sees in the browser is the cap the server applies.
        body = self.cleaned_data["body"].replace("\r\n", "\n").replace("\r", "\n")
        if len(body) > NOTE_MAX_CHARS:
            raise forms.ValidationError(
                f"Not saved: this note is {len(body):,} characters long and the limit is {NOTE_MAX_CHARS:,}. "
                "Shorten it and it will save; your text is still here.",
                code="too_long",
            )
        return body


class NoteSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, strip=True, label="Search your notes")
