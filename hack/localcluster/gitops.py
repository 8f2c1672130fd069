"""The GitOps loop on the local cluster: a bare git repository standing in for the team's
remote, commits to it, and the repository's ArgoCD manifests applied with their URL
pointed at it. ``make argocd-demo`` and the ArgoCD end-to-end tests both use this.

Git runs with no user or system configuration (never the user's ~/.gitconfig).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .argocd import NAMESPACE
from .common import ROOT, ClusterError

# The URL the manifests in argocd/ are written with (a placeholder for the team's remote).
PLACEHOLDER_URL = "https://git.example.com/platform/datamesh.git"
BRANCH = "main"
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"

Kubectl = Callable[..., str]


def _git_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "datamesh local platform",
        "GIT_AUTHOR_EMAIL": "platform@datamesh.invalid",
        "GIT_COMMITTER_NAME": "datamesh local platform",
        "GIT_COMMITTER_EMAIL": "platform@datamesh.invalid",
    }


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=_git_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ClusterError(f"git {' '.join(args)} in {cwd} failed: {proc.stderr.strip()}")
    return proc.stdout


class LocalRemote:
    """A bare repository (what ArgoCD reads, by file:// URL) and a work tree to commit
    from, both under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.bare = self.folder / "datamesh.git"
        self.work = self.folder / "work"

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def publish_head(self, source: Path = ROOT) -> str:
        """Push ``source``'s committed HEAD as the remote's main branch (what `make
        argocd-demo` syncs); returns the commit."""
        self._init_bare()
        git(source, "push", "--quiet", "--force", str(self.bare), f"HEAD:refs/heads/{BRANCH}")
        shutil.rmtree(self.work, ignore_errors=True)
        git(self.folder, "clone", "--quiet", "--branch", BRANCH, str(self.bare), str(self.work))
        return self.head()

    def publish_tree(self, source: Path = ROOT) -> str:
        """Commit ``source``'s tracked files as they are on disk (edits included) as the
        first commit of the remote (what the tests sync: the code under test)."""
        self._init_bare()
        shutil.rmtree(self.work, ignore_errors=True)
        git(self.folder, "init", "--quiet", "--initial-branch", BRANCH, str(self.work))
        listed = git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        for name in filter(None, listed.split("\0")):
            src = source / name
            if src.is_file():
                dst = self.work / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "-m", "The repository under test")
        git(self.work, "push", "--quiet", "--force", str(self.bare), f"{BRANCH}:{BRANCH}")
        git(self.work, "remote", "add", "origin", str(self.bare))
        return self.head()

    def commit(self, message: str, changes: Mapping[str, str | None]) -> str:
        """Write (text) or delete (None) files, commit and push; returns the commit."""
        for name, text in changes.items():
            path = self.work / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "-m", message)
        git(self.work, "push", "--quiet", str(self.bare), f"{BRANCH}:{BRANCH}")
        return self.head()

    def read(self, name: str) -> str:
        return (self.work / name).read_text()

    def head(self) -> str:
        return git(self.work, "rev-parse", "HEAD").strip()

    def _init_bare(self) -> None:
        if not self.bare.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            git(
                self.folder, "init", "--quiet", "--bare", "--initial-branch", BRANCH, str(self.bare)
            )


def _pointed_at(text: str, url: str) -> str:
    return text.replace(PLACEHOLDER_URL, url)


def bootstrap(kubectl: Kubectl, url: str, operator_values: Mapping[str, Any]) -> None:
    """What the README tells a platform team to do, with the URL pointed at ``url``:
    merge the health checks into argocd-cm (a merge patch keeps its other keys), apply
    the AppProjects and the root Application. ``operator_values`` go to the operator's
    chart (the local image, for instance)."""
    kubectl(
        "patch",
        "configmap",
        "argocd-cm",
        "-n",
        NAMESPACE,
        "--type=merge",
        f"--patch-file={ROOT / 'argocd' / 'argocd-cm-health.yaml'}",
    )
    kubectl(
        "apply",
        "-f",
        "-",
        input=_pointed_at((ROOT / "argocd" / "project.yaml").read_text(), url),
    )
    root = json.loads(
        kubectl(
            "create",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            "-",
            input=_pointed_at((ROOT / "argocd" / "root.yaml").read_text(), url),
        )
    )
    if operator_values:
        root["spec"]["source"]["helm"]["valuesObject"] = {"operator": dict(operator_values)}
    kubectl("apply", "-f", "-", input=json.dumps(root))


def applications(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    out = kubectl("get", "applications.argoproj.io", "-n", NAMESPACE, "-o", "json")
    return {a["metadata"]["name"]: a for a in json.loads(out)["items"]}


def refresh(kubectl: Kubectl, *names: str) -> None:
    """Ask ArgoCD to compare these Applications with git now (as a push webhook does)."""
    for name in names:
        kubectl(
            "annotate",
            "applications.argoproj.io",
            name,
            "-n",
            NAMESPACE,
            f"{REFRESH_ANNOTATION}=normal",
            "--overwrite",
        )


def settled(app: dict[str, Any], revision: str | None = None) -> bool:
    """Synced to ``revision`` (any, when None), healthy or not, with no operation running."""
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    operation = (status.get("operationState") or {}).get("phase")
    at_revision = revision is None or revision in (
        sync.get("revision"),
        *(sync.get("revisions") or []),
    )
    return sync.get("status") == "Synced" and at_revision and operation != "Running"


def wait_all_synced(
    kubectl: Kubectl, expected: int, timeout: float, *, healthy: bool = True
) -> dict[str, dict[str, Any]]:
    """Wait until ``expected`` Applications exist, each Synced (and Healthy, unless told
    not to); returns them, or raises naming those that are not."""
    deadline = time.monotonic() + timeout
    apps: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        apps = applications(kubectl)
        done = [
            a
            for a in apps.values()
            if settled(a)
            and (
                not healthy
                or ((a.get("status") or {}).get("health") or {}).get("status") == "Healthy"
            )
        ]
        if len(apps) >= expected and len(done) == len(apps):
            return apps
        time.sleep(1)
    raise ClusterError(
        f"ArgoCD did not sync every Application within {timeout:.0f} s:\n"
        + "\n".join(f"  {name}: {summary(a)}" for name, a in sorted(apps.items()))
        + ("" if len(apps) >= expected else f"\n  ({len(apps)} of {expected} Applications exist)")
    )


def summary(app: dict[str, Any]) -> str:
    status = app.get("status") or {}
    operation = status.get("operationState") or {}
    conditions = "; ".join(c.get("message", "") for c in status.get("conditions") or [])
    return (
        f"sync={(status.get('sync') or {}).get('status')} "
        f"health={(status.get('health') or {}).get('status')} "
        f"operation={operation.get('phase')} {operation.get('message', '')}"
        + (f" conditions: {conditions}" if conditions else "")
    ).strip()
