"""The pytest plugin's fixtures: a fresh broker per test, a shared one per session, and the
configuration overrides (marker, keyword options, indirect parameter)."""
import pytest

from broker.const import PINGRESP
from broker.settings import Config
from plugin_helpers import Client, threads

pytest_plugins = ["pytester"]  # each scope is checked in a pytest session of its own

CONNACK_ACCEPTED = 0
CONNACK_SERVER_UNAVAILABLE = 3


def _assert_second_client_refused(port):
    with Client(port) as first, Client(port) as second:
        assert first.connect("first") == CONNACK_ACCEPTED
        assert second.connect("second") == CONNACK_SERVER_UNAVAILABLE


def _run_session(pytester, pytestconfig, source):
    """Run source as a test file of a pytest session of its own, which loads this plugin the
    way this session did (by its entry point, or with -p); the session's outcomes. Its brokers
    must all be stopped when it ends."""
    import ports.cpython.pytest_plugin as plugin
    args = ["-p", "no:asyncio"]  # not needed, and it warns of an option these files do not set
    if pytestconfig.pluginmanager.get_name(plugin) != "mqtt_broker":
        args += ["-p", "ports.cpython.pytest_plugin"]
    pytester.makepyfile(source)
    before = threads()
    result = pytester.runpytest(*args)
    assert threads() == before, "a broker's thread outlived its session"
    return result


# ---- the object the fixture yields


def test_fixture_gives_host_port_url(mqtt_broker):
    assert mqtt_broker.host == "127.0.0.1"
    assert 0 < mqtt_broker.port < 65536
    assert mqtt_broker.url == "mqtt://127.0.0.1:%d" % mqtt_broker.port
    assert mqtt_broker.thread.is_alive()
    with Client(mqtt_broker.port) as c:
        assert c.connect("hello") == CONNACK_ACCEPTED
    # The broker logs to log_lines (not to stderr).
    assert mqtt_broker.log_lines[0] == "listening on 127.0.0.1:%d" % mqtt_broker.port
    assert any("as hello" in line for line in mqtt_broker.log_lines)


def test_broker_log_stays_off_stderr(mqtt_broker, capfd):
    with Client(mqtt_broker.port) as c:
        c.connect("quiet")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# ---- function scope: a fresh broker per test; session scope: one for every test that asks


def test_each_test_gets_a_fresh_broker_stopped_after_it(pytester, pytestconfig):
    result = _run_session(pytester, pytestconfig, """
from plugin_helpers import Client, first_message_after_subscribing

seen = {}


def test_a_retains_a_message(mqtt_broker):
    with Client(mqtt_broker.port) as pub:
        pub.connect("pub-a")
        pub.publish("fresh/retained", b"from test a", qos=1, retain=True)
    first = first_message_after_subscribing(mqtt_broker.port, "fresh/#", "fresh/sentinel")
    assert (first.topic, first.payload, first.retain) == (b"fresh/retained", b"from test a", True)
    seen["a"] = mqtt_broker


def test_b_does_not_see_it(mqtt_broker):
    assert mqtt_broker is not seen["a"]
    assert not seen["a"].thread.is_alive()  # test a's broker was stopped after test a
    first = first_message_after_subscribing(mqtt_broker.port, "fresh/#", "fresh/sentinel")
    assert first.topic == b"fresh/sentinel"  # no retained message from test a
""")
    result.assert_outcomes(passed=2)


def test_session_broker_is_shared_by_the_tests_that_ask(pytester, pytestconfig):
    result = _run_session(pytester, pytestconfig, """
import pytest

from plugin_helpers import Client, first_message_after_subscribing

seen = {}


def test_a_retains_a_message(mqtt_broker_session):
    with Client(mqtt_broker_session.port) as pub:
        pub.connect("session-pub")
        pub.publish("shared/retained", b"from test a", qos=1, retain=True)
    seen["session"] = mqtt_broker_session


def test_b_sees_it(mqtt_broker_session, mqtt_broker):
    assert mqtt_broker_session is seen["session"]
    assert mqtt_broker_session.thread.is_alive()  # not stopped after test a
    assert mqtt_broker.port != mqtt_broker_session.port
    first = first_message_after_subscribing(
        mqtt_broker_session.port, "shared/#", "shared/sentinel")
    assert (first.topic, first.payload) == (b"shared/retained", b"from test a")


@pytest.mark.parametrize("mqtt_broker_session", [{"max_connections": 1}], indirect=True)
def test_c_a_parameter_gets_a_broker_of_its_own(mqtt_broker_session):
    assert mqtt_broker_session is not seen["session"]
    assert mqtt_broker_session.config.max_connections == 1
""")
    result.assert_outcomes(passed=3)


# ---- configuration overrides


def test_default_config_allows_many_connections(mqtt_broker):
    with Client(mqtt_broker.port) as first, Client(mqtt_broker.port) as second:
        assert first.connect("first") == CONNACK_ACCEPTED
        assert second.connect("second") == CONNACK_ACCEPTED


@pytest.mark.mqtt_broker("max_connections 1\nretain_available false")
def test_marker_config_text(mqtt_broker):
    assert mqtt_broker.config.max_connections == 1
    assert mqtt_broker.config.retain_available is False
    _assert_second_client_refused(mqtt_broker.port)
    with Client(mqtt_broker.port) as c:
        c.connect("retainer")
        c.publish("t", b"x", retain=True)
        assert c.recv() is None  # RETAIN with retain_available false: the broker closes


@pytest.mark.mqtt_broker(config="max_connections 1")
def test_marker_config_keyword(mqtt_broker):
    _assert_second_client_refused(mqtt_broker.port)


@pytest.mark.mqtt_broker(max_connections=1, retain_available=False)
def test_marker_options_by_name(mqtt_broker):
    assert mqtt_broker.config.retain_available is False
    _assert_second_client_refused(mqtt_broker.port)


@pytest.mark.parametrize("mqtt_broker", ["max_inflight_messages 1"], indirect=True)
def test_indirect_parameter_text(mqtt_broker):
    assert mqtt_broker.config.max_inflight_messages == 1
    with Client(mqtt_broker.port) as sub, Client(mqtt_broker.port) as pub:
        sub.connect("sub")
        pub.connect("pub")
        sub.subscribe("q/#", 1)
        pub.publish("q/1", b"one", qos=1)
        pub.publish("q/2", b"two", qos=1)  # both routed once their PUBACKs are back
        first = sub.message()
        assert first.payload == b"one"
        sub.ping()
        sub.expect(PINGRESP)  # not "two": one message in flight at most
        sub.puback(first.mid)
        assert sub.message().payload == b"two"


@pytest.mark.parametrize("mqtt_broker", [
    {"max_connections": 1},
    {"config": "max_connections 1"},
    "max_connections 1",
], indirect=True)
def test_indirect_parameter_forms(mqtt_broker):
    _assert_second_client_refused(mqtt_broker.port)


def _config_object():
    cfg = Config()
    cfg.max_connections = 1
    return cfg


@pytest.mark.parametrize("mqtt_broker", [_config_object()], indirect=True)
def test_indirect_parameter_config_object(mqtt_broker):
    _assert_second_client_refused(mqtt_broker.port)


@pytest.mark.parametrize("mqtt_broker_session", [{"max_connections": 1}], indirect=True)
def test_session_broker_parameter(mqtt_broker_session):
    assert mqtt_broker_session.config.max_connections == 1
    _assert_second_client_refused(mqtt_broker_session.port)


@pytest.mark.mqtt_broker("max_connections 1\nmax_inflight_messages 7")
class TestClassMarker:
    def test_class_marker_applies(self, mqtt_broker):
        assert mqtt_broker.config.max_inflight_messages == 7
        _assert_second_client_refused(mqtt_broker.port)

    @pytest.mark.mqtt_broker(max_connections=2)
    def test_closest_marker_wins(self, mqtt_broker):
        # The class's text still applies; the method's option wins over it.
        assert mqtt_broker.config.max_inflight_messages == 7
        assert mqtt_broker.config.max_connections == 2

    @pytest.mark.parametrize("mqtt_broker", [{"max_connections": 3}], indirect=True)
    def test_parameter_wins_over_marker(self, mqtt_broker):
        assert mqtt_broker.config.max_connections == 3


@pytest.mark.mqtt_broker("log_type all")
def test_marker_log_type_all(mqtt_broker):
    with Client(mqtt_broker.port) as c:
        c.connect("chatty")
        c.subscribe("a/b")
    # SUBACK is logged before it is sent: the line is there once the client has it.
    assert "Sending SUBACK to chatty" in mqtt_broker.log_lines


def test_marker_is_registered(pytestconfig):
    assert any(line.startswith("mqtt_broker(")
               for line in pytestconfig.getini("markers"))
