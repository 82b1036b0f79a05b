"""Shared test set-up: float64 in JAX for every test, no compilation cache, and small models."""

from __future__ import annotations

import os

import pytest

# Tests compile afresh, as before the cache, and write nothing under the user's home; the
# cache's own tests (test_cache.py) give each process an explicit cache directory.
os.environ.setdefault("SCHEDOPT_NO_CACHE", "1")

import jax

# The tests of the internals call traced functions (``final_loss_jax``, ``jax.grad`` of them)
# directly, outside schedopt's own float64 scope, so the test session turns x64 on for
# itself. schedopt never does (tests/test_side_effects.py checks it in fresh processes).
jax.config.update("jax_enable_x64", True)

from hypothesis import settings  # noqa: E402

import schedopt._jax  # noqa: E402, F401  (loads the compilation-cache set-up as the library does)
from schedopt.problem import Model  # noqa: E402

# Hypothesis profiles: "default" (quick, for development) and "ci" (thorough: CI sets
# HYPOTHESIS_PROFILE=ci). Property tests take their example counts from helpers.examples(),
# which the profile scales; the profiles set what the tests leave to them.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def small_model() -> Model:
    """A 24-mode power law (a = b = 1.5, lambda_1 = 1) with label noise sigma^2 = 0.09."""
    return Model.powerlaw(1.5, 1.5, 24, noise_std=0.3)


@pytest.fixture(scope="session")
def finite_size_model() -> Model:
    """The top 20 modes of an infinite power law (a = 1.5, b = 1.5): residual R_N = 0.169."""
    return Model.powerlaw(1.5, 1.5, 20, noise_std=0.1, finite_size=True)
