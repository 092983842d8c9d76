"""infra/stack.py (stdlib only, not a package) loaded as a module, for tests that inspect the stack."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

from loopline.core.config import REPOSITORY


def _load():
    spec = importlib.util.spec_from_file_location("loopline_stack", REPOSITORY / "infra" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


stack = _load()


def generated_secrets() -> dict[str, str]:
    """Every secret `make setup` generated, by setting name. S3 access key ids are generated
    too but are not secrets: they name an identity, like a user name, and travel in clear in
    every signed request and presigned link (the contract reports' links); their secret keys
    are what must never leak."""
    values = stack.read_env_file()
    return {key: values[key] for key in stack.SECRETS if not key.endswith("ACCESS_KEY_ID")}


def run_stack(command: str, service: str) -> None:
    """`infra/stack.py <command> <service>` (stop, start), as an operator would run it."""
    subprocess.run([sys.executable, str(REPOSITORY / "infra" / "stack.py"), command, service], check=True,
                   cwd=REPOSITORY, timeout=300, capture_output=True)
