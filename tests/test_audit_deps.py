"""The dependency audit (tools/audit_deps.py) flags known vulnerabilities and never passes
what it could not check.

Most tests serve PyPI's JSON API from a local server on 127.0.0.1 with documents shaped as
PyPI returns them, so that every branch is exercised offline. The last ones ask the real
data source this machine reaches (the package registry) about a historic vulnerable pin.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tool_loader import load_tool

audit = load_tool("audit_deps")

ADVISORY = {
    "id": "PYSEC-2099-1",
    "aliases": ["CVE-2099-0001", "GHSA-aaaa-bbbb-cccc"],
    "details": "A flaw.",
    "summary": None,
    "fixed_in": ["2.0.1"],
    "link": "https://osv.dev/vulnerability/PYSEC-2099-1",
    "source": "osv",
    "withdrawn": None,
}


class FakeIndex:
    """PyPI's JSON API on loopback: project documents, and per-version ones if asked."""

    def __init__(self, *, per_version: bool = False, fail: bool = False) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.per_version = per_version
        self.fail = fail
        self.paths: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.paths.append(self.path)
                document = index.answer(self.path.strip("/").split("/"))
                if index.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps(document).encode() if document is not None else b""
                self.send_response(200 if document is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/pypi"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, name: str, latest: str, vulns: list[dict[str, Any]]) -> None:
        canonical = audit.Pin(name, latest).canonical
        self.projects[canonical] = {
            "info": {"name": name, "version": latest},
            "vulnerabilities": vulns,
        }

    def answer(self, parts: list[str]) -> dict[str, Any] | None:
        if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json":
            return self.projects.get(parts[1])
        if len(parts) == 4 and parts[0] == "pypi" and parts[3] == "json" and self.per_version:
            project = self.projects.get(parts[1])
            if project is not None and project["info"]["version"] == parts[2]:
                return project
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def index() -> Iterator[FakeIndex]:
    served = FakeIndex()
    served.add("pip", "24.0", [])  # the probe
    yield served
    served.close()


def _pins(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(index: FakeIndex, requirements: Path, *extra: str) -> int:
    return int(audit.main(["-r", str(requirements), "--index-json", index.base, *extra]))


def test_a_vulnerable_latest_release_fails_with_the_advisory(
    index: FakeIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add("leaky", "2.0.0", [ADVISORY])
    assert _run(index, _pins(tmp_path, "leaky==2.0.0")) == audit.VULNERABLE
    out = capsys.readouterr().out
    assert "VULNERABLE   leaky 2.0.0: PYSEC-2099-1 (CVE-2099-0001, GHSA-aaaa-bbbb-cccc)" in out
    assert "fixed in: 2.0.1" in out
    assert "answers 404" in out  # it says which source it fell back to, and why


def test_a_clean_latest_release_passes(
    index: FakeIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add("tidy", "1.4", [])
    index.add("Other_Name", "3.0", [{**ADVISORY, "withdrawn": "2099-02-01T00:00:00Z"}])
    requirements = _pins(tmp_path, "# pinned", "tidy==1.4", "other.name==3.0.0  # normalised")
    assert _run(index, requirements) == audit.OK
    assert "2 checked, 0 known vulnerabilities, 0 not checked" in capsys.readouterr().out


def test_an_older_release_is_not_checked_and_fails(
    index: FakeIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add("tidy", "1.4", [])
    assert _run(index, _pins(tmp_path, "tidy==1.3", "absent==1.0")) == audit.UNCHECKED
    captured = capsys.readouterr()
    assert "NOT CHECKED  tidy 1.3: installed 1.3, latest 1.4" in captured.out
    assert "NOT CHECKED  absent 1.0: not found on the index" in captured.out
    assert "could not be checked" in captured.err


def test_a_listed_exception_is_matched_by_alias(
    index: FakeIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add("leaky", "2.0.0", [ADVISORY])
    requirements = _pins(tmp_path, "leaky==2.0.0")
    assert _run(index, requirements, "--ignore-vuln", "GHSA-aaaa-bbbb-cccc") == audit.OK
    assert "ignored      leaky 2.0.0: PYSEC-2099-1" in capsys.readouterr().out
    assert _run(index, requirements, "--ignore-vuln", "PYSEC-2099-2") == audit.VULNERABLE


def test_no_source_fails_loudly_with_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    requirements = _pins(tmp_path, "tidy==1.4")
    code = audit.main(["-r", str(requirements), "--index-json", f"http://127.0.0.1:{port}/pypi"])
    assert code == audit.NO_SOURCE
    err = capsys.readouterr().err
    assert "FAILED: no vulnerability source reachable" in err
    assert f"127.0.0.1:{port}" in err


def test_a_failing_source_is_not_a_pass(index: FakeIndex, tmp_path: Path) -> None:
    index.add("tidy", "1.4", [])
    index.fail = True
    assert _run(index, _pins(tmp_path, "tidy==1.4")) == audit.NO_SOURCE
    requirements = _pins(tmp_path, "tidy==1.4")
    code = audit.main(
        ["-r", str(requirements), "--index-json", index.base, "--source", "project-json"]
    )
    assert code == audit.NO_SOURCE


def test_the_per_version_api_is_preferred_where_it_exists() -> None:
    served = FakeIndex(per_version=True)
    try:
        served.add("pip", "24.0", [])
        assert audit.per_version_api(served.base) is True
        served.per_version = False
        assert audit.per_version_api(served.base) is False
        del served.projects["pip"]
        with pytest.raises(audit.SourceError, match="neither"):
            audit.per_version_api(served.base)
    finally:
        served.close()


def test_bad_requirement_lines_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="expected name==version"):
        audit.pins_from_file(_pins(tmp_path, "tidy>=1.4"))


def test_the_installed_environment_leaves_out_local_installs() -> None:
    pins = {pin.canonical: pin for pin in audit.installed_pins()}
    assert "securetrade" not in pins  # installed from this checkout (editable or not)
    assert "pytest" in pins
    assert pins["pytest"].version == pytest.__version__


# The real data source: the package registry this machine reaches. PyCrypto's last release
# (2.6.1, 2013) carries PYSEC-2017-94 (CVE-2013-7459), a heap overflow never fixed; Requests
# 2.19.0 carries PYSEC-2018-28 (CVE-2018-18074), fixed in 2.20.0.


@pytest.fixture
def registry() -> str:
    try:
        per_version = audit.per_version_api(audit.PYPI)
    except audit.SourceError as error:
        pytest.skip(f"the package registry is not reachable from here: {error}")
    return "pip-audit" if per_version else "project-json"


def test_registry_flags_a_historic_vulnerable_pin(
    registry: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert audit.main(["-r", str(_pins(tmp_path, "pycrypto==2.6.1"))]) == audit.VULNERABLE
    assert "PYSEC-2017-94" in capfd.readouterr().out


def test_registry_never_passes_an_old_vulnerable_pin(
    registry: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = audit.main(["-r", str(_pins(tmp_path, "requests==2.19.0"))])
    out = capfd.readouterr().out
    if registry == "pip-audit":  # pypi.org itself: the per-version advisory is found
        assert code == audit.VULNERABLE
        assert "PYSEC-2018-28" in out
    else:  # a mirror without the per-version API: cannot be checked, and says so
        assert code == audit.UNCHECKED
        assert "NOT CHECKED  requests 2.19.0: installed 2.19.0, latest" in out
