"""Forms of the web pages. They only shape input: the registry services do the checking."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from ..choices import TokenScope, Visibility

TRY_MAX_CHARS = 500


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="Used only to reset your password.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="A note for yourself, e.g. 'laptop'.")
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ,
                              help_text="Read: private downloads. Upload: push new versions.")
    organisations = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every organisation you belong to.",
    )
    expires_days = forms.IntegerField(min_value=1, max_value=3650, required=False, initial=90,
                                      label="Expires after (days)", help_text="Empty: never expires.")

    def __init__(self, *args, organisations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organisations"].choices = [(o.slug, o.slug) for o in organisations]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input; cleans to a list (possibly empty)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        items = data if isinstance(data, (list, tuple)) else ([data] if data else [])
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class UploadForm(forms.Form):
    """The upload form; the identifier is built from ``subtask`` and ``organisation``."""

    organisation = forms.ChoiceField()
    subtask = forms.ChoiceField(label="Task / subtask")
    model_name = forms.CharField(max_length=200, label="Backbone", required=False,
                                 help_text="e.g. bert-base-uncased; empty: taken from adapter_config.json.")
    version = forms.CharField(max_length=64, initial="1")
    claimed_score = forms.CharField(required=False, max_length=32, help_text="Your own figure on the subtask's metric.")
    license = forms.CharField(required=False, max_length=settings.HUB_MAX_LICENSE_CHARS, initial="apache-2.0")
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PUBLIC)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}),
                                  max_length=settings.HUB_MAX_DESCRIPTION_CHARS, help_text="Markdown.")
    files = MultipleFileField(
        required=False,
        help_text="adapter_config.json and adapter.safetensors "
                  "(+ head_config.json, model_head.safetensors, README.md).",
    )
    archive = forms.FileField(required=False, help_text="Or one .zip / .tar.gz of the adapter folder.")

    def __init__(self, *args, organisations=(), subtasks=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organisation"].choices = [(o.slug, o.name or o.slug) for o in organisations]
        self.fields["subtask"].choices = [(s.path, f"{s.task.name} \u2013 {s.name} ({s.path})") for s in subtasks]

    @property
    def identifier(self) -> str:
        return f"{self.cleaned_data['subtask']}@{self.cleaned_data['organisation']}"


class DescriptionForm(forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 12}),
                                  max_length=settings.HUB_MAX_DESCRIPTION_CHARS, help_text="Markdown.")


class TryForm(forms.Form):
    text = forms.CharField(max_length=TRY_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 3}),
                           help_text=f"Up to {TRY_MAX_CHARS} characters.")
