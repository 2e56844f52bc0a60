"""Entry point: ``python -m benchmarks [--quick] [--json PATH]``."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
