"""docker-compose.yaml runs the stack's own services (infra/stack.py), each with its health
check, from one pinned image, with its state in a named volume. `make compose-e2e` runs it."""
import tomllib
from pathlib import Path

import pytest
import yaml

from test_stack_errors import load_stack

REPO = Path(__file__).resolve().parents[2]
ONE_SHOT = {"credentials", "bootstrap", "e2e"}  # settings and secrets, topics and tables, the e2e test


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_each_service_of_the_local_stack_runs_in_its_own_container_with_its_health_check(compose, tmp_path,
                                                                                             monkeypatch):
    monkeypatch.setenv("LOOPLINE_STATE_DIR", str(tmp_path))
    names = [service.name for service in load_stack().services({"LOOPLINE_PROFILE": "local"})]
    assert set(compose["services"]) - ONE_SHOT == set(names)
    for name in names:
        service = compose["services"][name]
        assert service["command"] == ["python3", "infra/stack.py", "run", name]
        assert service["healthcheck"]["test"] == ["CMD", "python3", "infra/stack.py", "health", name]
        assert service["restart"] == "unless-stopped" and service["network_mode"] == "host"


def test_services_start_after_the_credentials_and_only_after_services_that_exist(compose):
    for name, service in compose["services"].items():
        needs = service.get("depends_on", {})
        assert set(needs) <= set(compose["services"]), name
        if name not in ONE_SHOT:
            assert needs["credentials"] == {"condition": "service_completed_successfully"}, name


def test_every_image_is_the_pinned_loopline_image_and_the_state_is_a_named_volume(compose):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, service in compose["services"].items():
        assert service["image"] == f"loopline:{version}", name
        assert service["volumes"] == ["loopline-state:/var/lib/loopline"], name
    assert set(compose["volumes"]) == {"loopline-state"}
