"""Developer sessions: ``nox -s tests lint types demo bench chaos docs``."""

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
