"""``nlp-transfer push RUN_DIR --repo-id OWNER/NAME``: upload a saved run to the Hub with its model card."""

from __future__ import annotations

import argparse


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    push = verbs.add_parser("push", help="upload a saved run to the Hugging Face Hub with a model card")
    push.add_argument("run_dir")
    push.add_argument("--repo-id", required=True, help="target repository OWNER/NAME (created when missing)")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    which = push.add_mutually_exclusive_group()
    which.add_argument("--adapter", action="store_true", help="push the LoRA adapter (RUN_DIR/adapter) of a lora run")
    which.add_argument("--merged", action="store_true", help="push the plain (merged) model")
    push.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`; prefer those, a flag shows in ps)")
    push.add_argument("--license", help="license id for the model card, e.g. apache-2.0 (default: the base model's)")
    push.add_argument(
        "--onnx", action="store_true", help="also upload RUN_DIR/onnx (nlp-transfer export), with a card section on onnxruntime"
    )
    push.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args: argparse.Namespace) -> None:
    """Run the verb with the parsed ``args``."""
    from nlp_transfer.hub import push_run

    mode = "adapter" if args.adapter else "merged" if args.merged else "auto"
    url = push_run(
        args.run_dir,
        repo_id=args.repo_id,
        private=args.private,
        token=args.token,
        mode=mode,
        license=args.license,
        onnx=args.onnx,
    )
    print(f"pushed {args.run_dir} to {url}")
