"""Where a model came from: the code's git commit and the exact package versions it needs."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

from loopline.core.config import REPOSITORY

UNKNOWN = "unknown"


def git_commit() -> tuple[str, bool]:
    """(commit, dirty) of the checkout Loopline runs from. A deployment without `.git`
    sets LOOPLINE_GIT_COMMIT at build time; otherwise the commit is "unknown"."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("LOOPLINE_GIT_COMMIT", UNKNOWN), False


def pinned(packages: tuple[str, ...]) -> list[str]:
    """`name==version` for each installed package: what a logged model declares it needs."""
    return [f"{name}=={metadata.version(name)}" for name in packages]


def runtime() -> str:
    return f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"
