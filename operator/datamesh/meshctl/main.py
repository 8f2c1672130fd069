"""`meshctl`: the domain teams' tool. Checks pull requests offline with the operator's own
engine (validate), scaffolds products (new), shows lineage (lineage), writes a static
catalog (catalog), exports contracts (export), writes CODEOWNERS (codeowners) and runs a
product's quality checks against a warehouse (test).

Exit codes: 0 all good, 1 errors or blocking violations, 2 usage errors, 3 a fault inside
meshctl itself (the message names a file with the details, to attach to a bug report).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Sequence

from datamesh.meshctl import (
    catalog,
    codeowners,
    export,
    lineage,
    new,
    output,
    repository,
    test,
    validate,
)

COMMANDS = (validate, new, lineage, catalog, export, codeowners, test)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="meshctl", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return top


INTERNAL_ERROR = 3


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except repository.UsageError as exc:
        print(f"meshctl: {exc}", file=sys.stderr)
        return repository.USAGE_ERROR
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours
        output.silence_stdout()
        return 0
    except Exception as exc:
        return internal_error(exc)


def internal_error(exc: BaseException) -> int:
    """A fault of meshctl's, not of the input: one line for the user, the traceback in
    a file for the bug report."""
    with tempfile.NamedTemporaryFile(
        "w", prefix="meshctl-crash-", suffix=".txt", delete=False
    ) as report:
        traceback.print_exception(exc, file=report)
    print(
        f"meshctl: internal error ({type(exc).__name__}: {exc}); this is a bug in meshctl, "
        f"not in your files. Details: {report.name}",
        file=sys.stderr,
    )
    return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
