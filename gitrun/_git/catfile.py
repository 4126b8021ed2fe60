"""CatFile: one long-lived `git cat-file --batch` per repository, for reading objects
that are not loose (packed ones)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator, Sequence

from ..errors import GitError
from .run import git_env


class CatFile:
    """A long-lived `git cat-file --batch` for objects that are not loose (packed)."""

    def __init__(self, common_dir: str) -> None:
        self._proc = subprocess.Popen(
            ["git", "cat-file", "--batch"],
            cwd=common_dir,
            env=git_env({"GIT_DIR": common_dir}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a missing/corrupt object is reported by gitrun
        )
        self._lock = threading.Lock()
        self.closed = False
        import atexit

        atexit.register(self.close)  # Repo objects live for the process

    def read(self, sha: str) -> tuple[str, bytes]:
        with self._lock:
            assert self._proc.stdin and self._proc.stdout
            self._proc.stdin.write(sha.encode() + b"\n")
            self._proc.stdin.flush()
            header = self._proc.stdout.readline().decode().split()
            if len(header) < 3 or header[1] == "missing":
                raise GitError(f"git object {sha} is missing from this repository.")
            size = int(header[2])
            data = self._proc.stdout.read(size)
            self._proc.stdout.read(1)
            return header[1], data

    def read_many(self, shas: Sequence[str]) -> Iterator[tuple[str, str, bytes]]:
        """Stream many objects; writes on a thread so the pipe never deadlocks."""
        with self._lock:
            assert self._proc.stdin and self._proc.stdout
            stdin = self._proc.stdin

            def feed() -> None:
                stdin.write(b"".join(s.encode() + b"\n" for s in shas))
                stdin.flush()

            t = threading.Thread(target=feed, daemon=True)
            t.start()
            out = self._proc.stdout
            for sha in shas:
                header = out.readline().decode().split()
                if len(header) < 3 or header[1] == "missing":
                    yield sha, "missing", b""
                    continue
                data = out.read(int(header[2]))
                out.read(1)
                yield sha, header[1], data
            t.join()

    def close(self) -> None:
        self.closed = True
        try:
            if self._proc.stdin:
                self._proc.stdin.close()
            self._proc.wait(timeout=5)
            if self._proc.stdout:
                self._proc.stdout.close()
        except Exception:
            self._proc.kill()
