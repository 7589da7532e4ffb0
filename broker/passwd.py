"""`python -m broker.passwd`, the documented name of the password_file tool, which lives in
ports/cpython/passwd.py: a CPython command line that a board never gets."""
import sys

from ports.cpython.passwd import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
