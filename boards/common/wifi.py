"""Wi-Fi bring-up for boards with network.WLAN (Pico W, ESP32).

up() joins the network named in secrets.py (WIFI_SSID, WIFI_PASSWORD, optional WIFI_COUNTRY
and HOSTNAME), retrying with back-off, and returns the board's IP address. With WIFI_SSID
empty and AP_SSID set, the board starts its own access point instead (AP_PASSWORD, at least
8 characters, or none for an open network). Progress goes to the REPL.
"""
import time

import network

CONNECT_TIMEOUT_S = 15
FIRST_DELAY_S = 2
MAX_DELAY_S = 60


def _settings():
    import secrets
    return (getattr(secrets, "WIFI_SSID", ""), getattr(secrets, "WIFI_PASSWORD", ""),
            getattr(secrets, "WIFI_COUNTRY", ""), getattr(secrets, "HOSTNAME", ""),
            getattr(secrets, "AP_SSID", ""), getattr(secrets, "AP_PASSWORD", ""))


def _wait(wlan, seconds, sleep):
    """True once wlan is connected; False after `seconds` or when the join failed for good."""
    for _ in range(seconds * 4):
        if wlan.isconnected():
            return True
        status = wlan.status()
        # negative: wrong password, no such network, join failed (on rp2 and esp32 alike)
        if isinstance(status, int) and status < 0:
            return False
        sleep(0.25)
    return wlan.isconnected()


def station(ssid, password, sleep=time.sleep, attempts=0):
    """Join `ssid`; retry with back-off (forever when attempts is 0). Returns the IP address,
    or '' after `attempts` failures."""
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    delay = FIRST_DELAY_S
    tries = 0
    while True:
        tries += 1
        if wlan.isconnected():
            break
        print("wifi: joining '%s' (attempt %d)" % (ssid, tries))
        wlan.connect(ssid, password)
        if _wait(wlan, CONNECT_TIMEOUT_S, sleep):
            break
        print("wifi: could not join '%s' (status %s); again in %d s" % (ssid, wlan.status(), delay))
        wlan.disconnect()
        if attempts and tries >= attempts:
            return ""
        sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)
    ip = wlan.ifconfig()[0]
    print("wifi: connected to '%s', IP address %s" % (ssid, ip))
    return ip


def access_point(ssid, password):
    ap = network.WLAN(network.AP_IF)
    if password:
        ap.config(essid=ssid, password=password)
    else:
        ap.config(essid=ssid, security=0)
    ap.active(True)
    ip = ap.ifconfig()[0]
    print("wifi: access point '%s' is up, IP address %s" % (ssid, ip))
    return ip


def up():
    ssid, password, country, hostname, ap_ssid, ap_password = _settings()
    if country:
        network.country(country)
    if hostname:
        network.hostname(hostname)
    if ssid:
        return station(ssid, password)
    if ap_ssid:
        return access_point(ap_ssid, ap_password)
    raise ValueError("secrets.py sets neither WIFI_SSID nor AP_SSID")
