"""Tests of the loopback Hub server through the real ``huggingface_hub`` client.

The client runs in a subprocess because ``huggingface_hub`` reads ``HF_ENDPOINT`` at import time.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    from hub_server import HubServer
except ModuleNotFoundError:  # e.g. --import-mode=importlib: tests/ is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hub_server import HubServer

TOKEN = "hf_validtoken123"
BOB_TOKEN = "hf_bobtoken456"

PRELUDE = """
import json, sys
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
api = HfApi()

def report(**kw):
    print("RESULT:" + json.dumps(kw))

def status_of(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except HfHubHTTPError as e:
        return {"status": e.response.status_code, "type": type(e).__name__, "msg": str(e)[:300]}
    return {"status": 200, "type": None, "msg": ""}
"""


def run_client(server: HubServer, code: str, tmp_path: Path, timeout: float = 60) -> dict:
    """Run ``code`` (after PRELUDE) with the real client against ``server``; return what it ``report``-ed."""
    env = server.client_env(hf_home=str(tmp_path / "hf_home"))
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, f"client failed:\n{proc.stdout}\n{proc.stderr}\nserver errors: {server.errors}"
    results = [line[len("RESULT:") :] for line in proc.stdout.splitlines() if line.startswith("RESULT:")]
    assert results, f"client reported nothing:\n{proc.stdout}\n{proc.stderr}"
    assert not server.errors, server.errors
    return json.loads(results[-1])


@pytest.fixture
def server():
    with HubServer(tokens={TOKEN: "alice", BOB_TOKEN: "bob"}, orgs={"alice": ["acme"], "bob": []}) as srv:
        yield srv
    assert not srv.running


def _make_folder(root: Path) -> dict[str, bytes]:
    files = {
        "notes.txt": b"hello hub\n",
        "config.json": json.dumps({"hidden_size": 8, "labels": ["a", "b"]}).encode(),
        "model.safetensors": bytes(range(256)) * 16,  # small, but LFS by suffix
        "sub/nested.txt": b"nested\n",
        "data/big.txt": b"0123456789" * 100_001,  # > 1 MB: LFS by size
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_upload_folder_and_snapshot_download_roundtrip(server, tmp_path):
    folder = tmp_path / "folder"
    files = _make_folder(folder)
    out = run_client(
        server,
        f"""
        url = api.create_repo("alice/tiny", token={TOKEN!r})
        info = api.upload_folder(repo_id="alice/tiny", folder_path={str(folder)!r}, token={TOKEN!r})
        snap = snapshot_download("alice/tiny", token={TOKEN!r})
        tree = sorted(api.list_repo_files("alice/tiny", token={TOKEN!r}))
        single = hf_hub_download("alice/tiny", "sub/nested.txt", token={TOKEN!r}, cache_dir="single")
        report(url=str(url), oid=info.oid, snap=snap, tree=tree, single=open(single, "rb").read().decode())
        """,
        tmp_path,
    )
    repo = server.repos["alice/tiny"]
    assert out["url"] == f"{server.url}/alice/tiny"
    assert out["oid"] == repo.head.oid and len(repo.commits) == 2
    assert out["tree"] == sorted([*files, ".gitattributes"])
    assert out["single"] == "nested\n"
    snap = Path(out["snap"])
    for rel, data in files.items():
        assert (snap / rel).read_bytes() == data
        assert repo.files[rel] == data
    assert repo.head.lfs == {"model.safetensors", "data/big.txt"}
    methods_paths = [(r.method, r.path.split("?")[0]) for r in server.request_log]
    assert ("POST", "/alice/tiny.git/info/lfs/objects/batch") in methods_paths
    assert any(m == "PUT" and p.startswith("/lfs-upload/") for m, p in methods_paths)
    assert ("POST", "/api/models/alice/tiny/commit/main") in methods_paths
    # The token travels only in the Authorization header: never in a URL or in stored content.
    assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.request_log)
    assert server.find_leaks(TOKEN) == []
    assert all("authorization" not in {k.lower() for k in r.headers} for r in server.request_log if r.method == "PUT")


def test_create_repo_exist_ok_reuses_existing_repo(server, tmp_path):
    server.create_repo("alice/existing")
    before = server.commit_files("alice/existing", {"keep.txt": b"keep"})
    out = run_client(
        server,
        f"""
        url = api.create_repo("alice/existing", token={TOKEN!r}, exist_ok=True)
        again = status_of(api.create_repo, "alice/existing", token={TOKEN!r})
        org = api.create_repo("acme/shared", token={TOKEN!r}, private=True)
        report(url=str(url), again=again, org=str(org))
        """,
        tmp_path,
    )
    assert out["url"] == f"{server.url}/alice/existing"
    assert out["again"]["status"] == 409
    assert server.repos["alice/existing"].head == before
    assert out["org"] == f"{server.url}/acme/shared" and server.repos["acme/shared"].private


def test_invalid_token_gets_401(server, tmp_path):
    out = run_client(
        server,
        f"""
        report(
            whoami_bad=status_of(api.whoami, token="hf_bogus"),
            create_bad=status_of(api.create_repo, "alice/nope", token="hf_bogus"),
            create_anon=status_of(api.create_repo, "alice/nope", token=False),
            me=api.whoami(token={TOKEN!r}),
        )
        """,
        tmp_path,
    )
    assert out["whoami_bad"]["status"] == 401 and "Invalid user token" in out["whoami_bad"]["msg"]
    assert out["create_bad"]["status"] == 401
    assert out["create_anon"]["status"] == 401
    assert out["me"]["name"] == "alice" and [o["name"] for o in out["me"]["orgs"]] == ["acme"]
    assert "alice/nope" not in server.repos


def test_foreign_namespace_gets_403(server, tmp_path):
    server.create_repo("bob/theirs")
    out = run_client(
        server,
        f"""
        report(
            create=status_of(api.create_repo, "bob/mine", token={TOKEN!r}),
            exist_ok=status_of(api.create_repo, "bob/mine", token={TOKEN!r}, exist_ok=True),
            upload=status_of(api.upload_file, path_or_fileobj=b"x", path_in_repo="x.txt",
                             repo_id="bob/theirs", token={TOKEN!r}),
        )
        """,
        tmp_path,
    )
    assert out["create"]["status"] == 403
    assert out["exist_ok"]["status"] == 403
    assert out["upload"]["status"] == 403
    assert "bob/mine" not in server.repos
    assert set(server.repos["bob/theirs"].files) == {".gitattributes"}


def test_private_repo_needs_owner_token(server, tmp_path):
    server.create_repo("alice/secret", private=True)
    server.commit_files("alice/secret", {"secret.txt": b"s3cr3t"})
    out = run_client(
        server,
        f"""
        report(
            anon_info=status_of(api.model_info, "alice/secret", token=False),
            anon_file=status_of(hf_hub_download, "alice/secret", "secret.txt", token=False),
            bob_info=status_of(api.model_info, "alice/secret", token={BOB_TOKEN!r}),
            owner=open(hf_hub_download("alice/secret", "secret.txt", token={TOKEN!r}), "rb").read().decode(),
            private=api.model_info("alice/secret", token={TOKEN!r}).private,
        )
        """,
        tmp_path,
    )
    assert out["anon_info"]["status"] == 401 and out["anon_info"]["type"] == "RepositoryNotFoundError"
    assert out["anon_file"]["status"] == 401
    assert out["bob_info"]["status"] == 404 and out["bob_info"]["type"] == "RepositoryNotFoundError"
    assert out["owner"] == "s3cr3t" and out["private"] is True


def test_failed_commit_is_atomic_and_transient_errors_are_retried(server, tmp_path):
    server.create_repo("alice/atomic")
    folder = tmp_path / "folder"
    files = _make_folder(folder)
    server.fail_next(1, "/commit/", status=500)
    server.fail_next(1, "/preupload/", status=503)
    out = run_client(
        server,
        f"""
        first = status_of(api.upload_folder, repo_id="alice/atomic", folder_path={str(folder)!r}, token={TOKEN!r})
        second = api.upload_folder(repo_id="alice/atomic", folder_path={str(folder)!r}, token={TOKEN!r})
        report(first=first, second=second.oid)
        """,
        tmp_path,
    )
    repo = server.repos["alice/atomic"]
    assert out["first"]["status"] == 500  # commit is not retried by the client
    assert server.failures_triggered == 2  # preupload 503 was retried transparently
    assert out["second"] == repo.head.oid and len(repo.commits) == 2  # failed commit left nothing behind
    assert {p: repo.files[p] for p in files} == files


def test_tree_pagination_and_direct_state_inspection(tmp_path):
    with HubServer(tokens={TOKEN: "alice"}, tree_page_size=2, init_gitattributes=False) as server:
        server.create_repo("alice/many")
        names = {f"d/f{i}.txt": f"{i}".encode() for i in range(5)}
        server.commit_files("alice/many", names)
        out = run_client(
            server,
            """
            files = sorted(api.list_repo_files("alice/many"))
            top = [(e.path, type(e).__name__) for e in api.list_repo_tree("alice/many")]
            report(files=files, top=top)
            """,
            tmp_path,
        )
        assert out["files"] == sorted(names)
        assert out["top"] == [["d", "RepoFolder"]]
        assert sum("cursor=" in r.path for r in server.request_log) == 2
        port = server.port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
