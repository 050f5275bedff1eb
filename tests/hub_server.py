"""Loopback Hugging Face Hub-compatible HTTP server for tests (standard library only).

Implements the part of the Hub HTTP API that ``huggingface_hub`` 2.x uses for
``whoami``, ``create_repo``/``delete_repo``, ``create_branch``, ``model_info``/
``repo_info``, ``list_repo_tree``/``list_repo_files``/``get_paths_info``,
``create_commit``/``upload_file``/``upload_folder`` (plain LFS protocol, i.e. with
``HF_HUB_DISABLE_XET=1``) and ``hf_hub_download``/``snapshot_download``.

Example::

    with HubServer(tokens={"hf_validtoken123": "alice"}, orgs={"alice": []}) as hub:
        env = hub.client_env(token="hf_validtoken123", hf_home=str(tmp_path / "hf"))
        subprocess.run([sys.executable, "-c", CODE], env=env, check=True)
        assert hub.repos["alice/my-model"].files["config.json"] == b"{}"

State is in memory. ``hub.repos`` maps a repo key (``"ns/name"`` for models,
``"datasets/ns/name"`` or ``"spaces/ns/name"`` otherwise) to a :class:`Repo`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
DEFAULT_LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack",
    ".gguf", ".npy", ".npz", ".pkl", ".pickle", ".zip", ".tar", ".gz", ".parquet",
    ".arrow",
)  # fmt: skip
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in DEFAULT_LFS_SUFFIXES).encode()
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
BAD_TOKEN = "Invalid credentials in Authorization header"

Reply = tuple[int, Any, dict]  # (status, bytes or JSON-serialisable payload, headers)


def git_blob_oid(data: bytes) -> str:
    """Git object id (sha1) of a blob, as the Hub reports it for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The Git LFS pointer file git would store in place of ``data``."""
    oid = hashlib.sha256(data).hexdigest()
    spec = "version https://git-lfs.github.com/spec/v1"
    return f"{spec}\noid sha256:{oid}\nsize {len(data)}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _short_id(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:24]


def _repo_key(repo_id: str, repo_type: str) -> str:
    return URL_PREFIXES[repo_type] + repo_id


class HubError(Exception):
    """Answered as JSON ``{"error": message, **body}`` with ``X-Error-*`` headers."""

    def __init__(self, status: int, message: str, code: str | None = None, **kw: Any):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers: dict = kw.pop("headers", {})
        self.body = {"error": message, **kw}


@dataclass
class Commit:
    """A commit; ``files`` is the full snapshot after it, ``lfs`` its LFS paths."""

    oid: str
    parent: str | None
    title: str
    description: str
    author: str | None
    date: str
    files: dict[str, bytes]
    lfs: frozenset[str]


@dataclass
class Repo:
    """A repository: ``commits`` oldest first, ``branches`` name -> commit oid."""

    repo_id: str
    repo_type: str = "model"
    private: bool = False
    created_at: str = field(default_factory=_now)
    commits: list[Commit] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return _repo_key(self.repo_id, self.repo_type)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def head(self) -> Commit:
        """Head commit of ``main``."""
        return self.resolve("main")

    @property
    def files(self) -> dict[str, bytes]:
        """Files (path -> bytes) at the head of ``main``."""
        return dict(self.head.files)

    def resolve(self, rev: str) -> Commit:
        """Commit of a branch name or full commit oid; 404 RevisionNotFound if none."""
        oid = self.branches.get(rev, rev)
        for commit in self.commits:
            if commit.oid == oid:
                return commit
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")


class LoggedRequest(NamedTuple):
    """An entry of ``HubServer.request_log``; ``path`` is raw and includes the query."""

    method: str
    path: str
    headers: dict[str, str]


class Request(NamedTuple):
    """What an endpoint receives: URL groups, query, body and the authenticated user."""

    groups: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    headers: Any
    user: str | None
    can_write: bool

    def flag(self, name: str) -> bool:
        return self.query.get(name, ["false"])[-1].lower() in ("1", "true")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, "Invalid JSON body") from None

    def rev(self) -> str:
        return unquote(self.groups.get("rev") or "main")


class HubServer:
    """In-memory Hub served on ``host`` from a daemon thread; a context manager.

    Args:
        tokens: access token -> user name. Unknown Bearer tokens get 401 everywhere.
        orgs: user name -> organisations the user can read, write and create repos in.
        readonly_tokens: tokens (also in ``tokens``) that get 403 on any write.
        port: 0 picks a free port.
        lfs_threshold: files larger than this many bytes are uploaded through LFS.
        lfs_suffixes: file suffixes always uploaded through LFS.
        tree_page_size: entries per tree page (``Link: <...>; rel="next"`` pagination).
        init_gitattributes: new repos get a ``.gitattributes`` first commit, like the
            real Hub (so it shows up in listings and snapshots).
    """

    def __init__(
        self,
        tokens: dict[str, str] | None = None,
        orgs: dict[str, list[str]] | None = None,
        *,
        readonly_tokens: tuple[str, ...] | list[str] | set[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        lfs_threshold: int = 1_000_000,
        lfs_suffixes: tuple[str, ...] = DEFAULT_LFS_SUFFIXES,
        tree_page_size: int = 1000,
        init_gitattributes: bool = True,
    ):
        self.tokens = dict(tokens or {})
        self.orgs = {user: list(names) for user, names in (orgs or {}).items()}
        self.readonly_tokens = set(readonly_tokens)
        self.host, self.port = host, port
        self.lfs_threshold, self.lfs_suffixes = lfs_threshold, tuple(lfs_suffixes)
        self.tree_page_size = tree_page_size
        self.init_gitattributes = init_gitattributes
        self.lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content (LFS uploads)
        self.request_log: list[LoggedRequest] = []
        self.errors: list[str] = []  # tracebacks of server bugs (answered with 500)
        self.failures_triggered = 0
        self._failures: list[list[Any]] = []  # [remaining, substring, status, method]
        self._tickets: dict[str, tuple[str, int]] = {}  # upload ticket -> (oid, size)
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL ``http://127.0.0.1:PORT``, to use as ``HF_ENDPOINT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> HubServer:
        """Bind the socket and serve from a daemon thread."""
        httpd = ThreadingHTTPServer((self.host, self.port), _Handler)
        httpd.daemon_threads = True
        httpd.hub = self  # type: ignore[attr-defined]
        self._httpd, self.port = httpd, httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client_env(self, token: str | None = None, hf_home: str | None = None, base: dict | None = None) -> dict[str, str]:
        """Environment for a client subprocess (a copy of ``base`` or ``os.environ``).

        Sets ``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET=1``, drops offline flags and
        inherited tokens; ``token`` becomes ``HF_TOKEN``, ``hf_home`` ``HF_HOME``.
        """
        env = dict(os.environ if base is None else base)
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_ENABLE_HF_TRANSFER"):  # fmt: skip
            env.pop(key, None)
        no_proxy = ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1,localhost"]))
        env.update(
            HF_ENDPOINT=self.url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1", NO_PROXY=no_proxy, no_proxy=no_proxy,
        )  # fmt: skip
        if token is not None:
            env["HF_TOKEN"] = token
        if hf_home is not None:
            env["HF_HOME"] = hf_home
        return env

    # ------------------------------------------------------------------ test hooks
    def fail_next(self, n: int = 1, path_substring: str = "", status: int = 500, method: str | None = None) -> None:
        """Answer ``status`` to the next ``n`` requests whose raw path contains
        ``path_substring`` (and whose method is ``method``, if given), before any
        side effect."""
        with self.lock:
            self._failures.append([n, path_substring, status, method and method.upper()])

    def _take_failure(self, method: str, path: str) -> int | None:
        with self.lock:
            for rule in self._failures:
                if rule[0] > 0 and rule[1] in path and rule[3] in (None, method):
                    rule[0] -= 1
                    self.failures_triggered += 1
                    return rule[2]
        return None

    def find_leaks(self, secret: str) -> list[str]:
        """Where ``secret`` (e.g. a token) reached the server other than in an
        ``Authorization`` header: URLs, other headers, committed files or messages,
        LFS objects. An empty list means no leak."""
        leaks, raw = [], secret.encode()
        with self.lock:
            for req in self.request_log:
                if secret in unquote(req.path):
                    leaks.append(f"url: {req.method} {req.path}")
                for name, value in req.headers.items():
                    if secret in value and name.lower() != "authorization":
                        leaks.append(f"header {name}: {req.method} {req.path}")
            for repo in self.repos.values():
                for commit in repo.commits:
                    if secret in commit.title + commit.description:
                        leaks.append(f"commit message: {repo.key}@{commit.oid}")
                    for path, data in commit.files.items():
                        if raw in data:
                            leaks.append(f"file: {repo.key}@{commit.oid}/{path}")
            leaks += [f"lfs object: {o}" for o, d in self.lfs_objects.items() if raw in d]
        return sorted(set(leaks))

    def create_repo(self, repo_id: str, *, repo_type: str = "model", private: bool = False) -> Repo:
        """Create a repo directly (no HTTP), e.g. to seed a test."""
        with self.lock:
            repo = Repo(repo_id, repo_type, private)
            if repo.key in self.repos:
                raise ValueError(f"{repo.key} already exists")
            self.repos[repo.key] = repo
            files = {".gitattributes": GITATTRIBUTES} if self.init_gitattributes else {}
            self._append_commit(repo, "main", files, frozenset(), "initial commit")
            return repo

    def commit_files(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        repo_type: str = "model",
        message: str = "seed",
        lfs: set[str] | None = None,
    ) -> Commit:
        """Commit ``files`` (path -> bytes) on ``main`` directly (no HTTP).

        ``lfs`` defaults to the paths the server would route through LFS.
        """
        with self.lock:
            repo = self.repos[_repo_key(repo_id, repo_type)]
            if lfs is None:
                lfs = {p for p, data in files.items() if self._is_lfs(p, len(data))}
            head = repo.head
            new_lfs = frozenset((head.lfs - set(files)) | set(lfs))
            snapshot = {**head.files, **files}
            return self._append_commit(repo, "main", snapshot, new_lfs, message)

    # ------------------------------------------------------------------ internals
    def _is_lfs(self, path: str, size: int) -> bool:
        return path.lower().endswith(self.lfs_suffixes) or size > self.lfs_threshold

    def _append_commit(
        self,
        repo: Repo,
        branch: str,
        files: dict[str, bytes],
        lfs: frozenset[str],
        title: str,
        description: str = "",
        author: str | None = None,
    ) -> Commit:
        self._counter += 1
        parent = repo.branches.get(branch)
        blobs = sorted((p, git_blob_oid(d)) for p, d in files.items())
        digest = json.dumps([repo.key, parent, title, self._counter, blobs]).encode()
        oid = hashlib.sha1(digest).hexdigest()
        commit = Commit(oid, parent, title, description, author, _now(), dict(files), lfs)
        repo.commits.append(commit)
        repo.branches[branch] = oid
        return commit

    def _auth(self, headers: Any) -> tuple[str | None, bool]:
        """(user, can_write) of the Bearer token; 401 for an unknown token."""
        value = (headers.get("Authorization") or "").strip()
        if not value:
            return None, False
        token = value[7:].strip() if value.lower().startswith("bearer ") else value
        if token not in self.tokens:
            raise HubError(401, BAD_TOKEN)
        return self.tokens[token], token not in self.readonly_tokens

    def _namespaces(self, user: str | None) -> set[str]:
        return set() if user is None else {user, *self.orgs.get(user, [])}

    def _repo(self, r: Request, write: bool = False, **override: str) -> Repo:
        """The repo named by the URL (or ``override``), checking read/write access."""
        g = {**r.groups, **override}
        api_type = g.get("type") or (g.get("prefix") or "models/").rstrip("/")
        repo_type = API_TYPES.get(api_type, api_type)
        repo = self.repos.get(_repo_key(f"{g['ns']}/{g['name']}", repo_type))
        allowed = self._namespaces(r.user)
        if repo is None or (repo.private and repo.namespace not in allowed):
            status = 401 if r.user is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        if write and r.user is None:
            raise HubError(401, "You must be authenticated to write to this repository")
        if write and (not r.can_write or repo.namespace not in allowed):
            raise HubError(403, f"You don't have write access to {repo.repo_id}")
        return repo

    def _branch(self, repo: Repo, rev: str) -> Commit:
        if rev not in repo.branches:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.resolve(rev)

    def _file_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        data = commit.files[path]
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data)}
        entry["oid"] = git_blob_oid(data)
        if path in commit.lfs:
            pointer = lfs_pointer(data)
            entry["oid"] = git_blob_oid(pointer)
            sha256 = hashlib.sha256(data).hexdigest()
            entry["lfs"] = {"oid": sha256, "size": len(data), "pointerSize": len(pointer)}
        if expand:
            entry["lastCommit"] = self._last_commit(repo, commit, path)
        return entry

    def _dir_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        oid = hashlib.sha1(f"{commit.oid}:{path}".encode()).hexdigest()
        entry: dict[str, Any] = {"type": "directory", "path": path, "size": 0, "oid": oid}
        if expand:
            entry["lastCommit"] = self._last_commit(repo, commit, path)
        return entry

    def _entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        make = self._file_entry if path in commit.files else self._dir_entry
        return make(repo, commit, path, expand)

    @staticmethod
    def _last_commit(repo: Repo, commit: Commit, path: str) -> dict:
        """The last commit that changed ``path`` (a file or a folder)."""

        def view(c: Commit) -> dict:
            return {p: d for p, d in c.files.items() if p == path or p.startswith(path + "/")}

        current = commit
        while current.parent is not None:
            parent = repo.resolve(current.parent)
            if view(parent) != view(current):
                break
            current = parent
        return {"id": current.oid, "title": current.title, "date": current.date}

    @staticmethod
    def _dirs(files: dict[str, bytes]) -> set[str]:
        return {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}

    # ------------------------------------------------------------------ endpoints
    def ep_whoami(self, r: Request) -> Reply:
        if r.user is None:
            raise HubError(401, BAD_TOKEN)
        orgs = [{"type": "org", "name": o, "fullname": o, "roleInOrg": "write"} for o in self.orgs.get(r.user, [])]
        role = "write" if r.can_write else "read"
        token = {"displayName": "test-token", "role": role}
        return 200, {
            "type": "user", "id": _short_id(r.user), "name": r.user, "fullname": r.user,
            "email": f"{r.user}@example.com", "emailVerified": True, "isPro": False,
            "orgs": orgs, "auth": {"type": "access_token", "accessToken": token},
        }, {}  # fmt: skip

    def ep_validate_yaml(self, r: Request) -> Reply:
        return 200, {"errors": [], "warnings": []}, {}

    def ep_create_repo(self, r: Request) -> Reply:
        if r.user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        payload = r.json()
        name, repo_type = payload.get("name") or "", payload.get("type") or "model"
        ns = payload.get("organization") or r.user
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        if not NAME_RE.fullmatch(name) or name.endswith(".git") or ".." in name:
            raise HubError(400, f"Invalid repo name: {name!r}")
        if not r.can_write or ns not in self._namespaces(r.user):
            msg = f'You don\'t have the rights to create a {repo_type} under "{ns}"'
            raise HubError(403, msg)
        repo_id = f"{ns}/{name}"
        url = f"{self.url}/{_repo_key(repo_id, repo_type)}"
        if _repo_key(repo_id, repo_type) in self.repos:
            raise HubError(409, f"You already created this {repo_type} repo", url=url)
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.create_repo(repo_id, repo_type=repo_type, private=private)
        return 200, {"url": url, "name": repo_id, "id": _short_id(url)}, {}

    def ep_delete_repo(self, r: Request) -> Reply:
        payload = r.json()
        ns = payload.get("organization") or r.user or ""
        names = {"ns": ns, "name": payload.get("name") or ""}
        repo = self._repo(r, write=True, type=payload.get("type") or "model", **names)
        del self.repos[repo.key]
        return 200, {}, {}

    def ep_info(self, r: Request) -> Reply:
        repo = self._repo(r)
        commit = repo.resolve(r.rev())
        siblings = []
        for path in sorted(commit.files):
            sibling: dict[str, Any] = {"rfilename": path}
            if r.flag("blobs"):
                entry = self._file_entry(repo, commit, path, False)
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if lfs := entry.get("lfs"):
                    sibling["lfs"] = {
                        "sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]
                    }  # fmt: skip
            siblings.append(sibling)
        info = {
            "_id": _short_id(repo.key), "id": repo.repo_id, "author": repo.namespace,
            "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0,
            "likes": 0, "tags": [], "siblings": siblings,
            "usedStorage": sum(len(d) for d in commit.files.values()),
        }  # fmt: skip
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        return 200, info, {}

    def ep_tree(self, r: Request) -> Reply:
        repo = self._repo(r)
        commit = repo.resolve(r.rev())
        base = unquote(r.groups.get("path") or "").strip("/")
        dirs = self._dirs(commit.files)
        if base and base not in dirs:
            headers = {"X-Repo-Commit": commit.oid}
            raise HubError(404, f"Entry not found: {base}", "EntryNotFound", headers=headers)
        prefix, recursive = (base + "/" if base else ""), r.flag("recursive")
        paths = [p for p in sorted(dirs) + sorted(commit.files) if p.startswith(prefix)]
        if not recursive:
            paths = [p for p in paths if "/" not in p[len(prefix) :]]
        cursor = int(r.query.get("cursor", ["0"])[-1] or 0)
        page = paths[cursor : cursor + self.tree_page_size]
        out = [self._entry(repo, commit, p, r.flag("expand")) for p in page]
        headers = {"X-Repo-Commit": commit.oid}
        if cursor + self.tree_page_size < len(paths):
            params = {k: v[-1] for k, v in r.query.items()}
            params["cursor"] = str(cursor + self.tree_page_size)
            next_url = f"{self.url}{r.groups['_path']}?{urlencode(params)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        return 200, out, headers

    def ep_paths_info(self, r: Request) -> Reply:
        repo = self._repo(r)
        commit = repo.resolve(r.rev())
        if r.body.lstrip().startswith(b"{"):
            payload = r.json()
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:  # form-encoded, as huggingface_hub sends it
            form = parse_qs(r.body.decode())
            paths = form.get("paths", [])
            expand = form.get("expand", ["False"])[-1].lower() in ("1", "true")
        known = set(commit.files) | self._dirs(commit.files)
        paths = [p.strip("/") for p in ([paths] if isinstance(paths, str) else paths)]
        out = [self._entry(repo, commit, p, expand) for p in paths if p in known]
        return 200, out, {}

    def ep_create_branch(self, r: Request) -> Reply:
        repo = self._repo(r, write=True)
        branch = r.rev()
        if branch.startswith("refs/") or not branch:
            raise HubError(400, f"Invalid branch name: {branch}")
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: {branch}")
        start = (r.json() or {}).get("startingPoint") or "main"
        repo.branches[branch] = repo.resolve(start).oid
        return 200, {}, {}

    def ep_preupload(self, r: Request) -> Reply:
        repo = self._repo(r, write=True)
        head = self._branch(repo, r.rev())
        files = []
        for item in r.json().get("files", []):
            path, size = item["path"], int(item.get("size", 0))
            mode = "lfs" if self._is_lfs(path, size) else "regular"
            oid, data = None, head.files.get(path)
            if data is not None:  # lets the client skip unchanged files
                oid = hashlib.sha256(data).hexdigest() if mode == "lfs" else git_blob_oid(data)
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return 200, {"files": files, "commitOid": head.oid}, {}

    def ep_lfs_batch(self, r: Request) -> Reply:
        repo = self._repo(r, write=True)
        payload = r.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only the 'upload' LFS operation is supported")
        verify = {"href": f"{self.url}/{repo.key}.git/info/lfs/objects/verify", "header": {}}
        objects = []
        for obj in payload.get("objects", []):
            oid, size = str(obj.get("oid")), obj.get("size")
            if not SHA256_RE.fullmatch(oid) or not isinstance(size, int):
                error = {"code": 422, "message": "Invalid oid or size"}
                objects.append({"oid": oid, "size": 0, "error": error})
                continue
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self.lfs_objects:  # no "actions": the client skips the upload
                ticket = secrets.token_hex(16)  # upload URLs carry a ticket, not the token
                self._tickets[ticket] = (oid, size)
                upload = {"href": f"{self.url}/lfs-upload/{ticket}"}
                entry["actions"] = {"upload": upload, "verify": verify}
            objects.append(entry)
        body = {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}
        return 200, body, {"Content-Type": "application/vnd.git-lfs+json"}

    def ep_lfs_upload(self, r: Request) -> Reply:
        if r.groups["ticket"] not in self._tickets:
            raise HubError(403, "Invalid or expired upload URL")
        oid, size = self._tickets[r.groups["ticket"]]
        if len(r.body) != size or hashlib.sha256(r.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match oid {oid} / size {size}")
        self.lfs_objects[oid] = r.body
        return 200, b"", {"ETag": f'"{hashlib.md5(r.body).hexdigest()}"'}

    def ep_lfs_verify(self, r: Request) -> Reply:
        self._repo(r, write=True)
        payload = r.json()
        data = self.lfs_objects.get(str(payload.get("oid")))
        if data is None or len(data) != payload.get("size"):
            raise HubError(404, "LFS object not found")
        return 200, {}, {}

    def ep_commit(self, r: Request) -> Reply:
        """NDJSON commit. The new snapshot is fully built before anything is stored,
        so a rejected commit leaves the repo untouched."""
        repo = self._repo(r, write=True)
        head = self._branch(repo, r.rev())
        try:
            lines = [json.loads(ln) for ln in r.body.decode().splitlines() if ln.strip()]
        except ValueError as e:
            raise HubError(400, f"Invalid NDJSON payload: {e}") from None
        header = next((ln["value"] for ln in lines if ln.get("key") == "header"), None)
        if not header or not header.get("summary"):
            raise HubError(400, "Missing commit header or summary")
        parent = header.get("parentCommit")
        if parent and not head.oid.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files, lfs = dict(head.files), set(head.lfs)
        for line in lines:
            key, value = line.get("key"), line.get("value") or {}
            if key == "header":
                continue
            path = str(value.get("path", "")).strip("/")
            if not path or ".." in path.split("/"):
                raise HubError(400, f"Invalid path in commit: {value.get('path')!r}")
            if key == "file":
                raw = value.get("content", "")
                base64_encoded = value.get("encoding") == "base64"
                files[path] = base64.b64decode(raw) if base64_encoded else raw.encode()
                lfs.discard(path)
            elif key == "lfsFile":
                data = self.lfs_objects.get(str(value.get("oid")))
                if data is None or value.get("size", len(data)) != len(data):
                    raise HubError(400, f"LFS object of {path} was not uploaded")
                files[path] = data
                lfs.add(path)
            elif key in ("deletedFile", "deletedFolder"):
                doomed = [p for p in files if p == path or p.startswith(path + "/")]
                if key == "deletedFile":
                    doomed = [path] if path in files else []
                if not doomed:
                    msg = f"A file with this name doesn't exist: {path}"
                    raise HubError(404, msg, "EntryNotFound")
                for p in doomed:
                    del files[p]
                    lfs.discard(p)
            else:
                raise HubError(400, f"Unknown commit operation: {key!r}")
        branch, pr_url = r.rev(), None
        if r.flag("create_pr"):
            num = 1 + sum(b.startswith("refs/pr/") for b in repo.branches)
            branch = f"refs/pr/{num}"
            repo.branches[branch] = head.oid
            pr_url = f"{self.url}/{repo.key}/discussions/{num}"
        summary, description = header["summary"], header.get("description") or ""
        commit = self._append_commit(repo, branch, files, frozenset(lfs), summary, description, r.user)
        url = f"{self.url}/{repo.key}/commit/{commit.oid}"
        return 200, {"success": True, "commitOid": commit.oid, "commitUrl": url,
                     "hookOutput": "", "pullRequestUrl": pr_url}, {}  # fmt: skip

    def ep_resolve(self, r: Request) -> Reply:
        repo = self._repo(r)
        commit = repo.resolve(r.rev())
        path = unquote(r.groups["path"])
        headers = {"X-Repo-Commit": commit.oid}
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers=headers)
        data = commit.files[path]
        headers["ETag"] = f'"{git_blob_oid(data)}"'
        if path in commit.lfs:
            headers["ETag"] = f'"{git_blob_oid(lfs_pointer(data))}"'
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(data))
        headers["Accept-Ranges"] = "bytes"
        headers["Content-Type"] = "application/octet-stream"
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", r.headers.get("Range", "").strip())
        if not match or match.group(1) == match.group(2) == "":
            return 200, data, headers
        start, end, size = match.group(1), match.group(2), len(data)
        first = int(start) if start else max(size - int(end), 0)
        last = min(int(end), size - 1) if start and end else size - 1
        if first >= size or first > last:
            range_header = {"Content-Range": f"bytes */{size}"}
            raise HubError(416, "Range not satisfiable", headers=range_header)
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return 206, data[first : last + 1], headers


_T = r"(?P<type>models|datasets|spaces)"
_R = r"(?P<ns>[^/]+)/(?P<name>[^/]+?)"
_P = r"(?P<prefix>(?:datasets|spaces)/)?"
ROUTES = [
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("DELETE", r"/api/repos/delete", "delete_repo"),
    ("GET", rf"/api/{_T}/{_R}(?:/revision/(?P<rev>[^/]+))?", "info"),
    ("GET", rf"/api/{_T}/{_R}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
    ("POST", rf"/api/{_T}/{_R}/paths-info/(?P<rev>[^/]+)", "paths_info"),
    ("POST", rf"/api/{_T}/{_R}/branch/(?P<rev>[^/]+)", "create_branch"),
    ("POST", rf"/api/{_T}/{_R}/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", rf"/api/{_T}/{_R}/commit/(?P<rev>[^/]+)", "commit"),
    ("POST", rf"/{_P}{_R}\.git/info/lfs/objects/batch", "lfs_batch"),
    ("POST", rf"/{_P}{_R}\.git/info/lfs/objects/verify", "lfs_verify"),
    ("PUT", r"/lfs-upload/(?P<ticket>[0-9a-f]+)", "lfs_upload"),
    ("GET HEAD", rf"/{_P}{_R}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]
_COMPILED = [(m.split(), re.compile(pattern), name) for m, pattern, name in ROUTES]


class _Handler(BaseHTTPRequestHandler):
    """Reads the whole request, logs it, applies injected failures, then dispatches
    to ``HubServer.ep_*`` under the hub lock."""

    protocol_version = "HTTP/1.1"
    server_version = "LoopbackHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)

    def _send(self, status: int, payload: Any, headers: dict) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        if not isinstance(payload, bytes):
            headers = {"Content-Type": "application/json", **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self, hub: HubServer, body: bytes) -> Reply:
        url = urlsplit(self.path)
        for methods, pattern, name in _COMPILED:
            match = pattern.fullmatch(url.path)
            if match and self.command in methods:
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                groups["_path"] = url.path
                with hub.lock:
                    user, can_write = hub._auth(self.headers)
                    query = parse_qs(url.query)
                    request = Request(groups, query, body, self.headers, user, can_write)
                    return getattr(hub, f"ep_{name}")(request)
        raise HubError(404, f"No route for {self.command} {url.path}")

    def _handle(self) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        body = self._read_body()
        with hub.lock:
            entry = LoggedRequest(self.command, self.path, dict(self.headers.items()))
            hub.request_log.append(entry)
        failure = hub._take_failure(self.command, self.path)
        if failure is not None:
            reply: Reply = failure, {"error": f"Injected failure ({failure})"}, {}
        else:
            try:
                reply = self._dispatch(hub, body)
            except HubError as e:
                message = e.message.encode("ascii", "replace").decode()
                headers = {"X-Error-Message": message, **e.headers}
                if e.code:
                    headers["X-Error-Code"] = e.code
                reply = e.status, e.body, headers
            except Exception:  # a server bug: record it and answer 500
                with hub.lock:
                    hub.errors.append(traceback.format_exc())
                reply = 500, {"error": "Internal server error"}, {}
        self._send(*reply)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle
