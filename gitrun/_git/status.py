"""`git status --porcelain=v2 -z --branch` parsed: WorkTreeStatus (HEAD, branch,
changed and untracked paths) and parse_status."""

from __future__ import annotations


class WorkTreeStatus:
    def __init__(
        self, head: str | None, branch: str | None, changed: list[str], untracked: list[str]
    ) -> None:
        self.head = head  # None on an unborn branch
        self.branch = branch  # None when detached
        self.changed = changed  # tracked paths with changes (staged or not)
        self.untracked = untracked

    @property
    def dirty(self) -> bool:
        return bool(self.changed or self.untracked)


def parse_status(out: bytes) -> WorkTreeStatus:
    head: str | None = None
    branch: str | None = None
    changed: list[str] = []
    untracked: list[str] = []
    items = out.split(b"\0")
    i = 0
    while i < len(items):
        item = items[i].decode("utf-8", "surrogateescape")
        i += 1
        if not item:
            continue
        if item.startswith("# branch.oid "):
            oid = item[len("# branch.oid ") :]
            head = None if oid == "(initial)" else oid
        elif item.startswith("# branch.head "):
            b = item[len("# branch.head ") :]
            branch = None if b == "(detached)" else b
        elif item.startswith("1 "):
            changed.append(item.split(" ", 8)[8])
        elif item.startswith("2 "):
            changed.append(item.split(" ", 9)[9])
            i += 1  # the original path of a rename follows
        elif item.startswith("u "):
            changed.append(item.split(" ", 10)[10])
        elif item.startswith("? "):
            untracked.append(item[2:])
    return WorkTreeStatus(head=head, branch=branch, changed=changed, untracked=untracked)
