"""The runtime modules keep private copies of broker.const's values (so that MicroPython compiles
them to literals and never loads broker.const while serving); each copy must equal the original.
"""
from support import MPY, SkipTest

from broker import (
    bridge5, codec, codec_client, const, delivery, engine, handle_connect, handle_publish,
    handle_subscribe, keepalive, lifecycle, local, logs, output, settings, shared, subscriptions,
    v5,
)

MODULES = (bridge5, codec, codec_client, delivery, engine, handle_connect, handle_publish,
           handle_subscribe, keepalive, lifecycle, local, logs, output, settings, shared,
           subscriptions, v5)


def test_private_copies_equal_broker_const() -> None:
    if MPY:
        raise SkipTest("MicroPython folds private const() names away: nothing to compare")
    checked = 0
    for module in MODULES:
        copies = [name for name in dir(module)
                  if name.startswith("_") and name[1:].isupper() and hasattr(const, name[1:])]
        assert copies, module.__name__
        for name in copies:
            assert getattr(module, name) == getattr(const, name[1:]), (module.__name__, name)
            checked += 1
    assert checked >= 40


def test_engine_names_packets_in_its_messages() -> None:
    assert logs.packet_name(const.PUBLISH) == "PUBLISH"
    assert logs.packet_name(15) == "AUTH"  # MQTT 5.0 gave the reserved type 15 its name


def test_the_micropython_port_start_up_copies_the_engine_s_pending_connections() -> None:
    if MPY:
        raise SkipTest("MicroPython folds private const() names away: nothing to compare")
    from ports.micropython import startup
    assert startup._PENDING_CONNECTIONS == lifecycle._PENDING_CONNECTIONS
