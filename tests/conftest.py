"""Hypothesis profiles: ``ci`` (CI=true: fewer examples, no deadline, derandomized so a CI run is
reproducible) and ``dev`` (the default). Select one with ``--hypothesis-profile``."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")
