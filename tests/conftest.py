"""Suite-wide settings. The live-server fixtures come from the plugin artifactory.testing.fixtures."""

from hypothesis import HealthCheck, settings

# CI has two cores shared by two test workers and the servers they start: timing-based hypothesis
# checks (deadlines, slow data generation) would fail for reasons that are not the code's.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")
