"""The ``nlp-transfer`` command: a thin layer over the package's functions, one module per verb.

Verbs: ``train``, ``adapt``, ``evaluate``, ``predict``, ``config``, ``push``, ``compare``, ``rank``, ``check``, ``shift`` and
``export``. Any :class:`~nlp_transfer.errors.UserError` prints one line and exits with code 2; ``--debug`` shows the
traceback instead. A new verb is a module with ``add_parser(verbs)`` and ``run(args)``, added to
:data:`nlp_transfer.cli.command.VERBS`.
"""

from nlp_transfer.cli.command import build_parser, dispatch, main, verb_parser
from nlp_transfer.cli.guard import EXIT_USER_ERROR, guard
from nlp_transfer.cli.train import run_recipe, train_parser

__all__ = ["EXIT_USER_ERROR", "build_parser", "dispatch", "guard", "main", "run_recipe", "train_parser", "verb_parser"]
