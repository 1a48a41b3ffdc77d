"""``jaxsim models``: the registered models (states, fluxes, parameters) as markdown.

``jaxsim models --update docs/models.md`` rewrites the generated part of that file, so a new
model file reaches the docs by running it (a test checks the committed table is current).
"""

from __future__ import annotations

import pathlib

from jaxsim.physics.registry import model_table_markdown, with_model_table


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models", help="list the models (states, fluxes, parameters) as markdown",
        description="Print every registered model as markdown: an overview table and, per "
        "model, its states, fluxes and parameter table (units, defaults, ranges).")
    p.add_argument("--update", metavar="FILE.md", type=pathlib.Path, default=None,
                   help="rewrite the generated table between the marker lines of this file "
                   "(docs/models.md) instead of printing it (default: print the table)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.update is None:
        print(model_table_markdown(), end="")
        return 0
    path = args.update
    text = path.read_text()
    try:
        new = with_model_table(text)
    except ValueError as err:
        from jaxsim.physics.errors import ParameterError

        raise ParameterError(f"--update {str(path)!r}: {err}") from None
    if new != text:
        path.write_text(new)
        print(f"updated {path}")
    else:
        print(f"{path} is current")
    return 0
