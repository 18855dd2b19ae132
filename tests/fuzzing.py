"""Hypothesis settings for the fuzz tests: modest in `make test`, many more examples with
HYPOTHESIS_PROFILE=long (docs/security.md)."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Examples per test = the count a test asks for × this factor.
SCALE = {"ci": 1, "long": 50}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in SCALE:
    raise RuntimeError(f"HYPOTHESIS_PROFILE must be one of {', '.join(SCALE)}, not {PROFILE!r}")


def fuzz(examples: int) -> settings:
    # No deadline: a request through the server and the database varies in time, which is not
    # what is tested. The fixtures are per module on purpose (one server for all examples).
    return settings(max_examples=examples * SCALE[PROFILE], deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
