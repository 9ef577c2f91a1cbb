"""Markdown to safe HTML: raw HTML is escaped by the parser, then the output is sanitised again."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "del", "img",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"align"}, "td": {"align"}}
MAX_MARKDOWN_CHARS = 100_000

# html=False: any HTML in the source (<script>, <img onerror>) is shown as text, never as markup.
_parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def render_markdown(text: str) -> str:
    """Render ``text`` (Markdown) to HTML that is safe to embed: no scripts, handlers or javascript: URLs."""
    html = _parser.render((text or "")[:MAX_MARKDOWN_CHARS])
    return nh3.clean(
        html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )
