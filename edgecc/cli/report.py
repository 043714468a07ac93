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
    results: Annotated[Path, typer.Argument(help="a JSON file written by compare --json")],
    html_out: HtmlOpt = None,
) -> None:
    """Re-render a saved comparison (compare --json) as a table, or as HTML with --html."""
    from ..report.html import render_compare, write_html
    from ..report.table import compare_table

    try:
        data = CompareReport.model_validate_json(results.read_bytes())
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
