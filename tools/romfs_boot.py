# Run the broker (or any program) from a ROMFS image on the unix MicroPython, the way a board
# whose firmware has a ROMFS partition runs it from flash:
#
#     micropython -X heapsize=N tools/romfs_boot.py IMAGE -m MODULE [ARGS...]
#     micropython -X heapsize=N tools/romfs_boot.py IMAGE -c CODE
#     micropython -X heapsize=N tools/romfs_boot.py IMAGE SCRIPT [ARGS...]
#
# IMAGE comes from `mpremote romfs build` over .mpy files (tools/mpy_build.py). It is mounted at
# /rom with vfs.VfsRom and /rom goes first on sys.path, so imports execute the bytecode in place
# and reference its strings in place instead of copying them into the heap. A board maps its
# ROMFS partition from flash; the unix runtime has no such memory, so the image is read into one
# bytearray here, before anything else, and takes its own size of the heap: give `-X heapsize`
# the heap wanted for the program plus the image's size, rounded up to a KB.
import sys
import os
import vfs


def _mount(path):
    size = os.stat(path)[6]
    image = bytearray(size)
    with open(path, "rb") as f:
        f.readinto(image)
    vfs.mount(vfs.VfsRom(image), "/rom")
    # '' stays first for scripts that expect it; run from a directory holding no broker/
    sys.path[:] = ["", "/rom", ".frozen"]


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.stderr.write("usage: romfs_boot.py IMAGE (-m MODULE | -c CODE | SCRIPT) [ARGS...]\n")
        sys.exit(2)
    _mount(args[0])
    what = args[1]
    if what == "-c":
        sys.argv[:] = ["-c"] + args[3:]
        exec(args[2], {"__name__": "__main__"})
    elif what == "-m":
        sys.argv[:] = [args[2]] + args[3:]
        __import__(args[2] + ".__main__")
    else:
        sys.argv[:] = args[1:]
        with open(what) as f:
            code = f.read()
        exec(code, {"__name__": "__main__", "__file__": what})


main()
