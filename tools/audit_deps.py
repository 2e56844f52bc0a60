"""Audit dependencies for known vulnerabilities, and say exactly what could not be checked.

Usage: ``python tools/audit_deps.py [-r REQUIREMENTS] [--ignore-vuln ID ...]``. Without
``-r`` it audits every distribution installed in this interpreter's environment, except
editable ones (the project itself is not on PyPI). ``nox -s security`` runs it.

Where the data comes from, in order:

1. **PyPI's per-version JSON API** (``/pypi/<name>/<version>/json``), through pip-audit
   ``--strict``. This is the normal case on pypi.org.
2. **PyPI's project JSON** (``/pypi/<name>/json``), when the per-version API is missing.
   Some registry mirrors serve only this one (this project's machines do: 404 for every
   per-version URL). Its ``vulnerabilities`` are PyPI's advisories (PyPA database, OSV
   format) for the project's *latest* release only. So a distribution installed at its
   latest release is checked exactly; one at any other version cannot be checked from here
   and fails the run by name, with the reason.
3. Neither answering: the run fails and names the cause. Nothing is ever skipped silently.

Exit status: 0 no known vulnerability in anything checked and everything checked; 1 known
vulnerabilities; 2 some distributions could not be checked; 3 no vulnerability source.
Standard library only, like ``tools/scan_secrets.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

PYPI = "https://pypi.org/pypi"
# A release that certainly exists on PyPI: asks whether the per-version API is served at all.
PROBE = ("pip", "24.0")
TIMEOUT = 30.0

OK, VULNERABLE, UNCHECKED, NO_SOURCE = 0, 1, 2, 3


class SourceError(Exception):
    """The vulnerability source did not answer usefully (network, server, bad JSON)."""


@dataclass(frozen=True)
class Pin:
    name: str
    version: str

    @property
    def canonical(self) -> str:
        return re.sub(r"[-_.]+", "-", self.name).lower()


@dataclass
class Finding:
    pin: Pin
    vulns: list[dict[str, Any]] = field(default_factory=list)
    unchecked: str | None = None  # why it could not be checked


def same_version(a: str, b: str) -> bool:
    """Equal as PEP 440 says (``3.0 == 3.0.0``) when ``packaging`` is there, else as text."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return a.strip().lower() == b.strip().lower()
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a.strip().lower() == b.strip().lower()


def installed_pins() -> list[Pin]:
    """Every distribution of this environment, first on the path wins, local ones left out.

    A distribution installed from a local directory or file (this project with ``pip
    install .`` or ``-e .``, the example adapter) is not the PyPI project of that name, so
    PyPI's advisories do not describe it.
    """
    seen: dict[str, Pin | None] = {}  # None: installed from the local disk
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        pin = Pin(name, dist.version)
        if pin.canonical not in seen:  # a later one on the path is shadowed
            seen[pin.canonical] = None if _is_local(dist) else pin
    return sorted((p for p in seen.values() if p is not None), key=lambda p: p.canonical)


def _is_local(dist: metadata.Distribution) -> bool:
    """Installed from a path on this machine (PEP 610 ``direct_url.json`` with a file URL)."""
    text = dist.read_text("direct_url.json")
    if not text:
        return False
    try:
        return str(json.loads(text).get("url", "")).startswith("file:")
    except (ValueError, AttributeError):
        return False


def pins_from_file(path: Path) -> list[Pin]:
    """``name==version`` lines; comments and blank lines ignored, anything else refused."""
    pins = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        if match is None:
            raise SystemExit(f"{path}:{number}: expected name==version, got {raw!r}")
        pins.append(Pin(match[1], match[2]))
    return pins


def fetch_json(url: str) -> dict[str, Any] | None:
    """The JSON document at ``url``; ``None`` for 404; :class:`SourceError` otherwise."""
    request = urllib.request.Request(url, headers={"User-Agent": "securetrade-audit"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            document = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise SourceError(f"{url}: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise SourceError(f"{url}: {getattr(error, 'reason', error)}") from None
    except ValueError:
        raise SourceError(f"{url}: not JSON") from None
    if not isinstance(document, dict):
        raise SourceError(f"{url}: not a JSON object")
    return document


def per_version_api(base: str) -> bool:
    """Whether ``base`` serves PyPI's per-version JSON (raises when it serves nothing)."""
    name, version = PROBE
    if fetch_json(f"{base}/{name}/{version}/json") is not None:
        return True
    if fetch_json(f"{base}/{name}/json") is None:
        raise SourceError(f"{base}: neither /{name}/{version}/json nor /{name}/json exists")
    return False


def check_latest(pin: Pin, base: str) -> Finding:
    """Check ``pin`` against the project JSON, which covers the latest release only."""
    document = fetch_json(f"{base}/{pin.canonical}/json")
    if document is None:
        return Finding(pin, unchecked="not found on the index")
    latest = str(document.get("info", {}).get("version", ""))
    if not same_version(latest, pin.version):
        return Finding(
            pin,
            unchecked=f"installed {pin.version}, latest {latest or '?'}: the index answers "
            "for latest releases only (no per-version API)",
        )
    vulns = document.get("vulnerabilities")
    if not isinstance(vulns, list):
        return Finding(pin, unchecked="the index gave no vulnerability data")
    return Finding(pin, [v for v in vulns if isinstance(v, dict) and not v.get("withdrawn")])


def ignored(vuln: dict[str, Any], ignore: set[str]) -> bool:
    return bool({str(vuln.get("id")), *map(str, vuln.get("aliases") or ())} & ignore)


def audit_latest(pins: Sequence[Pin], base: str, ignore: set[str]) -> int:
    """Fallback audit against project JSON; prints a report and returns the exit status."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        findings = list(pool.map(lambda pin: check_latest(pin, base), pins))
    vulnerable = unchecked = 0
    for finding in findings:
        pin = finding.pin
        if finding.unchecked is not None:
            unchecked += 1
            print(f"NOT CHECKED  {pin.name} {pin.version}: {finding.unchecked}")
        for vuln in finding.vulns:
            if ignored(vuln, ignore):
                print(f"ignored      {pin.name} {pin.version}: {vuln.get('id')} (listed)")
                continue
            vulnerable += 1
            fixed = ", ".join(vuln.get("fixed_in") or []) or "no fix released"
            aliases = ", ".join(vuln.get("aliases") or [])
            print(
                f"VULNERABLE   {pin.name} {pin.version}: {vuln.get('id')} ({aliases}); "
                f"fixed in: {fixed}"
            )
    checked = len(findings) - unchecked
    print(
        f"audited {len(findings)} distributions against {base}/<name>/json: "
        f"{checked} checked, {vulnerable} known vulnerabilities, {unchecked} not checked"
    )
    if vulnerable:
        return VULNERABLE
    if unchecked:
        print(
            "FAILED: some distributions could not be checked (see NOT CHECKED above); "
            "upgrade them to their latest release or audit where PyPI's per-version "
            "API is reachable",
            file=sys.stderr,
        )
        return UNCHECKED
    return OK


def run_pip_audit(requirements: Path | None, ignore: Iterable[str]) -> int:
    """pip-audit --strict: the per-version API is there, so the standard tool decides."""
    executable = shutil.which("pip-audit") or "pip-audit"
    command = [executable, "--strict", "--progress-spinner=off"]
    if requirements is not None:
        command += ["-r", str(requirements), "--no-deps", "--disable-pip"]
    else:
        command += ["--skip-editable"]
    command += [f"--ignore-vuln={vuln}" for vuln in ignore]
    return subprocess.run(command, check=False).returncode  # noqa: S603 fixed argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--requirement", type=Path, help="audit these name==version pins")
    parser.add_argument("--ignore-vuln", action="append", default=[], metavar="ID")
    parser.add_argument("--index-json", default=PYPI, help="base of the JSON API (%(default)s)")
    parser.add_argument(
        "--source",
        choices=["auto", "pip-audit", "project-json"],
        default="auto",
        help="auto: pip-audit where the per-version API exists, else the project JSON",
    )
    args = parser.parse_args(argv)
    base = args.index_json.rstrip("/")
    source = args.source
    if source == "auto":
        try:
            source = "pip-audit" if per_version_api(base) else "project-json"
        except SourceError as error:
            print(f"FAILED: no vulnerability source reachable: {error}", file=sys.stderr)
            return NO_SOURCE
        if source == "project-json":
            print(
                f"note: {base}/<name>/<version>/json answers 404 (a mirror without PyPI's "
                "per-version API); checking against project JSON, latest releases only"
            )
    if source == "pip-audit":
        return run_pip_audit(args.requirement, args.ignore_vuln)
    pins = pins_from_file(args.requirement) if args.requirement else installed_pins()
    try:
        return audit_latest(pins, base, set(args.ignore_vuln))
    except SourceError as error:
        print(f"FAILED: the vulnerability source stopped answering: {error}", file=sys.stderr)
        return NO_SOURCE


if __name__ == "__main__":
    sys.exit(main())
