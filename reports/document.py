"""A report as a list of blocks (headings, text, tables, figures), rendered to Markdown and to HTML.

Building the content once and rendering it twice keeps ``report.md`` and ``report.html``
identical in substance. The HTML embeds its figures as base64 PNGs, so it is one
self-contained file that can be mailed or attached; the Markdown links the PNGs beside it.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports.tables import to_markdown


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str


Block = Heading | Text | Bullets | Table | Figure


@dataclass
class Document:
    """A title and ordered blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Heading(text, level))

    def text(self, text: str) -> None:
        self.blocks.append(Text(text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(Bullets(items))

    def table(self, frame: pd.DataFrame, caption: str = "") -> None:
        self.blocks.append(Table(frame, caption))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(Figure(path, caption))

    # ------------------------------------------------------------------ renderers
    def to_markdown(self, base: Path) -> str:
        """Markdown with figure links relative to ``base`` (the folder the file goes to)."""
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            if isinstance(block, Heading):
                lines += [f"{'#' * block.level} {block.text}", ""]
            elif isinstance(block, Text):
                lines += [block.text, ""]
            elif isinstance(block, Bullets):
                lines += [f"- {item}" for item in block.items] + [""]
            elif isinstance(block, Table):
                lines += ([f"*{block.caption}*", ""] if block.caption else []) + [to_markdown(block.frame), ""]
            else:
                link = Path(block.path).relative_to(base).as_posix()
                lines += [f"![{block.caption}]({link})", "", f"*{block.caption}*", ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        """One self-contained HTML page (figures inlined)."""
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            if isinstance(block, Heading):
                body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
            elif isinstance(block, Text):
                body.append(f"<p>{_inline(block.text)}</p>")
            elif isinstance(block, Bullets):
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
            elif isinstance(block, Table):
                table = block.frame.to_html(index=False, border=0, classes="t", na_rep="n/a")
                body.append((f"<p class='cap'>{_inline(block.caption)}</p>" if block.caption else "") + table)
            else:
                data = base64.b64encode(Path(block.path).read_bytes()).decode()
                body.append(
                    f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(block.caption)}'>"
                    f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
                )
        return _PAGE.format(title=html.escape(self.title), body="\n".join(body))


def _inline(text: str) -> str:
    """Escape, then render Markdown's `code` and **bold**."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table.t {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
table.t th, table.t td {{ padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}
table.t th {{ background: #f4f4f4; }}
figure {{ margin: 1em 0 2em; }} figure img {{ max-width: 100%; }}
figcaption, .cap {{ font-size: 0.9em; color: #555; }}
code {{ background: #f4f4f4; padding: 0 0.2em; }}
</style></head>
<body>
{body}
</body></html>
"""
