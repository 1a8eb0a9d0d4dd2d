"""The admin OpenAPI document agrees with the server: Schemathesis (PyPI), stateless, every check
(all are on by default; `--checks all` on the command line would override the per-operation config),
against /admin/openapi.json of a mock on port 0, bounded (a few hundred cases, ~15 s).

Schemathesis runs as its own process (its CLI): importing it here would import `requests`, which
breaks gevent's later monkey-patching of ssl for the Locust tests in the same run. A hooks module
teaches it the `pem-public-key` format (real keys, since a random string is not one). Operations
marked `x-semantic-checks` (their bodies are also checked in ways JSON Schema cannot state, e.g. a
window's end after its start) skip only `positive_data_acceptance`; every other check runs on them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mock_platform.openapi import OPENAPI, openapi_document

HOOKS = """
    import schemathesis
    from hypothesis import strategies as st
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def _pem():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    schemathesis.openapi.format("pem-public-key", st.sampled_from([_pem(), _pem()]))
"""


def semantic_paths(doc: dict[str, Any]) -> list[str]:
    return sorted(
        path for path, ops in doc["paths"].items() if any("x-semantic-checks" in op for op in ops.values())
    )


def test_semantic_operations_are_the_ones_expected() -> None:
    assert semantic_paths(OPENAPI) == ["/admin/faults", "/admin/faults/layers/{name}", "/admin/seed"]
    assert semantic_paths(openapi_document(debug_hooks=True))[0] == "/admin/debug/force_issue"
    assert "/admin/debug/force_issue" not in OPENAPI["paths"]
    assert "/admin/debug/force_issue" in openapi_document(debug_hooks=True)["paths"]


@pytest.mark.parametrize("debug_hooks", [False, True])
def test_schemathesis_finds_nothing(make_mock, tmp_path: Path, debug_hooks: bool) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    mock = make_mock(debug_hooks=debug_hooks)
    (tmp_path / "st_hooks.py").write_text(textwrap.dedent(HOOKS))
    off = "[operations.checks.positive_data_acceptance]\nenabled = false\n"
    config = "".join(
        f'[[operations]]\ninclude-path = "{path}"\n{off}\n'
        for path in semantic_paths(openapi_document(debug_hooks=debug_hooks))
    )
    (tmp_path / "schemathesis.toml").write_text(config)
    done = subprocess.run(
        [
            st,
            "--config-file",
            str(tmp_path / "schemathesis.toml"),
            "run",
            f"{mock.url}/admin/openapi.json",
            "--header",
            f"X-Admin-Token: {mock.admin_token}",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "5",
            "--seed",
            "20261126",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
        ],
        cwd=tmp_path,
        env={
            "SCHEMATHESIS_HOOKS": "st_hooks",
            "PYTHONPATH": str(tmp_path),
            "PATH": str(Path(sys.executable).parent),
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    tail = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    assert "Tested: " in done.stdout and "failures" not in done.stdout.split("SUMMARY")[-1].lower(), tail
    # The mock kept serving, and the document it serves is the one this module imported.
    status, doc = mock.admin("GET", "/admin/openapi.json")
    assert status == 200 and json.dumps(doc, sort_keys=True) == json.dumps(
        openapi_document(debug_hooks=debug_hooks), sort_keys=True
    )


def test_a_wrong_method_on_a_documented_path_is_405_with_allow(make_mock) -> None:
    mock = make_mock()
    for path, ops in OPENAPI["paths"].items():
        target = path.replace("{name}", "drill")
        status, headers, _ = mock.request("PATCH", target, b"{}", {"X-Admin-Token": mock.admin_token})
        assert status == 405, (path, status)
        allowed = {m.strip().lower() for m in headers["Allow"].split(",")} - {"head"}
        assert allowed == set(ops), (path, headers["Allow"])
    status, _, _ = mock.request(
        "POST", "/admin/debug/force_issue", b"{}", {"X-Admin-Token": mock.admin_token}
    )
    assert status == 404  # not served, and not documented, without --debug-hooks
