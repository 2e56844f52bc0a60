"""Scan the repository for committed secrets: private keys, cloud and GitHub tokens, and
long random strings assigned to names like ``secret``, ``key``, ``token`` or ``password``.

Usage: ``python tools/scan_secrets.py [ROOT]``; exit status 1 when anything is found.

Why our own scanner rather than a library: the rules we need are few and specific to
this tree (PEM blocks, AWS and GitHub token shapes, entropy of values given to secret-like
names), the scan must never print what it finds, and it must run with the standard library
only so that it works before anything is installed. A finding shows the file, the line,
the rule and a fingerprint (a hash prefix of the match), never the match itself.

Files scanned: those git tracks plus new ones it does not ignore; outside a git checkout,
every file under ROOT. Deliberately fake material (test fixtures) is listed in
``tools/secret-allowlist.txt`` as ``path fingerprint  # why it is not a secret``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ALLOWLIST = Path(__file__).with_name("secret-allowlist.txt")
MAX_BYTES = 2_000_000  # larger files are data, not source
SKIP_SUFFIXES = {".png", ".jpg", ".gif", ".ico", ".pdf", ".whl", ".gz", ".zip", ".sqlite"}

# Names that hold secrets; ``key`` alone covers api_key, secret_key, private_key, ...
_NAME = r"[\w.-]*(?:secret|passw(?:or)?d|passphrase|token|key|credential|auth)[\w.-]*"
RULES: dict[str, re.Pattern[str]] = {
    "private-key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "aws-access-key-id": re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
    "github-token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b"),
    "slack-token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    "assigned-secret": re.compile(
        rf"""(?ix) \b{_NAME} ["']? \s* (?: = | : | => ) \s* [brfu]{{0,2}} (["'])
        (?P<value> [A-Za-z0-9+/=_\-]{{20,}} ) \1""",
    ),
}
_HEX = re.compile(r"[0-9a-fA-F]+").fullmatch


@dataclass(frozen=True)
class Finding:
    """One suspected secret. ``fingerprint`` identifies the match without revealing it."""

    path: str
    line: int
    rule: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule} [{self.fingerprint}]"


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(value: str) -> bool:
    """Hex of 32+ characters or base64-like text of 20+ with the spread of random data."""
    if _HEX(value):
        return len(value) >= 32 and entropy(value) >= 3.0
    kinds = sum(bool(re.search(p, value)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return kinds >= 2 and entropy(value) >= 4.0


def fingerprint(match: str) -> str:
    return hashlib.sha256(match.encode("utf-8")).hexdigest()[:16]


def scan_text(path: str, text: str) -> Iterator[Finding]:
    """Findings in one file's text."""
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        for rule, pattern in RULES.items():
            for match in pattern.finditer(line):
                if rule == "assigned-secret":
                    found = match.group("value")
                    if not looks_random(found):
                        continue
                elif rule == "private-key":
                    # Every header is alike: the body that follows tells one block from
                    # another, so an allowed fixture never excuses a real key beside it.
                    found = "\n".join(lines[number - 1 : number + 2])
                else:
                    found = match.group(0)
                yield Finding(path, number, rule, fingerprint(found))


def tracked_files(root: Path) -> list[Path]:
    """Files git tracks or would add under ``root``; every file when it is no checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607 (git from PATH)
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)
    return sorted(root / name for name in listed.decode("utf-8").split("\0") if name)


def load_allowlist(path: Path) -> set[tuple[str, str]]:
    """``(path, fingerprint)`` pairs; each line must say why (after ``#``)."""
    allowed: set[tuple[str, str]] = set()
    if not path.is_file():
        return allowed
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry, _, reason = raw.partition("#")
        if not entry.strip():
            continue
        fields = entry.split()
        if len(fields) != 2 or not reason.strip():
            raise ValueError(f"{path}:{number}: expected 'path fingerprint  # reason'")
        allowed.add((fields[0], fields[1]))
    return allowed


def scan(root: Path, allowlist: Iterable[tuple[str, str]] = ()) -> list[Finding]:
    """Every finding under ``root`` that the allowlist does not excuse."""
    allowed = set(allowlist)
    findings: list[Finding] = []
    for path in tracked_files(root):
        if path.suffix.lower() in SKIP_SUFFIXES or not path.is_file():
            continue
        if path.stat().st_size > MAX_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        relative = path.relative_to(root).as_posix()
        for finding in scan_text(relative, data.decode("utf-8", "replace")):
            if (finding.path, finding.fingerprint) not in allowed:
                findings.append(finding)
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).parent.parent)
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    options = parser.parse_args(argv)
    root = options.root.resolve()
    findings = scan(root, load_allowlist(options.allowlist))
    for finding in findings:
        print(finding)
    count = len(findings)
    print(f"secret scan of {root}: {count} finding{'s' * (count != 1)}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
