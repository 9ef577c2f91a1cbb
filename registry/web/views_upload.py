"""The upload form: the API's streaming parser and limits, then the same upload service.

The body is parsed by HubMultiPartParser into files streamed to disk (LimitedUploadHandler)
before the CSRF check reads the form, so the check happens on the parsed fields; nothing is
stored before it passes. Service errors are shown next to the field they name.
"""

from __future__ import annotations

from contextlib import nullcontext

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from rest_framework.exceptions import ParseError

from ..errors import RegistryError
from ..models import Subtask
from ..services import upload as upload_service
from ..uploadhandlers import HubMultiPartParser, LimitedUploadHandler
from . import queries
from .forms import UploadForm

# Service error fields that are not form fields, and the form field they belong to.
FIELD_FOR = {"identifier": "subtask", "sha256": "files"}


def _form(request, data=None, files=None) -> UploadForm:
    subtasks = Subtask.objects.select_related("task").order_by("task__name", "name")
    return UploadForm(data, files, organisations=queries.writable_organisations(request.user), subtasks=subtasks)


@csrf_exempt  # checked by _post once the body is parsed (see the module docstring)
@login_required
def upload(request):
    if request.method != "POST":
        return render(request, "web/upload.html", {"form": _form(request)})
    handler = LimitedUploadHandler(request)
    request.upload_handlers = [handler]
    try:
        if request.content_type == "multipart/form-data":
            try:
                parsed = HubMultiPartParser().parse(
                    request, request.META.get("CONTENT_TYPE", ""), {"request": request, "encoding": request.encoding}
                )
            except (RegistryError, ParseError) as exc:
                return _refused_before_parse(request, exc)
            request._post, request._files = parsed.data, parsed.files
        return _post(request)
    finally:
        handler.cleanup()


@csrf_protect
def _post(request):
    form = _form(request, request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "web/upload.html", {"form": form}, status=400)
    data = form.cleaned_data
    files, archive = data["files"], data["archive"]
    if files and archive:
        form.add_error("archive", "Send either the files or one archive, not both.")
    elif not files and not archive:
        form.add_error("files", "Choose the adapter's files or an archive of its folder.")
    if form.errors:
        return render(request, "web/upload.html", {"form": form}, status=400)
    try:
        with upload_service.unpacked_archive(archive) if archive else nullcontext(files) as incoming:
            result = upload_service.upload_version(
                request.user, None, form.identifier, incoming, model_name=data["model_name"],
                version=data["version"], claimed_score=data["claimed_score"], description=data["description"],
                license=data["license"], visibility=data["visibility"],
            )
    except RegistryError as exc:
        _attach(form, exc)
        return render(request, "web/upload.html", {"form": form}, status=exc.status)
    version = result.version
    return redirect("web:version", pk=version.adapter_id, version=version.version)


def _attach(form: UploadForm, exc: RegistryError) -> None:
    field = exc.extra.get("field") or ("files" if exc.extra.get("filename") else None)
    field = FIELD_FOR.get(field, field)
    if field not in form.fields:
        field = "files" if exc.extra.get("filename") else None
    form.add_error(field, f"{exc.detail} ({exc.code})")


def _refused_before_parse(request, exc):
    """A body the parser refused (too large, bad file name): nothing was stored, show why."""
    detail = getattr(exc, "detail", str(exc))
    error = f"{detail} ({getattr(exc, 'code', 'invalid_upload')})"
    return render(request, "web/upload.html", {"form": _form(request), "error": error},
                  status=getattr(exc, "status", 400))
