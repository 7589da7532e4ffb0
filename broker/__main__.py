"""`python -m broker` and `micropython -m broker`: pick this runtime's port and run it."""
import sys

if sys.implementation.name == "micropython":
    from ports.micropython.launch import main
else:
    from ports.cpython.server import main

sys.exit(main(sys.argv[1:]))
