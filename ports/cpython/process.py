"""The process options (CPython): pid_file, and user, to which a broker started as root
changes once its listeners are open, as mosquitto does."""
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable
    from broker.settings import Config

_LOG_NOTICE = 0x04  # broker.const.LOG_NOTICE


def write_pid_file(config: "Config") -> str:
    """Write the process id to pid_file, if one is configured; its path ("": none). OSError
    names the file: mosquitto, too, stops when it cannot write it."""
    path = getattr(config, "pid_file", "")
    if path:
        # written beside it and renamed into place, so that a reader (a service manager, a
        # logrotate postrotate) never finds it empty or half written
        tmp = "%s.%d" % (path, os.getpid())
        try:
            with open(tmp, "w") as f:
                f.write("%d\n" % os.getpid())
            os.replace(tmp, path)
        except OSError as e:
            raise OSError(e.errno, "cannot write pid_file %s: %s" % (path, e.strerror))
    return path


def remove_pid_file(path: str) -> None:
    if path:
        try:
            os.remove(path)
        except OSError:
            pass  # a user without the right to its folder: mosquitto leaves it as well


def drop_privileges(config: "Config", log: "Callable[[int, str], None]") -> None:
    """As root, become `user` and its primary group; `user mosquitto` where no such user
    exists becomes nobody, as mosquitto does. Without a `user` line the broker stays who
    started it (mosquitto would switch to mosquitto: see docs/configuration.md)."""
    name = getattr(config, "user", "")
    if not name or name == "root" or os.geteuid() != 0:
        return
    import pwd
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        if name != "mosquitto":
            raise OSError(0, "user: no user '%s' to run as" % name)
        pw = pwd.getpwnam("nobody")
    os.setgroups([])
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    log(_LOG_NOTICE, "Running as user %s." % pw.pw_name)


def daemonize() -> None:
    """-d: go on in the background, as mosquitto -d does: a child of init in a session of its
    own, its standard streams on /dev/null."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def command() -> None:
    """The pico-broker command (pip install .): python -m broker on this interpreter."""
    import sys
    from ports.cpython.server import main
    sys.exit(main(sys.argv[1:]))
