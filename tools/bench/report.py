"""The bench's output: the console table, the results section of docs/benchmarks.md, the chart."""
import os
import platform
import statistics
import subprocess
import time

from brokers import LABELS, MPY_HEAP, REPO
from scenarios import METRICS, MPY_ROWS, MPY_SCENARIO_HEAP, MPY_SHARE, fmt

DOC = os.path.join(REPO, "docs", "benchmarks.md")
CHART = os.path.join(REPO, "docs", "benchmarks.png")
BEGIN = "<!-- bench:results:begin (written by make bench) -->"
END = "<!-- bench:results:end -->"


def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": "%s %s" % (platform.system(), platform.release()),
        "load_before": loadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    info["summary"] = "%d cores, %s, %s, load %s" % (info["nproc"], cpu, info["kernel"],
                                                      info["load_before"])
    return info


def ratio(fig, kind, key):
    base = fig.get("mosquitto", {}).get(key)
    value = fig.get(kind, {}).get(key)
    if not base or value is None:
        return None
    return value / base


def _cell(fig, kind, m):
    if m.key not in fig.get(kind, {}):
        return "-"
    value = fig[kind][m.key]
    if value is None:
        return "FAILED"
    r = ratio(fig, kind, m.key) if kind != "mosquitto" else None
    return fmt(value) + (" (%.2fx)" % r if r is not None else "")


def of_baseline(fig, kind, m):
    """A figure as a ratio to the same broker's figure of m.baseline (MQTT 5 to 3.1.1)."""
    base = fig.get(kind, {}).get(m.baseline)
    value = fig.get(kind, {}).get(m.key)
    if not base or value is None:
        return None
    return value / base


def _met(fig, m):
    value = fig.get("cpython", {}).get(m.key)
    r = of_baseline(fig, "cpython", m) if m.baseline else ratio(fig, "cpython", m.key)
    ok = m.met(value, r)
    return "" if ok is None else ("yes" if ok else "**no**")


def rows(kinds, fig):
    """Header and rows of the results table (the same for the console and the markdown)."""
    head = ["scenario", "unit"] + [LABELS[k] for k in kinds] + ["target (CPython)", "met"]
    body = []
    for m in METRICS:
        body.append([m.label, m.unit] + [_cell(fig, k, m) for k in kinds]
                    + [m.target_text(), _met(fig, m)])
    return head, body


def mpy_lines(fig):
    out = []
    heaps = ["%s %s" % (s, h) for s, h in sorted(MPY_SCENARIO_HEAP.items())
             if fig.get("micropython", {}).get(s) is not None]
    if heaps and not os.environ.get("BENCH_MPY_HEAP"):
        out.append("MicroPython's -X heapsize: %s; %s for the others"
                   % (", ".join(heaps), MPY_HEAP))
    # against the same source interpreted by CPython when that build ran
    base = "cpython-pure" if fig.get("cpython-pure") else "cpython"
    for key in MPY_ROWS:
        c, u = fig.get(base, {}).get(key), fig.get("micropython", {}).get(key)
        if c and u is not None:
            share = u / c
            out.append("MicroPython / %s on %s: %.2f (target ≥ %.1f: %s)"
                       % (LABELS[base].replace("ours, ", ""), key, share, MPY_SHARE,
                          "met" if share >= MPY_SHARE else "not met"))
    return out


def v5_lines(kinds, fig):
    """Each broker's MQTT 5 figures as a share of its 3.1.1 ones."""
    out = []
    for m in METRICS:
        if m.baseline is None:
            continue
        shares = []
        for k in kinds:
            r = of_baseline(fig, k, m)
            if r is not None:
                shares.append("%s %.2f" % (LABELS[k], r))
        if shares:
            out.append("MQTT 5 / 3.1.1 on %s: %s" % (m.baseline, ", ".join(shares)))
    return out


def text_table(kinds, fig):
    head, body = rows(kinds, fig)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in [head] + body]
    return "\n".join(lines + v5_lines(kinds, fig) + mpy_lines(fig))


def _md_table(head, body):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return out


def cpu_rows(kinds, results):
    """Median CPU use (share of one core) of the generator and of the broker, per scenario."""
    scenarios = []
    for k in kinds:
        for s in results.get(k, {}):
            if s not in scenarios and s != "connect":
                scenarios.append(s)
    head = ["scenario"] + ["%s: generator / broker" % LABELS[k] for k in kinds]
    body = []
    for s in scenarios:
        row = [s]
        for k in kinds:
            runs = [r for r in results.get(k, {}).get(s, []) if "gen_cpu" in r]
            if not runs:
                row.append("-")
                continue
            g = statistics.median(r["gen_cpu"] for r in runs)
            b = [r["broker_cpu"] for r in runs if "broker_cpu" in r]
            row.append("%.2f / %s" % (g, "%.2f" % statistics.median(b) if b else "-"))
        body.append(row)
    return head, body


def section(kinds, fig, results, failed, machine, versions, runs, command):
    out = [BEGIN, "", "## Latest results", ""]
    out.append("Measured %s with `%s` (%d run(s) per scenario, median)." % (machine["date"], command,
                                                                           runs))
    out.append("")
    out.append("- Machine: %d cores, %s, %s." % (machine["nproc"], machine["cpu"], machine["kernel"]))
    out.append("- Load average (1, 5, 15 min) before: %s; after: %s; %.1f minutes in all. "
               "Other work on the machine at the same time makes the figures noisy."
               % (machine["load_before"], machine.get("load_after", "?"),
                  machine.get("minutes", 0)))
    for k in kinds + ["generator"]:
        out.append("- %s: %s" % (LABELS.get(k, "load generator (C)"), versions.get(k, "?")))
    out.append("")
    out.append("Each figure with its ratio to mosquitto in the same run; the target is the issue's, "
               "for the CPython port (for the MQTT 5 rows: its share of the same port's 3.1.1 "
               "figure). Latency and memory: lower is better.")
    out.append("")
    head, body = rows(kinds, fig)
    out += _md_table(head, body)
    out.append("")
    for line in v5_lines(kinds, fig) + mpy_lines(fig):
        out.append("- " + line)
    if failed:
        out.append("")
        out.append("Failed runs (messages lost, duplicated or misrouted, or a broker error):")
        out.append("")
        out += ["- " + f for f in failed]
    out.append("")
    out.append("CPU use during the measured seconds, as a share of one core (generator / broker):")
    out.append("")
    head, body = cpu_rows(kinds, results)
    out += _md_table(head, body)
    out.append("")
    out.append("![Ratios to mosquitto](benchmarks.png)")
    out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


def chart(kinds, fig, path):
    """A bar chart of every figure as a ratio to mosquitto (log scale), with the targets."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = [k for k in kinds if k != "mosquitto"]
    labels = [m.label + (" (lower is better)" if not m.higher_better else "") for m in METRICS]
    fig_, ax = plt.subplots(figsize=(9, 0.6 * len(METRICS) * max(1, len(ours)) * 0.7 + 1.5))
    height = 0.8 / max(1, len(ours))
    colours = {"cpython": "#1f77b4", "micropython": "#2ca02c", "amqtt": "#d62728"}
    shown = [1.0]
    for j, k in enumerate(ours):
        ys, xs = [], []
        for i, m in enumerate(METRICS):
            y = i + (j - (len(ours) - 1) / 2.0) * height
            r = ratio(fig, k, m.key)
            if r is None:
                if m.key in fig.get(k, {}) and fig[k][m.key] is None:
                    ax.text(0.06, y, "%s: failed" % LABELS[k], va="center", fontsize=7)
                continue
            ys.append(y)
            xs.append(r)
            ax.text(r * 1.04, y, "%.2fx" % r, va="center", fontsize=7)
        shown += xs
        ax.barh(ys, xs, height=height * 0.9, label=LABELS[k], color=colours.get(k))
    for i, m in enumerate(METRICS):
        if m.target is not None and m.baseline is None:  # (a baseline's target is not mosquitto)
            ax.plot([m.target, m.target], [i - 0.45, i + 0.45], color="black", lw=1.5, ls="--")
    ax.axvline(1.0, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(0.05, max(4.0, max(shown) * 1.5))
    ticks = [t for t in (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16) if t <= max(4.0, max(shown) * 1.5)]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["%gx" % t for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(range(len(METRICS)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ratio to mosquitto 2.0.11 (1.0 = same; dashed: the CPython target)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("make bench: our broker against mosquitto", fontsize=10)
    fig_.tight_layout()
    fig_.savefig(path, dpi=100)
    plt.close(fig_)


def write_docs(kinds, fig, results, failed, machine, versions, runs, command):
    """Replace the results section of docs/benchmarks.md and redraw the chart next to it."""
    try:
        with open(DOC) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n\n"
    new = section(kinds, fig, results, failed, machine, versions, runs, command)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + new + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + new
    with open(DOC, "w") as f:
        f.write(text)
    chart(kinds, fig, CHART)
    return DOC
