# Copy this file to boards/secrets.py (git ignores it, it is never committed) and fill it in.
# make flash BOARD=rp2 (or esp32) copies it to the board, where main.py reads it.

# The Wi-Fi network the board joins (2.4 GHz).
WIFI_SSID = "my-network"
WIFI_PASSWORD = "my-password"
# Two-letter country code for the radio's channels, e.g. "GB", "DE", "US" ("" leaves it as is).
WIFI_COUNTRY = ""
# The board's name on the network ("" leaves the firmware's default).
HOSTNAME = "pico-broker"

# With WIFI_SSID = "", the board starts its own access point instead and clients join it.
AP_SSID = "pico-broker"
AP_PASSWORD = "at-least-8-characters"
