"""A tiny document model rendered twice: to Markdown and to one self-contained HTML page.

The report is assembled once as a list of blocks (headings, paragraphs, bullet lists, tables,
images); :func:`to_markdown` links images as files next to ``report.md`` and :func:`to_html`
embeds them as base64 PNG, with inline CSS and no external asset of any kind.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from .tables import TextTable

__all__ = ["Heading", "Paragraph", "Bullets", "Image", "Block", "to_markdown", "to_html"]


@dataclass
class Heading:
    """A section heading (level 1–3)."""

    text: str
    level: int = 2


@dataclass
class Paragraph:
    """Plain text (no markup: it is escaped in HTML)."""

    text: str
    note: bool = False


@dataclass
class Bullets:
    """A bullet list of ``(key, value)`` pairs."""

    items: list[tuple[str, str]]


@dataclass
class Image:
    """A PNG plot; ``file`` is its name next to ``report.md``."""

    png: bytes
    file: str
    alt: str


@dataclass
class Link:
    """A line of text followed by a link to a file of the run folder (relative ``href``)."""

    text: str
    href: str


Block = Heading | Paragraph | Bullets | Image | TextTable | Link


def _markdown_block(block: Block, image_dir: str) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Paragraph):
        return f"> **Note:** {block.text}" if block.note else block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- **{k}:** {v}" for k, v in block.items)
    if isinstance(block, Image):
        return f"![{block.alt}]({image_dir}/{block.file})"
    if isinstance(block, Link):
        return f"{block.text} [{block.href}]({block.href})"
    if isinstance(block, TextTable):
        return f"**{block.title}**\n\n{block.to_markdown()}" if block.show_title else block.to_markdown()
    raise TypeError(f"unknown block {type(block).__name__}")


def to_markdown(blocks: list[Block], image_dir: str) -> str:
    """Markdown text; images are referenced as ``image_dir/<file>``."""
    return "\n\n".join(_markdown_block(b, image_dir) for b in blocks) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3rem}h2{margin-top:2rem;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:.5rem 0 1.2rem;font-size:.88rem}
th,td{border:1px solid #ddd;padding:.3rem .55rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f5f5f5}
caption{caption-side:top;text-align:left;font-weight:600;padding:.2rem 0}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4rem .7rem}
img{max-width:100%;margin:.4rem 1rem .8rem 0;vertical-align:top}
ul{padding-left:1.2rem}
.scroll{overflow-x:auto;max-width:100%}
"""


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        cls = ' class="note"' if block.note else ""
        prefix = "<strong>Note:</strong> " if block.note else ""
        return f"<p{cls}>{prefix}{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        items = "".join(f"<li><strong>{html.escape(k)}:</strong> {html.escape(v)}</li>" for k, v in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">'
    if isinstance(block, Link):
        href = html.escape(block.href, quote=True)
        return f'<p>{html.escape(block.text)} <a href="{href}">{html.escape(block.href)}</a></p>'
    if isinstance(block, TextTable):  # wide tables scroll inside the page instead of widening it
        table = block.to_html()
        if block.show_title:
            table = table.replace("<table>", f"<table><caption>{html.escape(block.title)}</caption>", 1)
        return f'<div class="scroll">{table}</div>'
    raise TypeError(f"unknown block {type(block).__name__}")


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML page: inline CSS, images as ``data:`` URIs, no scripts."""
    body = "\n".join(_html_block(b) for b in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
