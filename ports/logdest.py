"""mosquitto's log destinations (log_dest stdout, stderr, file PATH, syslog, topic, none) with
its line shape: "<unix time>: <message>", or the time as log_timestamp_format says, or no time
with log_timestamp false. apply() takes a configuration again on SIGHUP, which also reopens the
log file, so that logrotate can move it away.

Both ports' (syslog and log_timestamp_format are CPython's: MicroPython's configuration refuses
them). The MicroPython port loads it only when the configuration asks for more than its
timestamped lines on stderr."""
import sys
import time

from broker.bytesops import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, List, Optional, Tuple
    from broker.engine import Broker
    from broker.settings import Config

_LOG_ERR = const(0x01)  # broker.const's
_LOG_WARNING = const(0x02)
_LOG_NOTICE = const(0x04)
_LOG_INFO = const(0x08)
_LOG_SUBSCRIBE = const(0x10)
_LOG_UNSUBSCRIBE = const(0x20)
_LOG_DEBUG = const(0x40)

# log_dest topic: $SYS/broker/log/<severity>, as mosquitto names them; debug lines never go there.
_TOPICS = {
    _LOG_ERR: b"$SYS/broker/log/E", _LOG_WARNING: b"$SYS/broker/log/W",
    _LOG_NOTICE: b"$SYS/broker/log/N", _LOG_INFO: b"$SYS/broker/log/I",
    _LOG_SUBSCRIBE: b"$SYS/broker/log/M/subscribe",
    _LOG_UNSUBSCRIBE: b"$SYS/broker/log/M/unsubscribe",
}
# Lines waiting for the next turn of the loop to be published: a bound, so that a flood of log
# lines cannot grow the queue; what does not fit is not published (the other destinations
# have it).
_TOPIC_QUEUE_MAX = 1000


class Log:
    def __init__(self, config: "Config") -> None:
        self.file = None  # type: Optional[IO[str]]
        self.syslog = None  # type: Any
        self.pending = []  # type: List[Tuple[bytes, bytes]]
        self.held = None  # type: Optional[List[str]]
        self.stamped = None  # type: Optional[str]  # the held lines' timestamp, made once
        self.apply(config)

    def hold(self) -> None:
        """Keep the lines of one turn of the loop until release(), which writes them at once: one
        system call per destination for the turn rather than per line (CPython's loop, where a
        storm of clients logs three lines each)."""
        self.held = []

    def release(self) -> None:
        held = self.held
        self.held = None
        self.stamped = None
        if held:
            self._write("".join(held))

    def _stamp(self) -> str:
        if self.format:
            return time.strftime(self.format) + ": "
        if self.stamp:
            return "%d: " % int(time.time())
        return ""

    def _write(self, text: str) -> None:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        if self.file is not None:
            self.file.write(text)

    def apply(self, config: "Config") -> None:
        """Take the configuration's destinations (again), reopening the log file."""
        dests = config.log_dest.split()
        self.streams = [sys.stdout if d == "stdout" else sys.stderr
                        for d in dests if d in ("stdout", "stderr")]
        self.stamp = getattr(config, "log_timestamp", True)
        self.format = getattr(config, "log_timestamp_format", "")
        self.topic = "topic" in dests
        self.reopen(getattr(config, "log_file", "") if "file" in dests else "")
        self.syslog = None
        if "syslog" in dests:
            import syslog  # only with log_dest syslog
            facility = getattr(config, "log_facility", -1)
            syslog.openlog("pico-broker", syslog.LOG_PID,
                           syslog.LOG_DAEMON if facility < 0 else syslog.LOG_LOCAL0 + facility * 8)
            self.syslog = syslog

    def reopen(self, path: str) -> None:
        """Close the log file and open path ("": none), appending; OSError when it cannot be
        opened (the broker was not started, or the previous file is kept on reload)."""
        old = self.file
        self.file = None
        if path:
            try:
                self.file = open(path, "a", buffering=1)
            except TypeError:  # MicroPython's open(): its writes are not buffered
                self.file = open(path, "a")
        if old is not None:
            old.close()

    def __call__(self, level: int, msg: str) -> None:
        if self.streams or self.file is not None:
            held = self.held
            if held is not None:
                # one timestamp for the lines of a turn: a storm of clients logs three each
                stamp = self.stamped
                if stamp is None:
                    stamp = self.stamped = self._stamp()
                held.append(stamp + msg + "\n")
            else:
                self._write(self._stamp() + msg + "\n")
        if self.syslog is not None:
            self.syslog.syslog(_priority(self.syslog, level), msg)
        topic = _TOPICS.get(level)
        if self.topic and topic is not None and len(self.pending) < _TOPIC_QUEUE_MAX:
            self.pending.append((topic, msg.encode()))

    def publish(self, broker: "Broker") -> None:
        """Publish the lines logged since the last turn (log_dest topic): between two turns of
        the loop, never from inside the routing a log line may come from."""
        pending = self.pending
        self.pending = []
        for topic, payload in pending:
            broker.publish(topic, payload, 2)

    def close(self) -> None:
        self.reopen("")


def _priority(syslog: "Any", level: int) -> int:
    if level == _LOG_ERR:
        return int(syslog.LOG_ERR)
    if level == _LOG_WARNING:
        return int(syslog.LOG_WARNING)
    if level == _LOG_NOTICE:
        return int(syslog.LOG_NOTICE)
    if level == _LOG_DEBUG:
        return int(syslog.LOG_DEBUG)
    return int(syslog.LOG_INFO)
