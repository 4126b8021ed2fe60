"""gitrun's run commits are authored by the identity git itself would use.

Each test removes the GIT_AUTHOR_* / GIT_COMMITTER_* variables conftest sets, so that
git's configuration (includes, GIT_CONFIG_* variables, multi-valued keys) decides.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import gitrun
from gitrun._git import Repo
from gitrun.format import store
from tests.conftest import git

_IDENT_VARS = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")


@pytest.fixture
def no_env_identity(monkeypatch):
    for k in _IDENT_VARS:
        monkeypatch.delenv(k, raising=False)
    for k in (
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_PARAMETERS",
    ):
        monkeypatch.delenv(k, raising=False)


def run_author(repo: Path) -> tuple[str, str]:
    """Record one run; the (name, email) its commit is authored by."""
    with gitrun.start_run():
        gitrun.log_param("p", 1)
    name, email = git(repo, "log", "-1", "--format=%an%n%ae", store.RUNS_REF).splitlines()
    return name, email


def git_author(repo: Path) -> tuple[str, str]:
    """What git itself would author a commit with here (`git var` and a real commit agree)."""
    ident = git(repo, "var", "GIT_AUTHOR_IDENT").strip()
    name, _, rest = ident.partition(" <")
    email = rest.partition(">")[0]
    git(repo, "commit", "-q", "--allow-empty", "-m", "probe")
    assert git(repo, "log", "-1", "--format=%an%n%ae").splitlines() == [name, email]
    return name, email


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_includeif_gitdir_identity_authors_the_run(repo, no_env_identity):
    home = Path.home()
    write(home / "work.inc", "[user]\n\tname = Work Name\n\temail = work@corp.example\n")
    write(
        home / ".gitconfig",
        "[user]\n\tname = Home Name\n\temail = home@example.com\n"
        f'[includeIf "gitdir:{repo.parent}/"]\n\tpath = work.inc\n',
    )
    expected = git_author(repo)
    assert expected == ("Work Name", "work@corp.example")
    assert run_author(repo) == expected


def test_include_path_identity_authors_the_run(repo, no_env_identity):
    inc = write(repo.parent / "shared" / "ident.inc", "[user]\n\temail = inc@example.com\n")
    write(Path.home() / ".gitconfig", "[user]\n\tname = Home Name\n\temail = home@example.com\n")
    git(repo, "config", "--local", "include.path", str(inc))
    expected = git_author(repo)
    assert expected == ("Home Name", "inc@example.com")
    assert run_author(repo) == expected


def test_include_edited_later_is_seen_by_the_same_process(repo, no_env_identity):
    inc = write(repo.parent / "ident.inc", "[user]\n\tname = First\n\temail = a@example.com\n")
    git(repo, "config", "--local", "include.path", str(inc))
    assert run_author(repo) == ("First", "a@example.com")
    r = Repo.discover(str(repo))
    read = r._config
    assert r.identity() == ("First", "a@example.com") and r._config is read  # not re-read
    assert str(inc) in r._config_watch
    write(inc, "[user]\n\tname = Second Name\n\temail = b@example.com\n")
    later = inc.stat().st_mtime + 2  # an edit seconds later, whatever the clock's grain
    os.utime(inc, (later, later))
    assert run_author(repo) == git_author(repo) == ("Second Name", "b@example.com")


def test_git_config_global_elsewhere_authors_the_run(repo, no_env_identity, monkeypatch):
    write(Path.home() / ".gitconfig", "[user]\n\tname = Home Name\n\temail = home@example.com\n")
    other = write(repo.parent / "other.gitconfig", "[user]\n\tname = Other\n\temail = o@x.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(other))
    expected = git_author(repo)
    assert expected == ("Other", "o@x.org")
    assert run_author(repo) == expected


def test_git_config_count_overrides_files(repo, no_env_identity, monkeypatch):
    write(Path.home() / ".gitconfig", "[user]\n\tname = Home Name\n\temail = home@example.com\n")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.name")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "Env Name")
    monkeypatch.setenv("GIT_CONFIG_KEY_1", "user.email")
    monkeypatch.setenv("GIT_CONFIG_VALUE_1", "env@example.com")
    expected = git_author(repo)
    assert expected == ("Env Name", "env@example.com")
    assert run_author(repo) == expected


def test_git_config_parameters_override_files(repo, no_env_identity, monkeypatch):
    # What `git -c user.name=... gitrun-hook` hands its children.
    write(Path.home() / ".gitconfig", "[user]\n\tname = Home Name\n\temail = home@example.com\n")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'user.name'='Param Name'")
    expected = git_author(repo)
    assert expected == ("Param Name", "home@example.com")
    assert run_author(repo) == expected


def test_git_config_nosystem_and_system_file(repo, no_env_identity, monkeypatch):
    # GIT_CONFIG_SYSTEM (git >= 2.32) moves the system file, so this is observable
    # without writing /etc/gitconfig.
    system = write(repo.parent / "system.gitconfig", "[user]\n\tname = Sys\n\temail = s@sys.org\n")
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(system))
    monkeypatch.delenv("GIT_CONFIG_NOSYSTEM", raising=False)
    if git(repo, "config", "user.name", check=False).strip() != "Sys":
        pytest.skip("this git does not know GIT_CONFIG_SYSTEM (git < 2.32)")
    assert run_author(repo) == git_author(repo) == ("Sys", "s@sys.org")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    write(Path.home() / ".gitconfig", "[user]\n\tname = Home Name\n\temail = home@example.com\n")
    assert run_author(repo) == git_author(repo) == ("Home Name", "home@example.com")


def test_multi_valued_keys_last_one_wins(repo, no_env_identity):
    write(
        Path.home() / ".gitconfig",
        "[user]\n\tname = One\n\temail = one@example.com\n[user]\n\tname = Two\n",
    )
    git(repo, "config", "--local", "--add", "user.email", "local1@example.com")
    git(repo, "config", "--local", "--add", "user.email", "local2@example.com")
    expected = git_author(repo)
    assert expected == ("Two", "local2@example.com")
    assert run_author(repo) == expected


def test_subsection_names_keep_their_case(repo):
    git(repo, "remote", "add", "Upstream", "https://example.com/u.git")
    r = Repo.discover(str(repo))
    assert r.config("remote.Upstream.url") == "https://example.com/u.git"
    assert r.config("REMOTE.Upstream.URL") == "https://example.com/u.git"
    assert r.config("remote.upstream.url") is None  # as `git config remote.upstream.url`


def test_identity_falls_back_when_nothing_is_configured(repo, no_env_identity):
    # No user.* anywhere (HOME is empty, no system file): gitrun still records.
    r = Repo.discover(str(repo))
    assert r.identity() == ("gitrun", "gitrun@localhost")
    assert run_author(repo) == ("gitrun", "gitrun@localhost")


def test_identity_falls_back_when_git_rejects_the_config(repo, no_env_identity):
    # A broken included file makes `git config -l` fail (and every other git command,
    # so no run can be recorded); asking for the identity still never fails.
    bad = write(repo.parent / "bad.inc", "[user\n\tname = = =\n")
    write(Path.home() / ".gitconfig", "[user]\n\tname = Home Name\n\temail = home@example.com\n")
    git(repo, "config", "--local", "include.path", str(bad))
    assert Repo.discover(str(repo)).identity() == ("Home Name", "home@example.com")
