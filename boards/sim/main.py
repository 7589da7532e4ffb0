"""The virtual board: its network is the host's loopback, up from the start."""
import boardmain


def loopback():
    print("net: loopback, IP address 127.0.0.1")
    return "127.0.0.1"


boardmain.run(loopback)
