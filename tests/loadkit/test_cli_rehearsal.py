"""`loadkit run` with a rehearsal plan: refused (exit 3, one line) before anything starts when
the mock it needs is missing or --host is given; drills checked by the mock itself."""

from __future__ import annotations

import pytest
import yaml

from loadkit.cli import main
from loadkit.plan import parse_plan
from loadkit.rehearsal import drills
from loadkit.rehearsal.mock_admin import MockAdminError


def plan_file(tmp_path, **sections):
    (tmp_path / "users.py").write_text("from locust import User\n")
    doc = {"name": "t", "locustfile": "users.py", "stages": [{"duration": "5s", "qps": 1}], **sections}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


SERVICE = {"command": ["{python}", "-m", "svc"], "ready": "http://127.0.0.1:{port}/healthz"}
DRILLS = [{"name": "d", "at": "1s", "for": "1s", "faults": {"*": {"outage": {}}}}]


@pytest.mark.parametrize("sections", [{"service": SERVICE}, {"drills": DRILLS, "host": "http://127.0.0.1:9"}])
def test_a_rehearsal_needs_the_mock(tmp_path, capsys, monkeypatch, sections):
    monkeypatch.delenv("LOADKIT_MOCK_ADMIN_TOKEN", raising=False)
    assert main(["run", str(plan_file(tmp_path, **sections)), "--headless"]) == 3
    err = capsys.readouterr().err
    assert "needs the mock platform" in err and "--with-mock" in err and "Traceback" not in err


def test_the_service_is_the_target(tmp_path, capsys):
    assert main(["run", str(plan_file(tmp_path, service=SERVICE)), "--host", "http://127.0.0.1:9"]) == 3
    assert "do not give --host" in capsys.readouterr().err


def test_drills_are_checked_by_the_mock():
    class Refusing:
        def put_layer(self, name, faults, start_at, duration_s):
            raise MockAdminError(
                "PUT /admin/faults/layers/d answered 400: layers.d.faults.*.outage.mode: bad"
            )

    plan = parse_plan({"name": "t", "stages": [{"duration": "5s", "qps": 1}], "drills": DRILLS})
    with pytest.raises(MockAdminError, match=r"drills: d: the mock platform refused its faults: .*mode: bad"):
        drills.check(Refusing(), plan.drills)  # type: ignore[arg-type]
