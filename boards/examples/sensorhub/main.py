"""A Pico W sensor hub in one asyncio main.py: the broker serves the LAN (ports/aio.py), the
board's internal temperature is published every 10 s (retained, so that a new subscriber
knows it at once), the on-board LED follows cmd/led ("on"/"off", its state retained on
state/led), and clients that are not in USERS are refused by the authenticate hook.

    make flash BOARD=rp2 APP=sensorhub     # or BOARD=sim: the virtual board
    mosquitto_sub -h BOARD_IP -u phone -P change-me-too -t 'sensors/#' -t 'state/#' -v
    mosquitto_pub -h BOARD_IP -u phone -P change-me-too -t cmd/led -m on

On the virtual board (the unix port: no ADC, no LED) the hardware is stood in for by Stub, and
the network is the host's loopback.
"""
import sys

import asyncio
import boardmain
from ports.aio import Broker

USERS = {"phone": b"change-me-too", "kitchen": b"change-me"}
PERIOD_S = 10


class Stub:
    """machine.ADC(4) and machine.Pin("LED") where the firmware has neither."""

    def __init__(self, value: int) -> None:
        self.v = value

    def read_u16(self) -> int:
        return self.v

    def value(self, v: "int | None" = None) -> int:
        if v is not None:
            self.v = v
        return self.v


try:
    from machine import ADC, Pin
    sensor = ADC(4)  # the RP2040's temperature sensor
    led = Pin("LED", Pin.OUT)
except (ImportError, AttributeError, ValueError, TypeError):
    sensor = Stub(14220)  # 0.716 V: 21.2 C
    led = Stub(0)


def celsius() -> float:
    """RP2040 datasheet, 4.9.5: 27 C at 0.706 V, -1.721 mV per degree."""
    volts = sensor.read_u16() * 3.3 / 65535
    return 27 - (volts - 0.706) / 0.001721


def network_up() -> str:
    try:
        import wifi
    except ImportError:
        return "127.0.0.1"  # the virtual board
    return wifi.up()


hub = Broker("broker.conf")


@hub.authenticate
def authenticate(client_id: str, username: "str | None", password: "bytes | None",
                 peer: str) -> bool:
    return username in USERS and USERS[username] == password


@hub.on_message("cmd/led")
def switch(topic: bytes, payload: bytes) -> None:
    on = payload in (b"on", b"1", b"true")
    led.value(1 if on else 0)
    hub.publish("state/led", b"on" if on else b"off", qos=1, retain=True)


async def temperature() -> None:
    while True:
        hub.publish("sensors/temperature", "%.1f" % celsius(), qos=1, retain=True)
        await asyncio.sleep(PERIOD_S)


async def main() -> None:
    ip = network_up()
    await hub.start()
    boardmain.announce(ip)(hub.addresses)
    asyncio.create_task(temperature())
    await hub.wait()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
except Exception as e:
    sys.print_exception(e)  # type: ignore[attr-defined]
    import machine
    machine.soft_reset()  # main.py runs again
