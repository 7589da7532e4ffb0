# make test-arm: the broker's modules frozen as make firmware freezes them, with the core tests,
# their runner and a filesystem in the heap, as tools/armtest.py stages them.
freeze("../../build/arm/frozen")
