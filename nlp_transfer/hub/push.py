"""Uploading a run to the Hub as one commit, with retries, a clear error per refusal, and the token kept secret."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from nlp_transfer.errors import UserError
from nlp_transfer.hub.card import build_model_card, check_card_metadata, read_run_info
from nlp_transfer.hub.files import PUSHED_PATTERNS, REPO_ID_RE, PushError, collect_files, matches_any, resolve_mode

logger = logging.getLogger(__name__)


PushMode = Literal["auto", "merged", "adapter"]


T = TypeVar("T")


#: How often a commit is tried when the Hub answers 5xx/429 or the connection fails, and the first wait.
COMMIT_ATTEMPTS = 3


RETRY_WAIT_SECONDS = 2.0


def resolve_token(token: str | None = None) -> str:
    """The explicit token, else ``HF_TOKEN``, else the login cache; a UserError when there is none."""
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise UserError(
            "no Hugging Face token: set the HF_TOKEN environment variable or run `hf auth login` "
            "(`nlp-transfer push` also takes --token). The token needs write access to the target namespace."
        )
    return found


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(err: BaseException) -> bool:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return False
    status = _status(err)
    if status is not None:
        return status >= 500 or status == 429
    transport: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    try:
        import httpx2

        transport += (httpx2.TransportError,)
    except ImportError:
        pass
    return isinstance(err, transport)


def _explain(err: BaseException, repo_id: str, step: str) -> PushError:
    """A clear message for a failed Hub call (never containing the token)."""
    status = _status(err)
    if status == 401:
        return PushError(
            f"the Hugging Face token was refused (401 while {step}). Check HF_TOKEN / --token, or log in again "
            "with `hf auth login`."
        )
    if status == 403:
        namespace = repo_id.split("/")[0]
        return PushError(
            f"no write access to '{namespace}' (403 while {step}): the token's user cannot create or write "
            f"{repo_id}. Use your own user name or an organization you can write to, and a token with write access."
        )
    if status is not None:
        return PushError(f"the Hub answered {status} while {step} for {repo_id}: {str(err).splitlines()[0][:300]}")
    return PushError(f"could not reach the Hub while {step} for {repo_id} ({type(err).__name__}). Check the network.")


def _with_retries(action: Callable[[], T], *, attempts: int, wait: float, what: str) -> T:
    """Run ``action``, retrying transient Hub errors (5xx, 429, connection) with exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as err:
            if attempt == attempts or not _is_transient(err):
                raise
            delay = wait * 2 ** (attempt - 1)
            logger.warning("%s failed (%s); retrying in %.0f s (%d/%d)", what, type(err).__name__, delay, attempt, attempts)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _refuse_leaks(files: dict[str, Path | bytes], token: str) -> None:
    """Stop when a file about to be uploaded contains the token (read in chunks: weights can be large)."""
    raw = token.encode()
    for path_in_repo, source in files.items():
        if isinstance(source, bytes):
            found = raw in source
        else:
            found, tail = False, b""
            with source.open("rb") as handle:
                while not found and (chunk := handle.read(8 << 20)):
                    found = raw in tail + chunk
                    tail = chunk[-(len(raw) - 1) :] if len(raw) > 1 else b""
        if found:
            raise UserError(f"{path_in_repo} contains the Hugging Face token; refusing to upload it. Remove the token from it.")


def _card_bytes(run_dir: Path, repo_id: str, license: str | None, adapter: bool) -> bytes:
    """The run's model card as README.md, its metadata checked offline."""
    card = build_model_card(run_dir, repo_id=repo_id, license=license, adapter=adapter)
    check_card_metadata(card)
    return str(card).encode("utf-8")


def _prepare_push(
    run_dir: Path, repo_id: str, mode: PushMode, license: str | None
) -> tuple[Literal["merged", "adapter"], dict[str, Path | bytes]]:
    """Check the repo id, choose what to upload and gather the files with their card: all before any request."""
    check_repo_id(repo_id, "repo id ")
    info = read_run_info(run_dir)
    check_card_task(run_dir, info.task)
    chosen = resolve_mode(run_dir, mode)
    files = collect_files(run_dir, chosen, base_model=info.base_model or None)
    files["README.md"] = _card_bytes(run_dir, repo_id, license, chosen == "adapter")
    return chosen, files


def check_card_task(run_dir: Path, task: str) -> None:
    """Refuse a run of a task this package writes no card for (a task added outside it): its card would tag it as a
    text classifier and show a snippet that cannot load it."""
    from nlp_transfer.inference.loading import SERVED_TASKS

    if task and task not in (*SERVED_TASKS, "masked-lm"):
        raise UserError(
            f"{run_dir}: a run of task={task}; push writes cards for {', '.join(SERVED_TASKS)} runs and adapted "
            "encoders. Upload it with huggingface_hub's upload_folder and a card of your own."
        )


def _check_online() -> None:
    """A UserError when huggingface_hub is in offline mode."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise UserError("HF_HUB_OFFLINE is set: pushing needs the Hub. Unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) to push.")


class _HubCaller:
    """Runs one Hub call of a push: transient errors are retried, a failure becomes a :class:`PushError`."""

    def __init__(self, repo_id: str, attempts: int, wait: float) -> None:
        self.repo_id, self.attempts, self.wait = repo_id, attempts, wait

    def __call__(self, step: str, action: Callable[[], T]) -> T:
        """The result of ``action``; ``step`` names it in log lines and error messages."""
        try:
            return _with_retries(action, attempts=self.attempts, wait=self.wait, what=step)
        except UserError:
            raise
        except Exception as err:
            if _status(err) is None and not _is_transient(err):
                raise
            raise _explain(err, self.repo_id, step) from None


def _update_for_existing_repo(
    api: Any, hub_call: _HubCaller, run_dir: Path, files: dict[str, Path | bytes], license: str | None, adapter: bool
) -> list[str]:
    """For a repository that exists: keep its card's license (when none was given) and list the stale files to delete."""
    repo_id = hub_call.repo_id
    remote = hub_call("listing the repository", lambda: api.list_repo_files(repo_id))
    kept = None if license or "README.md" not in remote else _remote_license(api, repo_id)
    if kept:  # a push without --license keeps the license the repository's card already states
        files["README.md"] = _card_bytes(run_dir, repo_id, kept, adapter)
    return [p for p in remote if p not in files and is_stale(p)]


def is_stale(path_in_repo: str) -> bool:
    """Whether a file of an earlier push goes when this push does not upload it: any file a push writes (old weights
    or adapters beside the new ones, a full model's config.json beside an adapter, another tokenizer's vocabulary, a
    calibration.json whose temperature fits other weights) and any file of an earlier ONNX export. Files a push never
    writes (added by hand) stay."""
    from nlp_transfer.export.onnx_backend import EXPORT_DIR

    if path_in_repo.startswith(f"{EXPORT_DIR}/"):
        return True
    return "/" not in path_in_repo and matches_any(path_in_repo, PUSHED_PATTERNS)


def _commit_files(
    api: Any, hub_call: _HubCaller, files: dict[str, Path | bytes], stale: list[str], message: str, *, existed: bool
) -> None:
    """Upload ``files`` and delete ``stale`` in one commit; a failed push to a new repository deletes it again."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    repo_id = hub_call.repo_id

    def commit() -> Any:
        operations: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=s) for p, s in files.items()]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        return api.create_commit(repo_id, operations=operations, commit_message=message)

    try:
        hub_call("committing the files", commit)
    except PushError:
        if not existed:  # leave no empty repository behind
            try:
                api.delete_repo(repo_id, missing_ok=True)
            except Exception as err:
                logger.warning("could not delete the empty repository %s (%s)", repo_id, type(err).__name__)
        raise


def push_run(
    run_dir: str | Path,
    *,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    mode: PushMode = "auto",
    commit_message: str | None = None,
    license: str | None = None,
    attempts: int = COMMIT_ATTEMPTS,
    retry_wait: float | None = None,
    onnx: bool = False,
) -> str:
    """Create ``repo_id`` (or reuse it) and upload the run in one commit; returns the repository URL.

    ``mode``: ``merged`` the plain (or LoRA-merged) model, ``adapter`` the LoRA adapter in RUN_DIR/adapter,
    ``auto`` the model when there is one, else the adapter. Checkpoints, logs and training state stay local.
    Transient errors of the commit are retried ``attempts`` times, waiting ``retry_wait`` (default
    ``RETRY_WAIT_SECONDS``) seconds, doubled each time. ``onnx`` also uploads RUN_DIR/onnx (``nlp-transfer export``).
    """
    run_dir = Path(run_dir)
    retry_wait = RETRY_WAIT_SECONDS if retry_wait is None else retry_wait
    chosen, files = _prepare_push(run_dir, repo_id, mode, license)
    onnx_card = b""
    if onnx:  # the export rides along, and the card says how to run it with onnxruntime alone
        from nlp_transfer.export.hub_files import onnx_card_section, onnx_push_files

        files.update(onnx_push_files(run_dir))
        onnx_card = onnx_card_section(run_dir, repo_id).encode("utf-8")
    token = resolve_token(token)
    _refuse_leaks(files, token)
    _check_online()

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    hub_call = _HubCaller(repo_id, attempts, retry_wait)
    hub_call("checking the token", api.whoami)
    existed = hub_call("looking up the repository", lambda: api.repo_exists(repo_id))
    url = str(hub_call("creating the repository", lambda: api.create_repo(repo_id, private=private, exist_ok=True)))
    stale = _update_for_existing_repo(api, hub_call, run_dir, files, license, chosen == "adapter") if existed else []
    if onnx_card:  # appended once the card is final (an existing repository's license may have rebuilt it)
        files["README.md"] = bytes(files["README.md"]) + onnx_card  # type: ignore[arg-type]
    message = commit_message or f"Upload {chosen} model from nlp-transfer run {run_dir.name}"
    _commit_files(api, hub_call, files, stale, message, existed=existed)
    logger.info("pushed %s (%s) to %s", run_dir, chosen, url)
    return url


def _remote_license(api: Any, repo_id: str) -> str | None:
    """The license in the metadata of the repository's current README.md, or None when it cannot be read."""
    from huggingface_hub.repocard import metadata_load

    try:
        path = api.hf_hub_download(repo_id, "README.md")
        value = (metadata_load(path) or {}).get("license")
    except Exception as err:  # an unreadable card must not stop the push; the new card says no license was set
        logger.warning("could not read the license of %s's current model card (%s)", repo_id, type(err).__name__)
        return None
    return str(value) if value else None


def check_repo_id(repo_id: str | None, named: str) -> None:
    """Refuse a repo id not written OWNER/NAME; ``named`` comes before it in the message (``repo id `` or ``hub.repo_id=``)."""
    if not REPO_ID_RE.fullmatch(repo_id or ""):
        raise UserError(f"{named}{repo_id!r}: write it as OWNER/NAME, e.g. your-user/sentiment-minilm.")


def check_push_ready(hub: Any) -> None:
    """What a configured push (``hub.push``) needs that costs nothing to check, before the run trains for hours: a
    repo id written as OWNER/NAME, a token, and the Hub not switched off (HF_HUB_OFFLINE)."""
    check_repo_id(hub.repo_id, "hub.repo_id=")
    _check_online()
    resolve_token()


def push_configured_run(hub: Any, output_dir: str | Path) -> str:
    """Push a just-finished run as its config's ``hub`` section says (``run_training`` calls this)."""
    try:
        return push_run(output_dir, repo_id=hub.repo_id, private=hub.private, mode=hub.mode, license=hub.license)
    except UserError as err:
        raise type(err)(
            f"{err} The run itself is saved in {output_dir}; push it later with "
            f"`nlp-transfer push {output_dir} --repo-id {hub.repo_id}`."
        ) from None
