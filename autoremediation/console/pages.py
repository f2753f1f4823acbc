"""Renders the console's pages: Jinja2 templates with autoescaping on, so every value is escaped."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_FILES = {"console.css": "text/css; charset=utf-8"}


@cache
def _environment() -> Any:
    import jinja2  # only the console pays for it

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    return str(_environment().get_template(template).render(**context))


def static_file(name: str) -> tuple[bytes, str] | None:
    """A file the pages link to, with its type; None for anything else (no path is ever joined)."""
    kind = STATIC_FILES.get(name)
    if kind is None:
        return None
    return (STATIC_DIR / name).read_bytes(), kind
