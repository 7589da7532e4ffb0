# make firmware BOARD=rp2: the Pico W's own frozen modules (networking, aioble), and the broker's
# board file set as tools/firmware.py stages it (main.py included: the firmware runs it at
# power-up, so no file needs copying but broker.conf and secrets.py).
include("$(BOARD_DIR)/manifest.py")
freeze("../../build/rp2/frozen")
