"""pytest plugin: an MQTT broker inside the test process, on an ephemeral loopback port.

Installed with the package (entry point pytest11 "mqtt_broker"; disable with -p no:mqtt_broker).

    def test_x(mqtt_broker):                  # a fresh broker for this test
        client.connect(mqtt_broker.host, mqtt_broker.port)

    def test_y(mqtt_broker_session): ...      # one broker shared by the whole session

    @pytest.mark.mqtt_broker("max_connections 1\\nretain_available false")
    @pytest.mark.mqtt_broker(max_connections=1, retain_available=False)   # the same, by name
    @pytest.mark.parametrize("mqtt_broker", ["max_inflight_messages 1"], indirect=True)

A parameter is a configuration text, a Config, or a dict of options (a "config" key for the
text). Markers apply to `mqtt_broker` only; the session broker takes parameters (indirect) or is
overridden in a conftest.py. The broker's objects come from ports.cpython.testing (see
docs/testing.md); it is imported when a fixture is first used, not when pytest starts.
"""
import pytest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, Tuple
    from ports.cpython.testing import RunningBroker

MARKER = ("mqtt_broker(config=None, **options): configuration of this test's mqtt_broker "
          "fixture: a text in mosquitto.conf syntax (or a broker.settings.Config) and/or "
          "options by name, e.g. max_connections=1, retain_available=False")


def pytest_configure(config: "pytest.Config") -> None:
    config.addinivalue_line("markers", MARKER)


def _split(value: "Any", config: "Any", options: "Dict[str, Any]") -> "Any":
    """Merge one dict of options (its "config" entry is the text) or one configuration."""
    if isinstance(value, dict):
        extra = dict(value)
        if "config" in extra:
            config = extra.pop("config")
        options.update(extra)
        return config
    if value is None:
        return config
    return value


def broker_settings(request: "pytest.FixtureRequest", markers: bool = True
                    ) -> "Tuple[Any, Dict[str, Any]]":
    """(config, options) for a broker fixture: from @pytest.mark.mqtt_broker markers, farthest
    (module, class) first so that the closest wins, then from the fixture's parameter."""
    config = None  # type: Any
    options = {}  # type: Dict[str, Any]
    if markers:
        for mark in reversed(list(request.node.iter_markers("mqtt_broker"))):
            if len(mark.args) > 1:
                raise pytest.UsageError("@pytest.mark.mqtt_broker takes one configuration "
                                        "text and options by name, got %r" % (mark.args,))
            if mark.args:
                config = mark.args[0]
            config = _split(dict(mark.kwargs), config, options)
    param = getattr(request, "param", None)  # indirect parametrisation
    config = _split(param, config, options)
    return config, options


@pytest.fixture
def mqtt_broker(request: "pytest.FixtureRequest") -> "Iterator[RunningBroker]":
    """A fresh broker for this test, stopped (every connection closed) after it: .host, .port,
    .url ("mqtt://127.0.0.1:PORT"), .log_lines. Configured by @pytest.mark.mqtt_broker or an
    indirect parameter."""
    from ports.cpython.testing import running
    config, options = broker_settings(request)
    with running(config, **options) as broker:
        yield broker


@pytest.fixture(scope="session")
def mqtt_broker_session(request: "pytest.FixtureRequest") -> "Iterator[RunningBroker]":
    """One broker for the whole test session (state such as retained messages and sessions is
    shared between tests). Configured by an indirect parameter, or override this fixture."""
    from ports.cpython.testing import running
    config, options = broker_settings(request, markers=False)
    with running(config, **options) as broker:
        yield broker
