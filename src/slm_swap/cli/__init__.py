"""The `slm-swap` command line: each command parses options, calls one library function, renders.

One module per family of commands (`data`, `evaluate`, `decide`, `train`, `serve`); the options they share
are made in `options` from the settings' one declaration, and what they print is in `render`. The group
reads this process's `Runtime` (launcher's rank, verbosity, cache folder) once and hands it to every
command as click's context object.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import click
from rich.text import Text

from slm_swap import __version__
from slm_swap.cli import data, decide, evaluate, serve, train
from slm_swap.cli.render import stderr
from slm_swap.errors import SlmSwapError
from slm_swap.runtime import VERBOSE_ENV, Runtime


class Group(click.Group):
    """Turns user-fixable errors into two lines and exit status 2; bugs keep their traceback."""

    def invoke(self, ctx: click.Context) -> object:
        main_thread = threading.current_thread() is threading.main_thread()  # where signals are handled
        terminate = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
        try:
            return super().invoke(ctx)
        except SlmSwapError as e:
            stderr.print(Text.assemble(("error: ", "bold red"), str(e)))
            sys.exit(e.exit_code)
        except Terminated:
            stderr.print("terminated; rerun the same command to resume where it stopped")
            sys.exit(128 + signal.SIGTERM)
        except KeyboardInterrupt:
            stderr.print("interrupted; rerun the same command to resume where it stopped")
            sys.exit(130)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, terminate)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a scheduler's stop, a container's shutdown), raised as an interrupt so that it
    unwinds like Ctrl-C: locks and temporary files are removed, journals are kept for the rerun."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slm-swap")
@click.option(
    "--verbose",
    is_flag=True,
    envvar=VERBOSE_ENV,
    help="Show the libraries' own progress bars, warnings and per-step training logs.",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Can a small local model replace your hosted LLM on structured output and tool calling?

    Prepare data, evaluate both models on the same examples, decide with evidence whether to fine-tune.
    """
    from slm_swap.console import configure

    configure(verbose)
    ctx.obj = Runtime.from_env(os.environ, verbose=verbose)


for command in (
    data.prepare,
    data.label,
    data.models,
    evaluate.eval_command,
    evaluate.infer,
    evaluate.live,
    evaluate.smoke,
    train.train,
    train.launch,
    serve.serve,
    decide.compare,
    decide.run,
    decide.report,
):
    main.add_command(command)
