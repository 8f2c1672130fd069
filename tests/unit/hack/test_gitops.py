"""The local GitOps helpers without a cluster: a real git remote, and when an Application
counts as synced."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localcluster import gitops


def test_publish_tree_commits_tracked_files_as_on_disk_and_commits_push(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    gitops.git(tmp_path, "init", "--quiet", str(source))
    (source / "kept.yaml").write_text("a: 1\n")
    (source / ".gitignore").write_text("ignored/\n")
    (source / "ignored").mkdir()
    (source / "ignored" / "cache.bin").write_text("x")
    gitops.git(source, "add", "kept.yaml", ".gitignore")
    gitops.git(source, "commit", "--quiet", "-m", "first")
    (source / "kept.yaml").write_text("a: 2\n")  # an edit not committed yet
    (source / "new.yaml").write_text("b: 1\n")  # untracked, not ignored

    remote = gitops.LocalRemote(tmp_path / "remote")
    first = remote.publish_tree(source)
    listed = gitops.git(remote.bare, "ls-tree", "-r", "--name-only", gitops.BRANCH).split()
    assert sorted(listed) == [".gitignore", "kept.yaml", "new.yaml"]
    assert gitops.git(remote.bare, "show", f"{gitops.BRANCH}:kept.yaml") == "a: 2\n"

    second = remote.commit("edit", {"kept.yaml": "a: 3\n", "new.yaml": None})
    assert second != first
    assert gitops.git(remote.bare, "rev-parse", gitops.BRANCH).strip() == second
    listed = gitops.git(remote.bare, "ls-tree", "-r", "--name-only", gitops.BRANCH).split()
    assert sorted(listed) == [".gitignore", "kept.yaml"]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", remote.url, str(clone)], check=True)
    assert (clone / "kept.yaml").read_text() == "a: 3\n"


def app(sync: str, revision: str, operation: str | None = None) -> dict[str, object]:
    status: dict[str, object] = {"sync": {"status": sync, "revision": revision}}
    if operation:
        status["operationState"] = {"phase": operation}
    return {"status": status}


def test_settled_needs_synced_at_the_revision_with_no_running_operation() -> None:
    assert gitops.settled(app("Synced", "abc"))
    assert gitops.settled(app("Synced", "abc", "Succeeded"), "abc")
    assert not gitops.settled(app("Synced", "abc"), "def")
    assert not gitops.settled(app("OutOfSync", "abc"), "abc")
    assert not gitops.settled(app("Synced", "abc", "Running"), "abc")
    multi = {"status": {"sync": {"status": "Synced", "revisions": ["x", "y"]}}}
    assert gitops.settled(multi, "y")
    assert not gitops.settled({}, None)
