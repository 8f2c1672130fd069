"""`meshctl`: the domain teams' tool. Checks pull requests offline with the operator's own
engine (validate), scaffolds products (new), shows lineage (lineage), writes a static
catalog (catalog), exports contracts (export) and writes CODEOWNERS (codeowners).

Exit codes: 0 all good, 1 errors or blocking violations, 2 usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from datamesh.meshctl import catalog, codeowners, export, lineage, new, repository, validate

COMMANDS = (validate, new, lineage, catalog, export, codeowners)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="meshctl", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except repository.UsageError as exc:
        print(f"meshctl: {exc}", file=sys.stderr)
        return repository.USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
