"""ESP32: join the Wi-Fi named in secrets.py, then serve MQTT for good."""
import boardmain
import wifi

boardmain.run(wifi.up)
