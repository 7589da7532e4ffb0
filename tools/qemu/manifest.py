# make test-arm: the broker's modules frozen as make firmware freezes them, with the core tests,
# their runner, a filesystem in the heap and make mem's probe, as tools/armtest.py stages them;
# and asyncio for the asyncio front's test: a Pico W's firmware freezes it, the QEMU port does
# not, nor has it the C module that stands in for task.py.
package("asyncio", ("__init__.py", "core.py", "event.py", "funcs.py", "lock.py", "stream.py",
                    "task.py"), base_path="$(MPY_DIR)/extmod", opt=3)
freeze("../../build/arm/frozen")
