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
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "examples", "benchmarks", "noxfile.py")


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
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The chaos soak: 10,000 intents, random faults, kill -9 every few seconds; the oracle.

    ``nox -s chaos -- --seconds 120`` is the short run CI makes."""
    session.install(".[test]")
    session.run("python", "tests/chaos.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the site (mkdocs --strict, offline) and run every Python block of README.md
    and docs/ against the simulator, with the docstring check behind the API reference.

    ``nox -s docs -- serve`` previews the site instead of running the checks."""
    session.install("-e", ".[docs,test]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
        return
    site = f"{session.create_tmp()}/site"
    session.run("mkdocs", "build", "--strict", "--site-dir", site)
    session.run("python", "tools/check_reference.py", site)
    session.run(
        "python", "-m", "pytest", "-q", "tests/test_docs_examples.py", "tests/test_docstrings.py"
    )


# Known vulnerabilities accepted on purpose, by id, each with the reason. None today: a new
# advisory fails `nox -s security` until it is fixed or listed here with a reason.
AUDIT_EXCEPTIONS: dict[str, str] = {}


@nox.session(reuse_venv=False)
def security(session: nox.Session) -> None:
    """bandit, the dependency audit, the secret scan, and the property tests at fuzz strength.

    The audit (tools/audit_deps.py) fails on any known vulnerability and on any
    distribution it could not check, so an unreachable source never passes silently. It
    runs pip-audit --strict where PyPI's per-version JSON API answers; behind a registry
    mirror that serves only project JSON (this project's machines), it checks each
    distribution against PyPI's advisories for its latest release: the session builds a
    fresh environment every time, so it audits what a fresh install resolves to today.
    See docs/security.md.
    ``nox -s security -- --no-audit`` skips it and says so.
    """
    session.install("-e", ".[test,ccxt,redis,keyring]", "bandit>=1.7.9", "pip-audit>=2.7")
    session.run("bandit", "-c", "pyproject.toml", "-r", "src", "-q")
    session.run("python", "tools/scan_secrets.py")
    # Every hypothesis test (the plugin marks them), encoders, parsers and verifier included.
    session.run(
        "python", "-m", "pytest", "-q", "-m", "hypothesis", "--hypothesis-profile=fuzz", "tests"
    )
    # Last, so that its verdict on this machine's data source never hides the others'.
    if "--no-audit" in session.posargs:
        session.warn("dependency audit SKIPPED (--no-audit): dependencies were not checked")
    else:
        ignored = [f"--ignore-vuln={vuln}" for vuln in AUDIT_EXCEPTIONS]
        # The project itself is installed editable and is not on PyPI: only it is skipped.
        session.run("python", "tools/audit_deps.py", *ignored)


@nox.session
def fuzz(session: nox.Session) -> None:
    """One coverage-guided atheris harness, locally: ``nox -s fuzz -- parsers -runs=100000``.

    Targets: encoders, parsers, verifier (tests/fuzz/targets.py). Extra arguments are
    libFuzzer flags (``-runs=N``, ``-max_total_time=S``, corpus directories). Not run in CI.
    """
    session.install("-e", ".[test]", "atheris")
    target, *flags = session.posargs or ["parsers"]
    session.run("python", f"tests/fuzz/fuzz_{target}.py", *flags)
