"""`gitrun ui`: the command (a real subprocess), the app's routes, and read-only-ness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import git, snapshot_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _runs(d) -> list[str]:
    import gitrun

    ids = []
    gitrun.set_experiment("sweep")
    for i in range(3):
        with gitrun.start_run(run_name=f"t{i}") as run:
            gitrun.log_param("lr", i / 10)
            gitrun.log_metric("f1", 0.9 + i / 100)
            gitrun.log_text("x" * (i + 1), "out/x.txt")
            ids.append(run.info.run_id)
    return ids


def fetch(url: str, method: str = "GET", body: bytes | None = None):
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _spawn(args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITRUN_", "MLFLOW_"))}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "gitrun", "ui", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gitrun_ui_serves_prints_the_url_and_stops_cleanly_on_ctrl_c(repo):
    ids = _runs(repo)
    port = _free_port()
    proc = _spawn(["--port", str(port)], repo)
    try:
        first = proc.stdout.readline()  # the command prints once the port is bound
        assert "serving the runs of" in first, first + proc.stderr.read()
        url = proc.stdout.readline().split()[0].rstrip("/")
        assert url == f"http://127.0.0.1:{port}"
        status, _, body = fetch(url + "/api/2.0/mlflow/runs/search", "POST", b"{}")
        assert status == 200
        assert sorted(r["info"]["run_id"] for r in json.loads(body)["runs"]) == sorted(ids)
        status, headers, page = fetch(url + "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Traceback" not in out
    assert "stopped" in out
    with pytest.raises(OSError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_port_in_use_is_one_sentence_and_exit_1(repo):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = _spawn(["--port", str(port)], repo)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip() == (
        f"Error: Port {port} on 127.0.0.1 is already in use (another `gitrun ui` or server?); "
        "pick another one with --port."
    )
    assert out == ""


def test_outside_a_repository_and_bad_ports(tmp_path):
    proc = _spawn([], tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "not inside a git repository" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    from click.testing import CliRunner

    from gitrun.cli import cli

    r = CliRunner().invoke(cli, ["ui", "--port", "70000"])
    assert r.exit_code == 2 and "70000" in r.output


def test_a_non_loopback_host_warns_that_the_network_can_read_the_runs(repo):
    proc = _spawn(["--host", "0.0.0.0", "--port", "0", "-q"], repo)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert fetch(url + "/api/2.0/mlflow/experiments/search")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "warning" in err and "anyone" in err and "network" in err
    assert proc.returncode == 0 and "Traceback" not in err


def test_loopback_is_recognised():
    from gitrun.ui.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


# ---------------------------------------------------------------------------
# routes and read-only-ness (gitrun.ui.server.running: uvicorn in a thread)
# ---------------------------------------------------------------------------
WRITES = [
    ("POST", "runs/create", {"experiment_id": "sweep"}),
    ("POST", "runs/update", {"run_id": "{rid}", "status": "FAILED"}),
    ("POST", "runs/delete", {"run_id": "{rid}"}),
    ("POST", "runs/restore", {"run_id": "{rid}"}),
    ("POST", "runs/log-metric", {"run_id": "{rid}", "key": "f1", "value": 0, "timestamp": 0}),
    ("POST", "runs/log-parameter", {"run_id": "{rid}", "key": "lr", "value": "9"}),
    ("POST", "runs/log-batch", {"run_id": "{rid}", "metrics": []}),
    ("POST", "runs/set-tag", {"run_id": "{rid}", "key": "k", "value": "v"}),
    ("POST", "runs/delete-tag", {"run_id": "{rid}", "key": "k"}),
    ("POST", "runs/log-inputs", {"run_id": "{rid}"}),
    ("POST", "experiments/create", {"name": "new"}),
    ("POST", "experiments/delete", {"experiment_id": "sweep"}),
    ("POST", "experiments/update", {"experiment_id": "sweep", "new_name": "x"}),
    ("POST", "experiments/set-experiment-tag", {"experiment_id": "sweep", "key": "k"}),
    ("POST", "registered-models/create", {"name": "m"}),
    ("POST", "model-versions/create", {"name": "m", "source": "x"}),
    ("DELETE", "registered-models/delete", {"name": "m"}),
    ("PATCH", "logged-models/abc", {}),
    ("PUT", "runs/get", {}),
    ("DELETE", "runs/search", {}),
]


def test_nothing_writes_to_the_repository(repo, monkeypatch):
    from gitrun.ui.server import running

    ids = _runs(repo)
    rid = ids[0]
    git(repo, "add", "-N", "train.py")  # a non-trivial index, which must stay as it is
    before = snapshot_state(repo)
    runs_ref = git(repo, "rev-parse", "refs/gitrun/runs")
    with running(str(repo)) as url:
        for method, path, body in WRITES:
            data = json.dumps(body).replace("{rid}", rid).encode()
            for prefix in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"):
                status, headers, out = fetch(url + prefix + path, method, data)
                assert status == 403, (method, path, out)
                err = json.loads(out)
                assert err["error_code"] == "PERMISSION_DENIED", (method, path)
                assert err["message"].startswith("gitrun ui is read-only"), err
        for method, path in [
            ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{rid}/artifacts/out/x.txt"),
            ("DELETE", f"/api/2.0/mlflow-artifacts/artifacts/{rid}/artifacts/out/x.txt"),
            ("POST", "/api/3.0/mlflow/traces"),
            ("POST", "/ajax-api/2.0/mlflow/upload-artifact"),
        ]:
            status, _, out = fetch(url + path, method, b"data")
            assert status == 403 and b"read-only" in out, path
        reads = [
            "/api/2.0/mlflow/experiments/search",
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=sweep",
            "/api/2.0/mlflow/experiments/get?experiment_id=sweep",
            "/api/2.0/mlflow/runs/search?filter=metrics.f1%3E0",
            f"/api/2.0/mlflow/runs/get?run_id={rid}",
            f"/api/2.0/mlflow/metrics/get-history?run_id={rid}&metric_key=f1",
            f"/api/2.0/mlflow/artifacts/list?run_id={rid}",
            f"/get-artifact?run_id={rid}&path=out/x.txt",
            f"/model-versions/get-artifact?run_id={rid}&path=out/x.txt",
            f"/api/2.0/mlflow-artifacts/artifacts?path={rid}/artifacts/out",
            f"/api/2.0/mlflow-artifacts/artifacts/{rid}/artifacts/out/x.txt",
            "/api/3.0/mlflow/server-info",
            "/",
            f"/runs/{rid}",
            "/compare?runs=a,b",
        ]
        for path in reads * 3:
            status, _, out = fetch(url + path)
            assert status == 200, (path, out[:200])
        # the page's own endpoints (views.py), whatever they are, with plausible params
        from gitrun.ui import views

        q = (
            f"?runs={rid},{ids[1]}&refs={rid},t1&keys=f1&a={rid}&b={ids[1]}"
            f"&experiment=sweep&run={rid}&path=out/x.txt"
        )
        for route in views.routes:
            path = getattr(route, "path", "").replace("{ref:path}", rid)
            if path.startswith("/api/"):
                fetch(url + path + q)
        for method in ("POST", "GET"):
            status, _, _ = fetch(
                url + "/api/2.0/mlflow/runs/search", method, b"{}" if method == "POST" else None
            )
            assert status == 200
    assert snapshot_state(repo) == before
    assert git(repo, "rev-parse", "refs/gitrun/runs") == runs_ref


def test_page_routes_and_static_files(repo):
    from gitrun.ui.server import STATIC_DIR, running

    _runs(repo)
    index = open(os.path.join(STATIC_DIR, "index.html"), "rb").read()
    with running(str(repo)) as url:
        for path in ("/", "/runs/abcd1234", "/compare?runs=a,b,c", "/?experiment=sweep&filter=x"):
            status, headers, body = fetch(url + path)
            assert status == 200 and body == index, path
            assert headers["content-type"].startswith("text/html")
        vendored = sorted(os.listdir(os.path.join(STATIC_DIR, "vendor")))
        assert vendored, "the vendored chart library is missing"
        name = next(n for n in vendored if n.endswith(".js"))
        status, headers, body = fetch(url + "/static/vendor/" + name)
        assert status == 200 and body == open(os.path.join(STATIC_DIR, "vendor", name), "rb").read()
        assert fetch(url + "/static/../server.py")[0] == 404
        assert fetch(url + "/no/such/page")[0] == 404
        status, headers, body = fetch(url + "/api/nothing")
        assert status == 404 and json.loads(body)["error_code"] == "ENDPOINT_NOT_FOUND"
    # the block has ended: the server is gone
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/", timeout=2)


def test_running_serves_two_repositories_side_by_side(repo, tmp_path):
    from gitrun.ui.server import running

    _runs(repo)
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    with running(str(repo)) as a, running(str(other)) as b:
        assert a != b
        ra = json.loads(fetch(a + "/api/2.0/mlflow/runs/search", "POST", b"{}")[2])
        rb = json.loads(fetch(b + "/api/2.0/mlflow/runs/search", "POST", b"{}")[2])
        assert len(ra["runs"]) == 3 and rb == {"runs": []}


def test_the_benchmark_script_runs_and_prints_its_figures(tmp_path):
    """bench/bench_ui.py keeps working (its timings are reported, not asserted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITRUN_", "MLFLOW_"))}
    p = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "bench", "bench_ui.py"),
            "--runs",
            "60",
            "--rss-runs",
            "40",
            "--reps",
            "2",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    for figure in ("runs/search top 100", "compare: 10 runs", "first table data", "server RSS"):
        assert figure in p.stdout, (figure, p.stdout)
    assert list(tmp_path.iterdir()) == []  # the throw-away repositories are removed


def test_requests_for_another_host_are_refused(repo):
    """A page elsewhere cannot read the runs by pointing its own name at 127.0.0.1
    (DNS rebinding): only loopback Host headers are answered."""
    import http.client

    from gitrun.ui.server import running

    with running(str(repo)) as url:
        port = int(url.rsplit(":", 1)[1])
        for host, want in [
            (f"127.0.0.1:{port}", 200),
            (f"localhost:{port}", 200),
            (f"[::1]:{port}", 200),
            (f"attacker.example:{port}", 400),
            ("127.0.0.1.attacker.example", 400),
        ]:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.putrequest("GET", "/api/2.0/mlflow/experiments/search", skip_host=True)
            c.putheader("Host", host)
            c.endheaders()
            r = c.getresponse()
            body = json.loads(r.read())
            c.close()
            assert r.status == want, (host, body)
            if want == 400:
                assert body["error_code"] == "BAD_REQUEST" and "loopback" in body["message"]


def test_a_git_lfs_artifact_is_served_verified_and_a_damaged_one_refused(repo):
    """Artifacts above large-file-threshold live in .git/lfs/objects: /get-artifact streams
    them whole; a damaged object is refused before a byte is sent, and nothing is fetched."""
    import gitrun
    from gitrun.format import lfs
    from gitrun.ui.server import running
    from tests.conftest import run_cli

    assert run_cli("config", "large-file-threshold", "1MB", cwd=repo).returncode == 0
    data = os.urandom(3 << 20)
    (repo / "big.bin").write_bytes(data)
    with gitrun.start_run(run_name="big") as run:
        gitrun.log_artifact(str(repo / "big.bin"))
    rid = run.info.run_id
    from gitrun._git import Repo
    from gitrun.query import resolve

    assert resolve.load(Repo.discover(str(repo)), rid).artifacts["big.bin"].storage == "lfs"
    with running(str(repo)) as url:
        status, _headers, body = fetch(f"{url}/get-artifact?run_id={rid}&path=big.bin")
        assert status == 200 and body == data
        import hashlib

        oid = hashlib.sha256(data).hexdigest()
        path = lfs.object_path(Repo.discover(str(repo)), oid)
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            f.write(b"X")
        status, _headers, body = fetch(f"{url}/get-artifact?run_id={rid}&path=big.bin")
        assert status in (400, 404), body[:200]
        assert b"error_code" in body
