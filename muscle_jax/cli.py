"""The one command-line convention of every entry point: absl flags, and failures as one line.

Each command module defines its flags in a `define_flags()` function and ends with

    if __name__ == "__main__":
        cli.run(main, define_flags)

so that importing the module (tests, other tools) defines no flags, and two commands' flags
of the same name never collide. `run` adds `--verbose`. A command that fails prints one
line, `error: <what went wrong>`, to stderr and exits with status 1; the traceback is shown
only with `--verbose`. A bad flag or config override is one line too, with status 2. Ctrl-C
exits with status 130 after the command's own cleanup (its `finally` blocks) has run.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Callable

from absl import app, flags

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def one_line(error: BaseException) -> str:
    """The message of `error` on one line (a KeyError's message without its quotes)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    message = " ".join(str(message).split()) or type(error).__name__
    return message


def run(main: Callable[[list[str]], None], define_flags: Callable[[], None] | None = None) -> None:
    """Defines the command's flags and `--verbose`, parses them and runs `main`, ending any
    failure with one line and a non-zero exit status (module docstring)."""
    if define_flags is not None:
        define_flags()
    if "verbose" not in flags.FLAGS:
        flags.DEFINE_boolean("verbose", False, "On failure, print the whole traceback, not only the cause.")

    def guarded(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        logging.getLogger().setLevel(logging.INFO)
        # orbax and tfds log every file operation through absl at INFO; keep the command's own lines readable.
        logging.getLogger("absl").setLevel(logging.WARNING)
        try:
            main(argv)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as error:  # noqa: BLE001 — every failure ends as one line, by design
            if flags.FLAGS.verbose:
                traceback.print_exc()
            print(f"error: {one_line(error)}", file=sys.stderr)
            sys.exit(EXIT_FAILURE)

    app.run(guarded, flags_parser=_parse_flags)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a config override that names no field (which ml_collections
    raises as an AttributeError) reported like any other bad flag: one line, exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        message = one_line(error)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        text = one_line(error).replace("\\n", " ")
        suggestion = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
        if suggestion:
            message = f"a --config override names no field: {suggestion.group(2)} (did you mean {suggestion.group(1)}?)"
        else:
            message = "a --config override names no field: " + re.sub(r"[\\'\"]", "", text)
    print(f"error: {message} (--helpfull lists the flags)", file=sys.stderr)
    sys.exit(EXIT_USAGE)
