"""The scenarios of `make bench`, the figures each one yields, and the targets of the compiled
CPython build (ratios to mosquitto in the same run; the MQTT 5 rows to our own 3.1.1 figures).

The topologies themselves live in the generator (mqttload.c, setup_scenario); here is what to ask
it for, for how long, and how to read its JSON.
"""

# name -> (generator arguments in a full run, in a smoke run)
SCENARIOS = {
    "fanin": (["-d", "5", "-w", "1"], ["-d", "0.5", "-w", "0.2"]),
    "fanout": (["-d", "5", "-w", "1"], ["-d", "0.5", "-w", "0.2"]),
    "fanin5": (["-V", "5", "-d", "5", "-w", "1"], ["-V", "5", "-d", "0.5", "-w", "0.2"]),
    "fanout5": (["-V", "5", "-d", "5", "-w", "1"], ["-V", "5", "-d", "0.5", "-w", "0.2"]),
    "qos1": (["-d", "5", "-w", "1", "-i", "16"], ["-d", "0.5", "-w", "0.2", "-i", "16"]),
    "latency": (["-d", "5", "-w", "1", "-r", "1000"], ["-d", "0.5", "-w", "0.2", "-r", "1000"]),
    "connect": (["-n", "1000"], ["-n", "100"]),
    "subs": (["-d", "5", "-w", "1"], ["-d", "0.5", "-w", "0.2"]),
}
CAP = 1000  # messages published but not yet delivered, per subscriber
# The MQTT 5 variants: the generator's topology of the same name less the 5, its clients speaking
# MQTT 5.0 with one User Property per message (-V 5).
TOPOLOGY = {"fanin5": "fanin", "fanout5": "fanout"}


class Metric:
    """One row of the table: a figure from one scenario's JSON."""

    def __init__(self, key, scenario, field, label, unit, higher_better, target=None,
                 absolute=None, baseline=None):
        self.key = key
        self.scenario = scenario
        self.field = field
        self.label = label
        self.unit = unit
        self.higher_better = higher_better
        self.target = target      # ratio to mosquitto the CPython port must reach
        self.absolute = absolute  # or an absolute bound (a figure below it), as for memory
        self.baseline = baseline  # or: target is the ratio to the CPython port's figure of this key

    def target_text(self):
        if self.absolute is not None:
            return "< %s %s" % (fmt(self.absolute), self.unit)
        if self.baseline is not None:
            return "≥ %.2gx 3.1.1" % self.target
        if self.target is None:
            return ""
        return ("≥ %.2gx" if self.higher_better else "≤ %.2gx") % self.target

    def met(self, value, ratio):
        """Whether the CPython figure meets the target (None: no target or no figure); ratio:
        to mosquitto's figure, or to the baseline's for a metric that has one."""
        if self.absolute is not None:
            return None if value is None else value < self.absolute
        if self.target is None or ratio is None:
            return None
        return ratio >= self.target if self.higher_better else ratio <= self.target


METRICS = [
    Metric("fanin", "fanin", "deliveries_per_s", "fan-in QoS 0, 4 -> 1 on `+`", "msgs/s", True, 1.0),
    Metric("fanout", "fanout", "deliveries_per_s", "fan-out QoS 0, 1 -> 16", "deliveries/s", True,
           3.0),
    # issue 17: within 15% of the 3.1.1 figures
    Metric("fanin5", "fanin5", "deliveries_per_s", "fan-in, MQTT 5 + User Property", "msgs/s",
           True, 0.85, baseline="fanin"),
    Metric("fanout5", "fanout5", "deliveries_per_s", "fan-out, MQTT 5 + User Property",
           "deliveries/s", True, 0.85, baseline="fanout"),
    Metric("qos1", "qos1", "deliveries_per_s", "QoS 1 both legs, 16 in flight", "msgs/s", True, 0.8),
    Metric("p50", "latency", "p50_us", "latency p50 at 1,000 msgs/s", "µs", False, 1.0),
    Metric("p99", "latency", "p99_us", "latency p99 at 1,000 msgs/s", "µs", False, 1.0),
    Metric("conns", "connect", "conns_per_s", "connect + subscribe, 1,000 clients", "conns/s", True,
           1.0),
    Metric("mem", "connect", "bytes_per_conn", "resident memory per idle connection", "bytes",
           False, absolute=1536),
    Metric("subs", "subs", "deliveries_per_s", "1,000 exact + 20 wildcard subscriptions", "msgs/s",
           True, 1.0),
]

# MicroPython port: at least this share of the CPython port's throughput on these rows.
MPY_SHARE = 0.5
MPY_ROWS = ("fanin", "fanout")
# What a 256K MicroPython heap can hold: 1,000 clients need about 1 MB, so that scenario (and the
# others) run on MicroPython only when BENCH_MPY_ALL=1 (give it BENCH_MPY_HEAP=4M as well). QoS 1
# keeps up to CAP messages for its subscriber, about 180 KB: it runs with the heap given here,
# whose default memory_limit holds them (at 512K the broker refuses the publisher's messages once
# the limit is reached; 768K, 1M and 2M gave 46.6k, 48.1k and 46.3k msgs/s).
MPY_SCENARIOS = ("fanin", "fanout", "latency", "qos1")
MPY_SCENARIO_HEAP = {"qos1": "1M"}


def fmt(value, unit=""):
    """A figure for the table: thousands separated, three significant digits when small."""
    if value is None:
        return "-"
    if value >= 100:
        return "{:,.0f}".format(value)
    return "%.3g" % value
