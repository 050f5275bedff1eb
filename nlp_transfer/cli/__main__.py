"""``python -m nlp_transfer.cli VERB ...``: the console script without the installed entry point."""

from nlp_transfer.cli.command import main

raise SystemExit(main())
