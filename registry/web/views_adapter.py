"""The adapter page, the version page (with its live status) and the owners' actions."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from adapters_client.pipelines import SUPPORTED_HEAD_TYPES

from ..choices import FINAL_STATUSES, WRITE_ROLES
from ..errors import RegistryError
from ..models import Adapter
from ..permissions import role_in
from ..services import versions as version_service
from . import queries, trying
from .readme import readme_text
from .forms import DescriptionForm, TryForm

TRY_HEADS = SUPPORTED_HEAD_TYPES  # the worker runs the client's pipelines: one list of head types


def _adapter_or_404(user, pk: int) -> Adapter:
    adapter = queries.visible_adapter(user, pk)
    if adapter is None:
        raise Http404("no such adapter")
    return adapter


def _can_write(user, adapter: Adapter) -> bool:
    return role_in(user, adapter.organisation) in WRITE_ROLES


def _default_of(adapter: Adapter, versions: list) -> object | None:
    """The version a plain load resolves to (see registry.querysets.default_version), without a query."""
    chosen = next((v for v in versions if v.pk == adapter.default_version_id), None)
    if chosen is not None and chosen.is_resolvable_by_default:
        return chosen
    return next((v for v in versions if v.is_resolvable_by_default), None)


# how the pipeline of a head type is called, for the page's snippet (adapters_client.pipelines picks the pipeline)
_PIPELINE_CALLS = {
    "classification": ('classify', 'classify(["A warm, funny and moving film."])  # [{"label": ..., "score": ...}]'),
    "multilabel_classification": ('classify', 'classify("A warm, funny and moving film.", top_k=None)  # every label'),
    "tagging": ('tag', 'tag("George Washington went to Washington.")  # a label per token'),
    "causal_lm": ('generate', 'generate("Once upon a time")  # {"generated_text": ...}'),
    "seq2seq_lm": ('generate', 'generate("Once upon a time")  # {"generated_text": ...}'),
}


def snippets(adapter: Adapter, head_type: str | None = None) -> dict:
    """Copyable usage: load the adapter, and (when its head has a pipeline) run it on a text."""
    ident, backbone = adapter.identifier, adapter.model_name
    python = (f'import adapters_client\n\nmodel = adapters_client.load(\n    "{ident}",\n'
              f'    model_name="{backbone}",\n)')
    if head_type in _PIPELINE_CALLS and head_type in SUPPORTED_HEAD_TYPES:
        name, call = _PIPELINE_CALLS[head_type]
        python += f"\n{name} = adapters_client.pipeline(model)\n{call}"
    return {"python": python, "cli": f"adapters-client download {ident} \\\n    --model-name {backbone}"}


@require_GET
def adapter_page(request, pk: int):
    adapter = _adapter_or_404(request.user, pk)
    versions = queries.adapter_versions(adapter)
    current = next((v for v in versions if v.pk == adapter.current_version_id), None)
    reported = current if current and current.validation_report else next(
        (v for v in versions if v.validation_report), None)
    params, exact = queries.trainable_parameters(current) if current else (None, False)
    return render(request, "web/adapter.html", {
        "adapter": adapter, "versions": versions, "current": current, "default": _default_of(adapter, versions),
        "reported": reported, "report": reported.validation_report if reported else None,
        "parameters": params, "parameters_exact": exact, "size": queries.version_size(current) if current else None,
        "snippets": snippets(adapter, queries.head_type(current)),
        "can_write": _can_write(request.user, adapter),
        "readme": readme_text(current),
        "can_try": queries.is_valid(current) and queries.head_type(current) in TRY_HEADS,
        "try_form": TryForm(),
    })


def _version_or_404(adapter: Adapter, version: str):
    found = adapter.versions.filter(version=version).prefetch_related("files").first()
    if found is None:
        raise Http404("no such version")
    return found


@require_GET
def version_page(request, pk: int, version: str):
    adapter = _adapter_or_404(request.user, pk)
    found = _version_or_404(adapter, version)
    params, exact = queries.trainable_parameters(found)
    return render(request, "web/version.html", {
        "adapter": adapter, "version": found, "report": found.validation_report or None,
        "final": found.status in FINAL_STATUSES, "parameters": params, "parameters_exact": exact,
        "size": queries.version_size(found), "can_write": _can_write(request.user, adapter),
        "snippets": snippets(adapter, queries.head_type(found)),
    })


@require_GET
def version_status(request, pk: int, version: str):
    """What the version page polls until the status is final."""
    adapter = _adapter_or_404(request.user, pk)
    found = adapter.versions.filter(version=version).values("status", "yanked", "error_code").first()
    if found is None:
        raise Http404("no such version")
    response = JsonResponse({**found, "final": found["status"] in FINAL_STATUSES})
    response["Cache-Control"] = "no-store"
    return response


def _owned_or_404(request, pk: int) -> Adapter:
    """The adapter when the user may write it; 404 for the invisible, 403 for readers."""
    adapter = _adapter_or_404(request.user, pk)
    if not _can_write(request.user, adapter):
        raise PermissionDenied("only owners and maintainers of the organisation may change this adapter")
    return adapter


@login_required
@require_POST
def yank_version(request, pk: int, version: str):
    adapter = _owned_or_404(request, pk)
    try:
        if request.POST.get("undo"):
            version_service.unyank(adapter, version)
            messages.success(request, f"Version {version} is no longer yanked.")
        else:
            version_service.yank(adapter, version, request.POST.get("reason", ""))
            messages.success(request, f"Version {version} was yanked: plain loads skip it now.")
    except RegistryError as exc:
        messages.error(request, exc.detail)
    return redirect("web:adapter", pk=adapter.pk)


@login_required
@require_POST
def set_default(request, pk: int):
    adapter = _owned_or_404(request, pk)
    chosen = request.POST.get("version") or None
    try:
        version_service.set_default_version(adapter, chosen)
        messages.success(request, f"The default version is now {chosen or 'the newest valid one'}.")
    except RegistryError as exc:
        messages.error(request, exc.detail)
    return redirect("web:adapter", pk=adapter.pk)


@login_required
def edit_description(request, pk: int):
    adapter = _owned_or_404(request, pk)
    form = DescriptionForm(request.POST or None, initial={"description": adapter.description})
    if request.method == "POST" and form.is_valid():
        row = Adapter.objects.get(pk=adapter.pk)
        row.description = form.cleaned_data["description"]
        row.save(update_fields=["description", "updated_at"])  # a save: the API's cache is invalidated
        messages.success(request, "The description was saved.")
        return redirect("web:adapter", pk=adapter.pk)
    return render(request, "web/edit_description.html", {"adapter": adapter, "form": form})


@require_POST
def try_adapter(request, pk: int):
    """Run the adapter's current version on a short text through a worker; show its labels, tokens or text."""
    adapter = _adapter_or_404(request.user, pk)
    current = adapter.versions.filter(pk=adapter.current_version_id).first()
    form = TryForm(request.POST)
    context = {"adapter": adapter, "form": form, "result": None, "error": None}
    status = 200
    if not (queries.is_valid(current) and queries.head_type(current) in TRY_HEADS):
        context["error"], status = ("This adapter cannot be tried here: the box runs a valid version with a "
                                    "classification, tagging or language-modelling head."), 400
    elif form.is_valid():
        caller = f"user:{request.user.pk}" if request.user.is_authenticated else f"ip:{request.META.get('REMOTE_ADDR')}"
        try:
            trying.check_rate(caller)
            context["result"] = trying.run(current.pk, form.cleaned_data["text"])
        except RegistryError as exc:
            context["error"], status = exc.detail, exc.status
    else:
        status = 400
    return render(request, "web/try.html", context, status=status)
