"""The Typer app: registers the commands and turns errors into one line and an exit code.

Library code raises :class:`~mtgc_cli.errors.MtgcError`; here, at the edge, it becomes
``mtgc: error: <message>`` on stderr with exit code 2 (bad input) or 1 (a failure during a run).
Click's own usage errors get the same one-line form. ``--debug`` (or ``MTGC_DEBUG=1``) shows
the traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from mtgc_cli import __version__
from mtgc_cli.cli import collect, compare, evaluate, options, presets, train
from mtgc_cli.errors import MtgcError, one_line
from mtgc_cli.stop import Terminated, interrupts


def _debug_requested(args: list[str]) -> bool:
    return "--debug" in args or os.environ.get("MTGC_DEBUG", "") not in ("", "0")


def fail(message: str, code: int) -> None:
    # typer.echo, not Rich: Rich would wrap a long message over several lines.
    typer.echo(f"mtgc: error: {one_line(message)}", err=True)
    sys.exit(code)


def _interrupted(exc: BaseException | None) -> None:
    if isinstance(exc, Terminated):
        fail("terminated", 128 + signal.SIGTERM)
    fail("interrupted", 128 + signal.SIGINT)


class OneLineErrors(TyperGroup):
    def main(self, args: list[str] | None = None, *rest: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        options.record_invocation(argv)
        kwargs["standalone_mode"] = False
        try:
            with interrupts():
                result = super().main(argv, *rest, **kwargs)
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        except typer.Abort as exc:  # Click turns a KeyboardInterrupt into Abort
            _interrupted(exc.__cause__ or exc.__context__)
        except typer.TyperException as exc:  # Typer's usage errors (bad option value, unknown option)
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(exc.format_message(), err=True)
                sys.exit(0)
            if _debug_requested(argv):
                raise
            fail(exc.format_message().replace("\n", " "), exc.exit_code)
        except MtgcError as exc:
            if _debug_requested(argv):
                raise
            fail(str(exc).replace("\n", " "), exc.exit_code)
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        except OSError as exc:  # a folder that can't be written, a full disk
            if _debug_requested(argv):
                raise
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", 1)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    help="mtgc: train, evaluate and compare goal-conditioned and multi-task RL agents.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mtgc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """mtgc: train, evaluate and compare goal-conditioned and multi-task RL agents."""


# The commands are plain functions in their own modules (none imports this one), registered here.
# In the order `mtgc --help` has always listed them.
app.command()(compare.compare)
app.command("eval")(evaluate.eval_command)
app.command()(train.train)
app.command()(collect.collect)
app.add_typer(presets.presets_app, name="presets")


def main() -> None:
    app()


if __name__ == "__main__":  # python -m mtgc_cli.cli.app
    main()
