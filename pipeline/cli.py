"""Small helpers shared by the command-line entry points."""
from __future__ import annotations

import sys

from absl import flags

HELP_ARGS = ("-h", "--help", "--helpshort")


def exit_on_help(argv: list[str], module_name: str, epilog: str = "") -> None:
    """Prints the module's docstring and its flags, then exits 0, when help is asked for.

    (absl's own --help exits with status 1; asking for help is not an error.)
    """
    if not any(a in HELP_ARGS for a in argv[1:]):
        return
    module = sys.modules[module_name]
    print((module.__doc__ or "").rstrip() + "\n")
    print(flags.FLAGS.module_help(module))
    if epilog:
        print("\n" + epilog)
    sys.exit(0)


def parse_known(argv: list[str], module_name: str, epilog: str = "") -> list[str]:
    """absl flags_parser: our flags from their defaults; returns argv[0] plus the rest."""
    exit_on_help(argv, module_name, epilog)
    flags.FLAGS.unparse_flags()
    try:
        return flags.FLAGS(argv, known_only=True)
    except flags.Error as e:
        print(f"error: {e}\nRun with --help to see every flag.", file=sys.stderr)
        sys.exit(2)


def parse_strict(argv: list[str], module_name: str) -> list[str]:
    """absl flags_parser for entry points that take no foreign flags."""
    exit_on_help(argv, module_name)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}\nRun with --help to see every flag.", file=sys.stderr)
        sys.exit(2)
