"""The commands reuse the carbon tests' scripted HTTP server for the providers they call."""

from tests.carbon.conftest import fake_server  # noqa: F401
