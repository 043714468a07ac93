"""What every command module shares: the Typer app, consoles, common options, error handling."""

from __future__ import annotations

import functools
import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..atomic import write_atomic
from ..api import ProfileSettings
from ..errors import EXIT_BUG, BadInputError, EdgeccError, EdgeccWarning

app = typer.Typer(
    help="Compile ONNX models for edge devices and measure which backend runs them fastest.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="Bundled, seeded models (use them as MODEL with zoo:NAME).", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")

# Piped output (CI logs, files) gets a wide fixed width instead of rich's 80-column default.
out = Console() if Console().is_terminal else Console(width=160)
err = Console(stderr=True) if Console(stderr=True).is_terminal else Console(stderr=True, width=160)

ModelArg = Annotated[str, typer.Argument(help="an .onnx file, or zoo:NAME for a bundled model")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="a target name (edgecc targets); 'host' is this machine")]
ShapeOpt = Annotated[
    Optional[list[str]], typer.Option("--input-shape", help="NAME:D0,D1,... for a dynamic input (repeatable)")
]
TargetsFileOpt = Annotated[Optional[Path], typer.Option("--targets-file", help="a TOML file with more targets")]
HtmlOpt = Annotated[Optional[Path], typer.Option("--html", help="also write a self-contained HTML report here")]
JsonOpt = Annotated[Optional[Path], typer.Option("--json", help="also write the result as JSON to this path ('-' for stdout)")]
MetricOpt = Annotated[Optional[str], typer.Option("--metric", help="the metric accuracy drops are measured in: top1, top5, agreement, psnr, cosine, an installed edgecc.metrics plugin, or MODULE:FUNCTION (default: top1 with labels, else agreement; docs/metrics.md)")]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, EdgeccWarning):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:  # a library's warning: keep Python's usual form
        err.print(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), highlight=False, markup=False)


def handle_errors(fn):
    """Turn an EdgeccError into one line on stderr and its exit code; anything else is a bug (exit 1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", EdgeccWarning)
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except EdgeccError as e:
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception:
            err.print(traceback.format_exc(), highlight=False, markup=False)
            err.print("[bold red]internal error:[/] this is a bug in edgecc; please report it with the traceback above")
            raise typer.Exit(EXIT_BUG) from None

    return wrapper


def write_json(path: Path | None, data: object) -> None:
    if path is None:
        return
    text = json.dumps(data, indent=2) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        return
    write_atomic(path, text)


def split_list(values: Optional[str]) -> list[str] | None:
    return [v.strip() for v in values.split(",") if v.strip()] if values else None


def parse_options(items: Optional[list[str]]) -> dict[str, object]:
    """KEY=VALUE pairs; values are read as JSON when they parse (numbers, true/false), else as strings."""
    options: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInputError(f"malformed --option '{item}': expected KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


# How long and how hard to measure: shared by profile, compare and search.
def profile_settings(warmup: int, runs: int, min_time: float, layer_runs: int) -> ProfileSettings:
    return ProfileSettings(warmup=warmup, runs=runs, min_time_s=min_time, layer_runs=layer_runs)


WarmupOpt = Annotated[int, typer.Option("--warmup", help="untimed runs first")]
RunsOpt = Annotated[int, typer.Option("--runs", help="at least this many timed runs")]
MinTimeOpt = Annotated[float, typer.Option("--min-time", help="and at least this many seconds of timed runs")]
LayerRunsOpt = Annotated[int, typer.Option("--layer-runs", help="runs with per-layer profiling (0: off)")]
MemoryLimitOpt = Annotated[
    Optional[float], typer.Option("--memory-limit", min=0.1, help="GiB a run may use before it is stopped (default: 75% of RAM)")
]
DeviceOpt = Annotated[Optional[str], typer.Option(
    "--device", help="where to run: local (default), ssh://user@host[:port][?python=PATH] (edgecc installed there), "
    "or for profile rpc://HOST:PORT\\[/KEY] (a TVM RPC server or tracker; TVM artifacts)")]


def gib_bytes(value: float | None) -> int | None:
    return None if value is None else int(value * 2**30)
