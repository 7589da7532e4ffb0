"""The board profile the MicroPython kind is sized like (boards/rp2/broker.conf, the Pico W).

    board_config_lines()            its option lines, without comments and listener lines
    board_limit("max_queued_messages")  -> 16
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
BOARD_CONFIG = REPO_ROOT / "boards" / "rp2" / "broker.conf"


def option_name(line):
    """The option a config line sets ('max_connections 8' -> 'max_connections'), or None."""
    words = line.split()
    if not words or words[0].startswith("#"):
        return None
    return words[0]


def board_config_lines(path=BOARD_CONFIG):
    """The board profile's option lines, without comments and without its listener line(s)
    (the broker fixture adds its own 'listener PORT 127.0.0.1')."""
    lines = []
    for line in Path(path).read_text().splitlines():
        name = option_name(line)
        if name is not None and name != "listener":
            lines.append(line.strip())
    return lines


def board_limit(name, path=BOARD_CONFIG):
    """One integer limit of the board profile, e.g. board_limit("max_queued_messages")."""
    for line in board_config_lines(path):
        words = line.split()
        if words[0] == name:
            return int(words[1])
    raise KeyError("%s sets no %s" % (path, name))
