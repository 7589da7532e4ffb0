"""Client ids the broker gives clients that sent none [MQTT-3.1.3-6], as mosquitto's
allow_zero_length_clientid and auto_id_prefix say. Imported by the first such client, so that
a board whose clients all name themselves does not keep this code or the option names."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from broker.engine import Broker


def generate(b: "Broker", cfg: "Any") -> str:
    """A new id that no session has, or "" when allow_zero_length_clientid is false; cfg is
    the Config, or with per_listener_settings the client's Listener."""
    if not getattr(cfg, "allow_zero_length_clientid", True):
        return ""
    prefix = getattr(cfg, "auto_id_prefix", "auto-")
    while True:
        b.auto_ids += 1
        cid = "%s%08X" % (prefix, b.auto_ids)
        if cid not in b.sessions:
            return cid
