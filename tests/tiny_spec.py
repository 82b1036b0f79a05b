"""The tiny spec's old home; it lives in :mod:`helpers` now (kept for tests that still import it here)."""

from __future__ import annotations

from tests.helpers import TEMPLATE, TINY_SPEC, tiny_spec

__all__ = ["TEMPLATE", "TINY_SPEC", "tiny_spec"]
