"""The ``nlp-transfer`` command: a thin layer over the package's functions.

Verbs: ``train``, ``adapt``, ``evaluate``, ``predict``, ``config``, ``push``, ``compare``, ``rank``, ``check``, ``shift`` and
``export``. Any :class:`UserError` prints one line
and exits with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nlp_transfer.collector import imports_paused, skip_final_collection
from nlp_transfer.errors import UserError
from nlp_transfer.files import write_text_atomic

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader closed the pipe

RECIPE_TASKS = {"sentiment": ("classification",), "classification": ("classification", "multilabel"), "ner": ("ner",)}


def whole_number(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``low`` (argparse turns the refusal into one usage error, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def one_character(text: str) -> str:
    """An argparse ``type``: a field delimiter, one character."""
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"must be one character (e.g. ',' or a tab), got {text!r}")
    return text


def finite_number(low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``[low, high]`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f"a finite number of at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


def _quiet_libraries(debug: bool) -> None:
    """Keep library chatter (load reports, progress bars of datasets) out of normal runs."""
    if debug:
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    transformers, datasets = sys.modules.get("transformers"), sys.modules.get("datasets")
    if transformers is None:  # not imported yet: their own variables quiet them, and a verb that never needs them
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # does not pay seconds to import them
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    else:
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    if datasets is None:
        os.environ.setdefault("DATASETS_VERBOSITY", "error")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    else:
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()


def _guard(debug: bool, action: Callable[[], Any], rename: Callable[[str], str] = str) -> int:
    """Run ``action``; user errors, and paths that cannot be read or written, become one message and exit code 2.

    ``rename`` rewrites a user error's message (verbs that take flags name the flag where readers name a config key).
    """
    try:
        action()
    except UserError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {rename(str(err))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue from the last checkpoint.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`nlp-transfer config | head`): stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return EXIT_BROKEN_PIPE
    except OSError as err:
        if err.filename is None or not isinstance(err, PATH_ERRORS):
            raise
        if debug:
            traceback.print_exc()
        print(f"error: {err.filename}: {err.strerror}. Give a path that exists and that you may write to.", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        end_process_group()
    return 0


def end_process_group() -> None:
    """Tear down a process group a multi-process run started, whatever way the verb ended.

    A run that stops on an error never reaches ``Accelerator.end_training()``; left to the interpreter's exit, gloo's
    threads can abort the process (``terminate called without an active exception``, exit -6 instead of 2).
    """
    distributed = sys.modules.get("torch.distributed")  # a verb that never imported torch started no group
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


#: what a path the user named can do wrong (an output folder that cannot be made, a file where a folder goes, ...)
PATH_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


# ------------------------------------------------------------------------- train


def train_parser(prog: str, description: str = "Fine-tune a pretrained model as CONFIG says.") -> argparse.ArgumentParser:
    """``CONFIG [key=value ...] [--resume] [--overwrite] [--debug]``: the arguments of train (and of adapt)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("config", help="YAML config (see recipes/configs/); 'key=value' items override its keys")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. training.epochs=2")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output_dir")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    return parser


def run_recipe(recipe: str | None, argv: Sequence[str], prog: str = "nlp-transfer train") -> int:
    """Parse ``CONFIG [key=value ...] [--resume] [--overwrite]`` and run one training run."""
    args = train_parser(prog).parse_intermixed_args(list(argv))
    _quiet_libraries(args.debug)
    skip_final_collection()

    def action() -> None:
        from nlp_transfer.config import load_config

        # checking the config's task imports torch and transformers: the collector stays paused through it
        with imports_paused("nlp_transfer.pipeline"):
            config = load_config(args.config, args.overrides)
            if recipe is not None and config.task not in RECIPE_TASKS[recipe]:
                raise UserError(
                    f"{args.config}: task={config.task} does not fit the {recipe} recipe "
                    f"(it runs {', '.join(RECIPE_TASKS[recipe])}). Use nlp-transfer train, or the matching recipe."
                )
            from nlp_transfer.pipeline import run_training

        run_training(config, resume=args.resume, overwrite=args.overwrite)

    return _guard(args.debug, action)


# ------------------------------------------------------------------------- evaluate / predict


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=["csv", "tsv", "json", "jsonl", "conll"], help="file format (default: from the extension)"
    )
    parser.add_argument("--token-column", type=int, default=0, help="CoNLL: column of the token (default: 0)")
    parser.add_argument("--tag-column", type=int, default=-1, help="CoNLL: column of the tag (default: -1, the last)")
    parser.add_argument("--text-column", default="text", help="column with the text (default: text)")
    parser.add_argument("--label-column", default="label", help="column with the label (default: label)")
    parser.add_argument("--delimiter", type=one_character, help="field delimiter of csv/tsv files")
    parser.add_argument("--no-header", action="store_true", help="the file has no header; columns are 0, 1, ...")
    parser.add_argument("--columns", help="comma-separated column names for a file without header")
    parser.add_argument("--encoding", default="utf-8", help="file encoding (default: utf-8)")
    parser.add_argument("--label-separator", default="|", help="separator of multi-label labels (default: |)")


def _data_config(args: argparse.Namespace, path: str) -> Any:
    from nlp_transfer.config import DataConfig

    header: bool | list[str] = True
    if args.columns:
        header = [c.strip() for c in args.columns.split(",")]
    elif args.no_header:
        header = False
    return DataConfig(
        train_file=path,
        format=args.format,
        text_column=args.text_column,
        label_column=args.label_column,
        delimiter=args.delimiter,
        header=header,
        encoding=args.encoding,
        label_separator=args.label_separator,
        token_column=args.token_column,
        tag_column=args.tag_column,
    )


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"trust_remote_code": args.trust_remote_code, "allow_pickle": args.allow_pickle}


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=whole_number(1), default=64, help="texts per batch (default: 64)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model folder to run its own code")
    parser.add_argument("--allow-pickle", action="store_true", help="allow pickle-based (.bin) weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")


def _evaluate(args: argparse.Namespace) -> None:
    from nlp_transfer.inference import evaluate_file

    if args.output:  # a path that cannot take the metrics fails now, not after the scoring
        output = Path(args.output)
        if output.is_dir():
            raise UserError(f"--output {args.output}: a folder. Give the path of the JSON file to write.")
        output.parent.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_file(
        args.run_dir, args.data, _data_config(args, args.data), batch_size=args.batch_size, **_load_options(args)
    )
    text = json.dumps(metrics, indent=2)
    if args.output:  # written whole and then moved into place: an earlier file is never half-replaced
        write_text_atomic(args.output, text + "\n")
    print(text)


def _predict(args: argparse.Namespace) -> None:
    """Stream JSON lines: texts are read lazily (arguments, --input, stdin) and predicted a chunk at a time."""
    from itertools import chain

    from nlp_transfer.inference import Progress, iter_texts, load_backend, non_empty, stream_predictions

    texts: Any = iter(args.texts)
    if args.input:
        texts = chain(texts, iter_texts(args.input, text_column=args.text_column, encoding=args.encoding))
    elif not args.texts and not sys.stdin.isatty():
        texts = stdin_texts(args.encoding)
    texts = non_empty(texts)  # reads the first text only: a missing file or column fails before the model loads
    if texts is None:
        raise UserError("nothing to predict. Give texts as arguments, --input FILE, or lines on standard input.")
    model, task = load_backend(args.run_dir, args.backend, export_dir=args.export_dir, **_load_options(args))
    progress = Progress(sys.stderr) if args.input else None
    for row in stream_predictions(model, task, texts, batch_size=args.batch_size, chunk_size=args.chunk_size):
        if args.min_score is not None and "score" in row:
            row["abstain"] = row["score"] < args.min_score
        print(json.dumps(row, ensure_ascii=False))
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.close()


def stdin_texts(encoding: str) -> Any:
    """The non-blank lines of standard input, decoded with ``encoding``; an undecodable line is one error naming it."""
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            line = raw.decode(encoding).strip()
        except UnicodeDecodeError as err:
            raise UserError(
                f"standard input, line {number}: byte 0x{raw[err.start]:02x} cannot be decoded as {encoding}. "
                "Pass the input's encoding with --encoding (e.g. --encoding latin-1)."
            ) from None
        if line:
            yield line


def _push(args: argparse.Namespace) -> None:
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


def _compare(args: argparse.Namespace) -> None:
    from nlp_transfer.compare import (
        aggregate_rows,
        aggregate_table,
        default_output_dir,
        failure_summary,
        markdown_table,
        parse_per_class,
        parse_strategies,
        parse_train_sizes,
        recommendations,
        run_comparison,
        several_seeds,
        split_strategy_overrides,
    )
    from nlp_transfer.config import load_config

    if args.per_class is not None and args.train_sizes is not None:
        raise UserError("--per-class and --train-sizes both choose the training rows; give one of them.")
    strategies = parse_strategies(args.strategies)
    baseline = args.baseline or "scratch"
    if args.baseline and baseline not in strategies and not (baseline == "scratch" and not args.no_scratch):
        raise UserError(f"--baseline {baseline}: not one of the compared labels ({', '.join(strategies)}). Name one of them.")
    per_class = parse_per_class(args.per_class) if args.per_class is not None else []
    train_sizes = parse_train_sizes(args.train_sizes or "all")
    common, own = split_strategy_overrides(args.overrides, list(strategies))
    config = load_config(args.config, common)
    output = args.output or default_output_dir(config)
    rows = run_comparison(
        config,
        strategies,
        train_sizes,
        per_class=per_class,
        seeds=args.seeds,
        output_dir=output,
        scratch=not args.no_scratch,
        strategy_configs={name: load_config(args.config, common + extra) for name, extra in own.items()},
        min_steps=args.min_steps,
        debug=args.debug,
        baseline=baseline,
    )
    print("\n" + markdown_table(rows))
    if several_seeds(rows):
        aggregates = aggregate_rows(rows)
        print("\n" + aggregate_table(aggregates) + "\n")
        print("\n".join(recommendations(aggregates, rows)))
    failed = failure_summary(rows, output)
    if failed:  # every run was tried and reported; the exit code still says that some failed
        raise UserError(failed)


def _rank(args: argparse.Namespace) -> None:
    from nlp_transfer.config import load_config

    with imports_paused("nlp_transfer.rank"):  # torch and transformers (checking the config's task imports them too)
        config = load_config(args.config, args.overrides)
        from nlp_transfer.rank import markdown_table, parse_candidates, run_ranking
    candidates = parse_candidates(args.models, default_model=config.model, default_pooling=config.transfer.pooling)
    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()] if args.estimators else None
    rows, recommended, paths = run_ranking(
        config,
        candidates,
        sample_size=args.sample,
        estimators=estimators,
        recommend_by=args.recommend_by,
        output_dir=Path(args.output) if args.output else None,
    )
    shown = estimators or [k for k in rows[0].scores if not k.endswith("_seconds")] or [args.recommend_by]
    print("\n" + markdown_table(rows, [e for e in shown if any(e in r.scores for r in rows)], recommended))
    print(f"\nrecommended (by {args.recommend_by}): {recommended}\nreport: {paths['rank.json'].parent}")
    failed = [r for r in rows if r.error is not None]
    if failed:
        print(f"{len(failed)} candidate(s) could not be scored; see the table.", file=sys.stderr)


def _check(args: argparse.Namespace) -> None:
    from nlp_transfer.check.command import check_run, summary_lines

    data = _data_config(args, args.data) if args.data else None
    report = check_run(
        args.run_dir,
        data_path=args.data,
        data=data,
        batch_size=args.batch_size,
        bins=args.bins,
        suites=args.suite or [],
        slice_column=args.slice_column,
        fail_under=args.fail_under or [],
        drift=args.drift,
        text_column=args.text_column,
        calibrator=args.calibrator,
    )
    print("\n".join(summary_lines(report)))
    print(f"report: {Path(args.run_dir) / 'check'}")
    missed = report["gates"]["missed"]
    if missed:
        print("check failed: " + "; ".join(missed), file=sys.stderr)
        raise SystemExit(1)


def _export(args: argparse.Namespace) -> None:
    from nlp_transfer.export.command import ExportRefused, export_run

    try:
        report = export_run(args.run_dir, output=args.output, int8=args.int8, max_drop=args.max_drop, batch_size=args.batch_size)
    except ExportRefused as refused:
        print(refused, file=sys.stderr)
        raise SystemExit(1) from None
    for name, check in report["checks"].items():
        print(
            f"{name}: label agreement {check['label_agreement']:.4f}, {check['metric']} {check['before']:.4f} -> "
            f"{check['after']:.4f} ({100 * (check['after'] - check['before']):+.2f} points) on {report['checked_on']}"
        )
    print(f"export: {report['output']}")


def _shift(args: argparse.Namespace) -> None:
    from nlp_transfer.shift.command import run_shift
    from nlp_transfer.shift.report import render_text

    report, paths = run_shift(
        args.source,
        args.target,
        model=args.model,
        sample=args.sample,
        output_dir=args.output,
        text_column=args.text_column,
        encoding=args.encoding,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
        return
    print(render_text(report))
    print(f"report: {paths['shift.json'].parent}")


def _config(args: argparse.Namespace) -> None:
    """Check configs, print one resolved, or list every setting (text or Markdown)."""
    from nlp_transfer.config import describe_settings, load_config, save_config

    if args.overrides and not args.resolve:
        raise UserError(
            f"key=value overrides ({args.overrides[0]}) apply to a config: use them with --resolve CONFIG "
            "(or with nlp-transfer train CONFIG)."
        )
    if args.check:
        for path in args.check:
            load_config(path)
            print(f"{path}: ok")
        return
    if args.resolve:
        config = load_config(args.resolve, args.overrides)
        save_config(config, "/dev/stdout")
        return
    if args.markdown:
        print("| key | type | default | meaning |\n|---|---|---|---|")
        for key, type_name, default, help_text in describe_settings():
            kind, meaning = (text.replace("|", "\\|") for text in (type_name, help_text))
            print(f"| `{key}` | {kind} | `{default!r}` | {meaning} |")
        return
    for key, type_name, default, help_text in describe_settings():
        print(f"{key} ({type_name}, default {default!r})\n    {help_text}")


def _add_evaluate_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = verbs.add_parser("evaluate", help="score a saved run on a labelled file")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data", required=True, help="labelled csv/tsv/json/jsonl file")
    evaluate.add_argument("--output", help="also write the metrics JSON here")
    _add_data_options(evaluate)
    _add_load_options(evaluate)


def _add_predict_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    predict = verbs.add_parser("predict", help="label texts with a saved run; JSON lines out")
    predict.add_argument("run_dir")
    predict.add_argument("texts", nargs="*", help="texts to label")
    predict.add_argument("--input", help="a .txt file (one text a line) or a csv/tsv/json/jsonl file")
    predict.add_argument("--text-column", default="text", help="text column of --input (default: text)")
    predict.add_argument("--encoding", default="utf-8", help="encoding of --input or standard input (default: utf-8)")
    predict.add_argument(
        "--min-score",
        type=finite_number(0.0, 1.0),
        help='classification: mark predictions scored below this "abstain": true (nlp-transfer check reports the score '
        "that reaches a target accuracy)",
    )
    predict.add_argument(
        "--backend", choices=["torch", "onnx"], default="torch", help="torch weights, or the ONNX model of nlp-transfer export"
    )
    predict.add_argument("--export-dir", help="--backend onnx: the export folder (default: RUN_DIR/onnx)")
    predict.add_argument(
        "--chunk-size",
        type=whole_number(1),
        default=1024,
        help="texts read and predicted at a time; memory stays that of one chunk",
    )
    _add_load_options(predict)


def _add_config_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = verbs.add_parser("config", help="print the config reference, check configs, or print a resolved config")
    config.add_argument("--check", nargs="+", metavar="CONFIG", help="validate these config files")
    config.add_argument("--resolve", metavar="CONFIG", help="print CONFIG with overrides applied and defaults filled in")
    config.add_argument("overrides", nargs="*", metavar="key=value")
    config.add_argument("--markdown", action="store_true", help="print the reference as a Markdown table")
    config.add_argument("--debug", action="store_true", help="show tracebacks")


def _add_push_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_compare_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare = verbs.add_parser("compare", help="train several strategies and a from-scratch baseline on the same data")
    compare.add_argument("config", help="YAML config of the runs; 'key=value' items override its keys")
    compare.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides for every run; STRATEGY:key=value for one strategy's runs"
    )
    compare.add_argument(
        "--strategies",
        default="full,frozen,lora",
        help="comma-separated strategies (default: full,frozen,lora); LABEL=STRATEGY adds a variant, configured by LABEL:key=value",
    )
    compare.add_argument("--train-sizes", help="comma-separated training-set sizes or 'all' (the default), e.g. 50,100,500,all")
    compare.add_argument(
        "--per-class",
        metavar="SIZES",
        help="few-shot learning curve in place of --train-sizes: comma-separated training examples per class, e.g. "
        "8,16,32,64 (data.per_class, sampled with data.sample_seed: the same rows for every strategy)",
    )
    compare.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="repeat each size with this many seeds and report mean ± std (default: 1); with --per-class they are "
        "the sample seeds data.sample_seed, +1, ... (the run's seed stays); with --train-sizes the run's seed, +1, ...",
    )
    compare.add_argument("--output", help="report folder (default: OUTPUT_DIR-compare); runs go under its runs/")
    compare.add_argument("--no-scratch", action="store_true", help="skip the from-scratch baseline")
    compare.add_argument(
        "--baseline",
        metavar="LABEL",
        help="flag runs scoring below this label's run (same size and seed) as negative transfer, in place of the "
        "from-scratch run; e.g. base=full,adapted=full adapted:model=ADAPTED_DIR --baseline base",
    )
    compare.add_argument(
        "--min-steps",
        type=whole_number(0),
        default=0,
        help="raise the epochs of small training sets so each run takes at least this many optimizer steps (learning "
        "curves; with --per-class the training set is the size times the number of classes)",
    )
    compare.add_argument("--debug", action="store_true", help="show tracebacks and library logs (of every run)")


def _add_check_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = verbs.add_parser("check", help="calibration, behavioural tests, bias and slices of a saved run, before shipping it")
    check.add_argument("run_dir")
    check.add_argument("--data", help="labelled file to score (default: the run's test split, else its validation split)")
    check.add_argument(
        "--fail-under",
        nargs="+",
        metavar="KEY=VALUE",
        help="exit 1 when a figure of check.json misses its bound: below it for accuracy, recall and auc; above it for "
        "error, flip and failure rates, gaps, ece and brier; e.g. behaviour.negation.failure_rate=0.2",
    )
    check.add_argument(
        "--suite",
        nargs="+",
        metavar="NAME|FILE",
        help="behavioural suites to add to the shipped ones: a YAML/JSONL file or a shipped name",
    )
    check.add_argument("--slice-column", help="also report accuracy per value of this column of --data (or of the test file)")
    check.add_argument(
        "--drift",
        metavar="FILE",
        help="new, unlabelled inputs (one a line, or --text-column of a table): how far they are from the run's "
        "training texts (nlp-transfer shift's domain classifier; drift.* gates)",
    )
    check.add_argument("--bins", type=int, default=15, help="confidence bins of the calibration error (default: 15)")
    check.add_argument(
        "--calibrator",
        choices=["temperature", "isotonic", "auto"],
        default="temperature",
        help="what predict/evaluate apply to single-label scores afterwards: a temperature (default); isotonic, a "
        "temperature then a monotone map of the chosen label's score (repairs a model over-confident in mid range and "
        "under-confident at the top); auto, the one with the lower cross-fitted validation ECE",
    )
    _add_data_options(check)
    _add_load_options(check)


def _add_rank_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rank = verbs.add_parser("rank", help="score candidate source models on the run's data before training")
    rank.add_argument("config", help="YAML config of the run (its data, task and model); 'key=value' items override its keys")
    rank.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. data.train_file=PATH")
    rank.add_argument(
        "--models",
        required=True,
        help="comma-separated candidates: Hub ids or folders, each optionally MODEL@key=value+... with keys "
        "layer (index or mean), pooling (cls, mean), depth (bottom K layers), init (random: a control); @depth=3 means the config's model",
    )
    rank.add_argument("--sample", type=whole_number(1), default=2000, help="training rows encoded per candidate (default: 2000)")
    rank.add_argument("--estimators", help="comma-separated subset of logme,hscore,knn,linear_probe (default: all)")
    rank.add_argument("--recommend-by", default="logme", help="the estimator whose best score names the pick (default: logme)")
    rank.add_argument("--output", help="report folder for rank.json, rank.md, rank.png (default: OUTPUT_DIR-rank)")
    rank.add_argument("--debug", action="store_true", help="show tracebacks and library logs")


def _add_export_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = verbs.add_parser("export", help="write a run as ONNX (optionally int8), checked on its validation split")
    export.add_argument("run_dir")
    export.add_argument("--int8", action="store_true", help="also write a dynamically quantized int8 model and serve that one")
    export.add_argument("--output", help="export folder (default: RUN_DIR/onnx)")
    export.add_argument(
        "--max-drop",
        type=finite_number(0.0),
        default=0.5,
        help="refuse (exit 1, nothing written) when the export's validation metric is more than this many points below the run's (default: 0.5)",
    )
    export.add_argument("--batch-size", type=whole_number(1), default=64, help="texts per batch when checking (default: 64)")
    export.add_argument("--debug", action="store_true", help="show tracebacks and library logs")


def _add_shift_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    shift = verbs.add_parser("shift", help="how far TARGET texts are from SOURCE texts (or a run's training data)")
    shift.add_argument("source", help="a text file (one text a line, or csv/tsv/json/jsonl) or a saved run's output_dir")
    shift.add_argument("target", help="a text file (one text a line, or csv/tsv/json/jsonl)")
    shift.add_argument("--model", help="model whose mean-pooled embeddings are compared (default: the run's, else MiniLM)")
    shift.add_argument("--sample", type=int, default=1000, help="texts drawn from each side (default: 1000)")
    shift.add_argument("--json", action="store_true", help="print the report as one JSON object instead of text")
    shift.add_argument("--output", help="folder for shift.json and shift.png (default: TARGET-shift beside the target)")
    shift.add_argument("--text-column", default="text", help="text column of csv/tsv/json/jsonl files (default: text)")
    shift.add_argument("--encoding", default="utf-8", help="encoding of the files (default: utf-8)")
    shift.add_argument("--batch-size", type=whole_number(1), default=64, help="texts per batch (default: 64)")
    shift.add_argument("--seed", type=int, default=0, help="seed of the samples and the classifier's folds (default: 0)")
    shift.add_argument("--debug", action="store_true", help="show tracebacks and library logs")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb but ``train`` (which :func:`run_recipe` parses; it is listed here for the help)."""
    parser = argparse.ArgumentParser(prog="nlp-transfer", description="Transfer learning for NLP on Hugging Face models.")
    verbs = parser.add_subparsers(
        dest="verb", required=True, metavar="{train,adapt,evaluate,predict,config,push,compare,rank,check,shift,export}"
    )
    verbs.add_parser("train", help="fine-tune as a YAML config says: nlp-transfer train CONFIG [key=value ...]")
    verbs.add_parser("adapt", help="masked-LM pretraining on unlabelled text: nlp-transfer adapt CONFIG [key=value ...]")
    _add_evaluate_parser(verbs)
    _add_predict_parser(verbs)
    _add_config_parser(verbs)
    _add_push_parser(verbs)
    _add_compare_parser(verbs)
    _add_rank_parser(verbs)
    _add_check_parser(verbs)
    _add_shift_parser(verbs)
    _add_export_parser(verbs)
    return parser


VERBS: dict[str, Callable[[argparse.Namespace], None]] = {
    "evaluate": _evaluate,
    "predict": _predict,
    "config": _config,
    "push": _push,
    "compare": _compare,
    "rank": _rank,
    "check": _check,
    "shift": _shift,
    "export": _export,
}


#: the data settings that evaluate, predict, check and shift take as flags: the readers' messages name config keys
FLAG_OF_KEY = {
    "data.text_column": "--text-column",
    "data.label_column": "--label-column",
    "data.encoding": "--encoding",
    "data.delimiter": "--delimiter",
    "data.format": "--format",
    "data.header": "--no-header / --columns",
    "data.label_separator": "--label-separator",
    "data.token_column": "--token-column",
    "data.tag_column": "--tag-column",
}


def name_flags(message: str) -> str:
    """``message`` with each data config key replaced by the flag that sets it on the command line."""
    for key, flag in FLAG_OF_KEY.items():
        message = message.replace(key, flag)
    return message


def dispatch(args: argparse.Namespace) -> int:
    """Run the verb ``args`` names; returns the exit code."""
    _quiet_libraries(args.debug)
    skip_final_collection()
    action = VERBS[args.verb]
    takes_flags = args.verb in ("evaluate", "predict", "shift") or (args.verb == "check" and args.data)
    return _guard(args.debug, lambda: action(args), name_flags if takes_flags else str)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nlp-transfer`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        return run_recipe(None, argv[1:])
    if argv and argv[0] == "adapt":  # like train: CONFIG, overrides and flags in any order
        from nlp_transfer.adapt.command import run_adapt

        return run_adapt(argv[1:])
    parser = build_parser()
    verb = verb_parser(parser, argv[0]) if argv else None
    if verb is None:  # no verb, an unknown one, or --help: the top-level parser says what is wrong
        return dispatch(parser.parse_args(argv))
    args = verb.parse_intermixed_args(argv[1:])  # flags, texts and key=value overrides in any order
    args.verb = argv[0]
    return dispatch(args)


def verb_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    """The sub-parser of verb ``name`` in ``parser`` (built by :func:`build_parser`), or None for no such verb."""
    if name not in VERBS:  # train and adapt parse their own arguments; anything else is not a verb
        return None
    verbs = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return verbs.choices[name]


if __name__ == "__main__":
    raise SystemExit(main())
