"""Template filters of the web pages: Markdown, sizes, counts, scores and status badges."""

from __future__ import annotations

from html import unescape

from django import template
from django.utils.html import format_html, strip_tags
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from registry.web.markdown import render_markdown

register = template.Library()

STATUS_HINTS = {
    "pending": "waiting for a validation worker",
    "validating": "a worker is checking it now",
    "valid": "loaded on its backbone and checked",
    "rejected": "the validator found a problem with the adapter",
    "error": "validation failed on the hub's side; it will be retried",
    "yanked": "withdrawn by its owner; pinned downloads still work",
}


@register.filter
def markdown(text: str) -> str:
    """Markdown rendered to sanitised HTML (see registry.web.markdown)."""
    return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3


@register.filter
def summary(text: str, length: int = 160) -> str:
    """Plain text of the Markdown ``text`` (markup removed), cut to ``length`` characters."""
    plain = " ".join(strip_tags(render_markdown((text or "")[: length * 4])).split())
    return Truncator(unescape(plain)).chars(int(length))


@register.filter
def filesize(value) -> str:
    """1536 -> '1.5 KB'."""
    if value in (None, ""):
        return "\u2013"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@register.filter
def compact(value) -> str:
    """12345 -> '12.3k', 1200000 -> '1.2M'."""
    if value in (None, ""):
        return "\u2013"
    number = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            return f"{number / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{number:.0f}"


@register.filter
def score(value) -> str:
    """A metric value with 4 digits, or a dash when there is none."""
    if value is None or value == "":
        return "\u2013"
    try:
        return f"{float(value):.4f}".rstrip("0").rstrip(".") if float(value) != 0 else "0"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def short_sha(value: str) -> str:
    return (value or "")[:12]


@register.simple_tag
def status_badge(status: str, yanked: bool = False):
    """A coloured badge with a tooltip; yanked wins over the validation status."""
    key = "yanked" if yanked else (status or "pending")
    return format_html(
        '<span class="badge badge-{}" title="{}">{}</span>', key, STATUS_HINTS.get(key, key), key
    )


@register.filter
def pretty_key(value: str) -> str:
    return str(value).replace("_", " ")


@register.filter
def is_mapping(value) -> bool:
    return isinstance(value, dict)


@register.filter
def is_list(value) -> bool:
    return isinstance(value, list)
