"""Command-line parsing shared by the entry points that use a trained model.

Each of them (evaluate, beam_evaluate, compare, predict, serve, export) keeps its
flags in a ``flags.FlagValues`` of its own, since several define ``--workdir``
and ``trainers.train`` defines it in absl's global flags. ``parse`` gives them
one behaviour: ``--help`` prints the module's docstring and every flag and
exits 0; a bad flag is a one-line error and exit 2, with no traceback.
"""
from __future__ import annotations

import sys

from absl import flags

HELP_ARGS = ("-h", "--help", "--helpshort")


def print_help(fv: flags.FlagValues, module_name: str, epilog: str = "") -> None:
    module = sys.modules[module_name]
    print((module.__doc__ or "").rstrip() + "\n")
    print("flags:\n" + fv.get_help(prefix="  ", include_special_flags=False))
    if epilog:
        print("\n" + epilog)


def parse(fv: flags.FlagValues, argv: list[str], module_name: str, *, known_only=False,
          epilog: str = "") -> list[str]:
    """Parses ``argv`` into ``fv`` (from the defaults); returns argv[0] and what is left."""
    if any(a in HELP_ARGS for a in argv[1:]):
        print_help(fv, module_name, epilog)
        sys.exit(0)
    fv.unparse_flags()
    try:
        rest = fv(argv, known_only=known_only)
    except (flags.Error, ValueError) as e:
        print(f"error: {e}\nRun with --help to see every flag.", file=sys.stderr)
        sys.exit(2)
    if not flags.FLAGS.is_parsed():            # absl.app and logging read the global flags
        flags.FLAGS.mark_as_parsed()
    return rest
