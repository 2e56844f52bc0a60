"""Developer sessions: ``nox -s tests lint types demo bench chaos docs security fuzz``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "types"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, exactly as the README runs it."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "examples", "noxfile.py")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install(".", "mypy")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The newcomer's first command."""
    session.install(".")
    session.run("securetrade", "demo")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against ccxt and raw httpx, printed as ratios."""
    session.install(".[ccxt]")
    session.run("python", "-m", "securetrade.bench", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The chaos soak: 10,000 intents, random faults, kill -9 every few seconds; the oracle.

    ``nox -s chaos -- --seconds 120`` is the short run CI makes."""
    session.install(".[test]")
    session.run("python", "tests/chaos.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Check that every documented example in docs/ runs."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", "--doctest-glob=*.md", "docs", *session.posargs)


# Known vulnerabilities accepted on purpose, by id, each with the reason. None today: a new
# advisory fails `nox -s security` until it is fixed or listed here with a reason.
AUDIT_EXCEPTIONS: dict[str, str] = {}


@nox.session
def security(session: nox.Session) -> None:
    """bandit, pip-audit, the secret scan, and the property tests with many more examples.

    pip-audit asks PyPI's vulnerability API about every installed distribution and fails on
    any known vulnerability, or on any distribution it could not check (``--strict``), so
    an unreachable API never passes silently. Where it is unreachable (an offline mirror),
    ``nox -s security -- --no-audit`` skips it and says so. See docs/security.md.
    """
    session.install("-e", ".[test,ccxt,redis,keyring]", "bandit>=1.7.9", "pip-audit>=2.7")
    session.run("bandit", "-c", "pyproject.toml", "-r", "src", "-q")
    session.run("python", "tools/scan_secrets.py")
    if "--no-audit" in session.posargs:
        session.warn("pip-audit SKIPPED (--no-audit): dependencies were not checked")
    else:
        ignored = [f"--ignore-vuln={vuln}" for vuln in AUDIT_EXCEPTIONS]
        # The project itself is installed editable and is not on PyPI: skip only it.
        session.run("pip-audit", "--strict", "--skip-editable", "--progress-spinner=off", *ignored)
    # Every hypothesis test (the plugin marks them), encoders, parsers and verifier included.
    session.run(
        "python", "-m", "pytest", "-q", "-m", "hypothesis", "--hypothesis-profile=fuzz", "tests"
    )


@nox.session
def fuzz(session: nox.Session) -> None:
    """One coverage-guided atheris harness, locally: ``nox -s fuzz -- parsers -runs=100000``.

    Targets: encoders, parsers, verifier (tests/fuzz/targets.py). Extra arguments are
    libFuzzer flags (``-runs=N``, ``-max_total_time=S``, corpus directories). Not run in CI.
    """
    session.install("-e", ".[test]", "atheris")
    target, *flags = session.posargs or ["parsers"]
    session.run("python", f"tests/fuzz/fuzz_{target}.py", *flags)
