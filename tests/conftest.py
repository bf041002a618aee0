"""Suite-wide settings. The live-server fixtures come from the plugin artifactory.testing.fixtures."""

from hypothesis import HealthCheck, settings

# CI has two cores shared by two test workers and the servers they start: timing-based hypothesis
# checks (deadlines, slow data generation) would fail for reasons that are not the code's.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


def _share_the_default_tls_context() -> None:
    """httpx builds a new SSL context, reloading the CA bundle (40-60 ms of CPU here), for every
    client and every module-level call made without one: hundreds of times in this suite. Tests
    that do not choose a context share one (an SSLContext may serve any number of connections)."""
    import functools
    import os

    try:
        from httpx._transports import default as transport
    except ImportError:  # another httpx layout: keep its own behaviour
        return
    create = getattr(transport, "create_ssl_context", None)
    if create is None:
        return

    @functools.cache
    def shared(cafile: str | None, capath: str | None):  # noqa: ANN202 - keyed by what it reads
        return create()

    def reusing(verify=True, cert=None, trust_env=True):  # noqa: ANN001, ANN202 - httpx's signature
        if verify is True and cert is None and trust_env:
            return shared(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        return create(verify=verify, cert=cert, trust_env=trust_env)

    transport.create_ssl_context = reusing


_share_the_default_tls_context()
