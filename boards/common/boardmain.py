"""A board's broker for good: bring the network up, run the broker, and start it again after
an unhandled error (printed first) instead of sitting dead. Ctrl-C stops it for the REPL.

    import boardmain
    boardmain.run(network_up)      # network_up() -> the board's IP address, as a str
"""
import gc
import sys
import time

CONFIG = "broker.conf"
FIRST_DELAY_S = 1
MAX_DELAY_S = 30
HEALTHY_S = 60  # a broker that served this long before failing starts again at once


def addresses(ip, listening):
    """'HOST:PORT' listeners as the addresses to connect to: 0.0.0.0 is the board's IP."""
    out = []
    for a in listening:
        if a.startswith("unix:"):
            continue
        host, port = a.rsplit(":", 1)
        out.append("%s:%s" % (ip if host == "0.0.0.0" else host, port))
    return out


def announce(ip):
    def ready(listening):
        for a in addresses(ip, listening):
            print("broker: mqtt://%s" % a)
    return ready


def run(network_up, serve=None, sleep=time.sleep, ticks=time.time):
    """Run the broker until Ctrl-C. `serve(argv, ready)` (default: the MicroPython port's
    run()) returns 0 when stopped by Ctrl-C, 1 when it cannot start; an exception is a crash.
    `sleep` and `ticks` are for the tests."""
    delay = FIRST_DELAY_S
    while True:
        started = ticks()
        try:
            ip = network_up()
            if serve is None:
                from ports.micropython.launch import run as serve
            status = serve(["-c", CONFIG], announce(ip))
            if status == 0:
                return
            print("main: the broker could not start (status %d)" % status)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - whatever it is, print it and start again
            print("main: unhandled error, the broker restarts:")
            sys.print_exception(e)
        if ticks() - started >= HEALTHY_S:
            delay = FIRST_DELAY_S
        print("main: starting again in %d s" % delay)
        gc.collect()
        sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)
