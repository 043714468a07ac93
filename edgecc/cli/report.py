"""edgecc report: re-render a saved run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from ..errors import BadInputError
from ..report.schema import CompareReport
from .common import HtmlOpt, app, handle_errors, out


@app.command()
@handle_errors
def report(
    results: Annotated[Path, typer.Argument(help="a JSON file written by compare --json or search --json")],
    html_out: HtmlOpt = None,
) -> None:
    """Re-render a saved comparison or search (compare/search --json) as a table, or as HTML with --html."""
    from ..report.html import render_compare, write_html
    from ..report.table import compare_table

    try:
        raw = results.read_bytes()
        if _is_search(raw):
            return _search_report(results, raw, html_out)
        data = CompareReport.model_validate_json(raw)
    except OSError as e:
        raise BadInputError(f"{results}: cannot read: {e.strerror}") from None
    except ValidationError as e:
        first = e.errors()[0]
        raise BadInputError(f"{results}: not a saved edgecc comparison: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if html_out is not None:
        write_html(html_out, render_compare(data))
        out.print(f"wrote {html_out}", markup=False, highlight=False)
    else:
        out.print(compare_table(data))


def _is_search(raw: bytes) -> bool:
    import json

    try:
        data = json.loads(raw)
    except ValueError:
        return False  # the comparison parser says what is wrong with it
    return isinstance(data, dict) and data.get("kind") == "edgecc-search"


def _search_report(results: Path, raw: bytes, html_out: Path | None) -> None:
    import json

    from ..report.html import write_html
    from ..report.search_html import render_search, search_table

    try:
        data = json.loads(raw)
        text = render_search(data) if html_out is not None else None
        table = search_table(data)
    except (ValueError, KeyError, TypeError, ValidationError) as e:
        raise BadInputError(f"{results}: not a saved edgecc search: {e}") from None
    if text is not None:
        write_html(html_out, text)
        out.print(f"wrote {html_out}", markup=False, highlight=False)
    else:
        out.print(table)
