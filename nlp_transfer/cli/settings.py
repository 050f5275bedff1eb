"""``nlp-transfer config``: the settings reference, config checks and resolved configs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlp_transfer.errors import UserError


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    config = verbs.add_parser("config", help="print the config reference, check configs, or print a resolved config")
    what = config.add_mutually_exclusive_group()  # one answer a call: a second one was silently ignored
    what.add_argument("--check", nargs="+", metavar="CONFIG", help="validate these config files")
    what.add_argument("--resolve", metavar="CONFIG", help="print CONFIG with overrides applied and defaults filled in")
    what.add_argument("--markdown", action="store_true", help="print the reference as a Markdown table")
    config.add_argument("overrides", nargs="*", metavar="key=value")
    config.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args: argparse.Namespace) -> None:
    """Check configs, print one resolved, or list every setting (text or Markdown)."""
    import yaml

    from nlp_transfer.config import config_to_dict, describe_settings, load_config

    if args.overrides and not args.resolve and "=" not in args.overrides[0]:  # `config run.yaml`: a file, not a flag
        raise UserError(
            f"config {args.overrides[0]}: name what to do with it: --check {args.overrides[0]} validates it, --resolve "
            f"{args.overrides[0]} prints it with every default filled in."
        )
    if args.overrides and not args.resolve:
        raise UserError(
            f"key=value overrides ({args.overrides[0]}) apply to a config: use them with --resolve CONFIG "
            "(or with nlp-transfer train CONFIG)."
        )
    if args.check:
        overrides = [item for item in args.check if "=" in item and not Path(item).exists()]
        if overrides:
            raise UserError(
                f"config --check takes config files; {overrides[0]} is a key=value override. Check a config with its "
                f"overrides by resolving it: nlp-transfer config --resolve CONFIG {' '.join(overrides)}"
            )
        failed = 0
        for path in args.check:  # every file is checked: one line each, ok or its error
            try:
                load_config(path)
                print(f"{path}: ok")
            except UserError as err:
                failed += 1
                print(f"error: {err}", file=sys.stderr)
        if failed:
            raise UserError(f"{failed} of {len(args.check)} config files failed the check (above).")
        return
    if args.resolve:
        config = load_config(args.resolve, args.overrides)
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")  # stdout as given: `>>` appends
        return
    if args.markdown:
        print("| key | type | default | meaning |\n|---|---|---|---|")
        for key, type_name, default, help_text in describe_settings():
            kind, meaning = (text.replace("|", "\\|") for text in (type_name, help_text))
            print(f"| `{key}` | {kind} | `{default!r}` | {meaning} |")
        return
    for key, type_name, default, help_text in describe_settings():
        print(f"{key} ({type_name}, default {default!r})\n    {help_text}")
