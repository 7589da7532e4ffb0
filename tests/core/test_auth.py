"""password_file: the hash (broker.auth), the file's syntax (broker.config) and CONNECT's answers.

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython
(which has no tempfile module: the password file is written to a fixed path under /tmp).
"""
import hashlib
from binascii import b2a_base64

from broker.auth import DEFAULT_ITERATIONS, check, digest
from broker.config import ConfigError, parse
from broker.passfile import dummy_entry, parse_passwords
from broker.const import CONNACK
from harness import Hub
from packets import encode_connect
from ports.readfile import read_file
from support import error_of, file_error_of, remove_file, temp_path, write_file

PATH = temp_path("auth.passwd")
SALT = b"0123456789ab"


def b64(data: bytes) -> str:
    return b2a_base64(data).decode().strip()


def line(user: str, password: bytes, iterations: int = DEFAULT_ITERATIONS,
         salt: bytes = SALT) -> str:
    return "%s:$sha256$%d$%s$%s" % (user, iterations, b64(salt),
                                     b64(digest(password, salt, iterations)))




def hub_with(users: "list", extra: str = "allow_anonymous false\n") -> Hub:
    write_file(PATH, "# users\n\n" + "\n".join(line(u, p) for u, p in users) + "\n")
    try:
        return Hub("password_file %s\n%s" % (PATH, extra))
    finally:
        remove_file(PATH)


def connack(hub: Hub, **kw: object) -> "tuple[int, bool]":
    c = hub.client()
    c.send(encode_connect("c1", **kw))  # type: ignore[arg-type]
    got = c.recv()
    assert got and got[0].type == CONNACK, got
    return got[0].return_code, c.closed


# --- the hash -------------------------------------------------------------------------------

def test_digest_is_the_documented_scheme() -> None:
    pw = b"secret"
    h = hashlib.sha256(SALT + pw).digest()
    for _ in range(2):
        h = hashlib.sha256(h + SALT + pw).digest()
    assert digest(pw, SALT, 3) == h
    assert digest(pw, SALT, 1) == hashlib.sha256(SALT + pw).digest()
    assert len(digest(pw, SALT, DEFAULT_ITERATIONS)) == 32
    assert DEFAULT_ITERATIONS == 1000


def test_check_round_trip() -> None:
    entry = (10, SALT, digest(b"pw", SALT, 10))
    assert check(entry, b"pw")
    assert check(entry, bytearray(b"pw"))
    assert not check(entry, b"pW")
    assert not check(entry, b"")
    assert not check(entry, None)
    assert not check(None, b"pw")
    assert not check((11, SALT, entry[2]), b"pw")  # the iterations count
    binary = b"\xff\x00\xfe"  # passwords are binary in MQTT
    assert check((5, SALT, digest(binary, SALT, 5)), binary)


# Hashes made by broker.auth before it hashed long passwords first: a password of up to 64 bytes
# (SHA-256's block size) must still match the entries files hold.
OLD_HASHES = (
    (b"secret", 1000, "SsHNHL3FursW5IEZAt6g4f1HuawFC1tCaeNk4yyoHAA="),
    (b"", 1000, "KY60GcJn5CLD6yeem+d/5H7/HJbfqhRkRxVecotslOE="),
    (bytes(range(64)), 1000, "81NRJ2qZmsFWm/dWF+91/jElNj6ofl6Ya73o1Gg+63E="),
    (bytes(range(64)), 1, "a5KM35dCWcaOCBJ70c+5tYxvoTO0cqg7eXaEtG1thdw="),
)


def test_passwords_up_to_64_bytes_hash_as_before() -> None:
    for pw, iterations, want in OLD_HASHES:
        assert b64(digest(pw, SALT, iterations)) == want, (len(pw), iterations)
        assert check((iterations, SALT, digest(pw, SALT, iterations)), pw)


def test_longer_password_is_hashed_once_first() -> None:
    for n in (65, 100, 4096, 65535):  # 65535: the longest an MQTT password can be
        pw = (bytes(range(256)) * 256)[:n]
        key = hashlib.sha256(pw).digest()
        assert digest(pw, SALT, 3) == digest(key, SALT, 3), n
        assert digest(pw, SALT, 1) == hashlib.sha256(SALT + key).digest(), n
        entry = (3, SALT, digest(pw, SALT, 3))
        assert check(entry, pw), n
        # As with HMAC's keys, the 32-byte SHA-256 of a long password is an equivalent
        # password: knowing it takes a preimage of SHA-256, no easier than the password.
        assert check(entry, key), n
        assert not check(entry, pw[:-1] + b"\x00"), n


def test_passwd_tool_entries_follow_the_same_rule() -> None:
    from ports.cpython.passwd import entry
    old = entry("u", bytes(range(64)), SALT, 1000)
    assert old == "u:$sha256$1000$%s$%s" % (b64(SALT), OLD_HASHES[2][2]), old
    long_pw = b"L" * 60000
    users = parse_passwords("%s\n%s\n" % (entry("u", long_pw, SALT, 5),
                                           entry("v", long_pw, b"salt")))
    assert check(users["u"], long_pw) and check(users["v"], long_pw)
    assert users["u"][2] == digest(hashlib.sha256(long_pw).digest(), SALT, 5)
    assert not check(users["u"], long_pw + b"L")


class _Sha256:
    def __init__(self, fed: "list", data: bytes) -> None:
        self.fed = fed
        self.h = hashlib.sha256()
        self.update(data)

    def update(self, data: bytes) -> None:
        self.fed.append(len(data))
        self.h.update(data)

    def digest(self) -> bytes:
        return self.h.digest()


class _CountingHashlib:
    """Stands in for hashlib in broker.auth: fed lists the length of every piece of data hashed,
    in order, which is the work a check does (one SHA-256 object per round)."""

    def __init__(self) -> None:
        self.fed = []  # type: list

    def sha256(self, data: bytes = b"") -> _Sha256:
        return _Sha256(self.fed, data)


def work_of(fn: "object", *args: object) -> "list":
    """The lengths hashed while fn(*args) runs (see _CountingHashlib)."""
    import broker.auth
    counting = _CountingHashlib()
    broker.auth.hashlib = counting  # type: ignore[assignment]
    try:
        fn(*args)  # type: ignore[operator]
    finally:
        broker.auth.hashlib = hashlib
    return counting.fed


def test_long_password_is_read_once_not_every_round() -> None:
    short = work_of(digest, b"k" * 32, SALT, 1000)
    assert short == [12 + 32] + [32, 12 + 32] * 999, short[:4]
    assert work_of(digest, b"p" * 65535, SALT, 1000) == [65535] + short
    assert work_of(digest, b"p" * 64, SALT, 1000) == [12 + 64] + [32, 12 + 64] * 999


# --- the work a refusal costs ---------------------------------------------------------------

def refusal_work(hub: Hub, **kw: object) -> "list":
    """The lengths hashed while hub answers a CONNECT with kw, which must be refused with 4."""
    got = []  # type: list
    fed = work_of(lambda: got.append(connack(hub, **kw)))
    assert got == [(4, True)], (kw, got)
    return fed


def test_unknown_user_costs_what_a_wrong_password_does() -> None:
    hub = hub_with([("alice", b"wonder"), ("bob", b"builder")])
    wrong = refusal_work(hub, username="alice", password=b"wondex")
    assert wrong == [12 + 6] + [32, 12 + 6] * (DEFAULT_ITERATIONS - 1), wrong[:4]
    assert refusal_work(hub, username="bob", password=b"wondex") == wrong
    assert refusal_work(hub, username="mallory", password=b"wondex") == wrong
    assert refusal_work(hub, username="", password=b"wondex") == wrong
    assert refusal_work(hub, username="alice", password=b"wonder" * 20) == \
        refusal_work(hub, username="mallory", password=b"wonder" * 20)
    # no password: checked as an empty one, for a known user and an unknown one alike
    empty = refusal_work(hub, username="alice", password=b"")
    assert len(empty) == 2 * DEFAULT_ITERATIONS - 1, len(empty)
    assert refusal_work(hub, username="alice") == empty
    assert refusal_work(hub, username="mallory") == empty
    assert refusal_work(hub, username="mallory", password=b"") == empty
    assert connack(hub, username="alice", password=b"wonder") == (0, False)


def test_unknown_user_in_a_file_of_mixed_counts() -> None:
    # The count most users have: an unknown user looks like carol and dave, not like alice.
    write_file(PATH, "%s\n%s\n%s\n" % (line("alice", b"a", 50, b"0123456789abcdef"),
                                          line("carol", b"c", 7), line("dave", b"d", 7)))
    try:
        hub = Hub("password_file %s\nallow_anonymous false\n" % PATH)
    finally:
        remove_file(PATH)
    unknown = refusal_work(hub, username="mallory", password=b"x")
    assert unknown == refusal_work(hub, username="carol", password=b"x")
    assert unknown == [12 + 1] + [32, 12 + 1] * 6, unknown
    assert len(refusal_work(hub, username="alice", password=b"x")) == 2 * 50 - 1


def test_dummy_entry_is_shaped_like_most_entries() -> None:
    def e(iterations: int, salt_len: int) -> "tuple[int, bytes, bytes]":
        return iterations, b"s" * salt_len, b"h" * 32
    users = {"a": e(1000, 12), "b": e(5000, 16), "c": e(5000, 16), "d": e(20, 8)}
    assert dummy_entry(users) == (5000, bytes(16), bytes(32))
    assert dummy_entry({"a": e(1000, 12), "b": e(300, 9)}) == (300, bytes(9), bytes(32))
    assert dummy_entry({"a": e(1, 1)}) == (1, bytes(1), bytes(32))
    assert dummy_entry({}) is None
    # None: the tool's shape, DEFAULT_ITERATIONS rounds and a 12-byte salt
    tool = (DEFAULT_ITERATIONS, SALT, digest(b"pw", SALT, DEFAULT_ITERATIONS))
    assert work_of(check, None, b"pX") == work_of(check, tool, b"pX")
    assert work_of(check, None, b"pX", None) == work_of(check, tool, b"pX")
    assert not check(None, b"pw") and not check(None, b"pw", e(3, 12))
    assert not check(None, None) and not check(tool, None)
    zeros = (3, SALT, bytes(32))
    assert not check(zeros, b"") and not check(None, b"", zeros)


# --- the file ------------------------------------------------------------------------------

def test_file_is_read_into_config() -> None:
    write_file(PATH, "# a comment\n\n   \nalice:" + line("x", b"a")[2:] + "\r\n" + line("bob", b"b", 7)
          + "\n")
    try:
        cfg = parse("password_file %s\n" % PATH, read=read_file)
    finally:
        remove_file(PATH)
    assert cfg.passwords is not None
    assert sorted(cfg.passwords) == ["alice", "bob"]
    it, salt, h = cfg.passwords["bob"]
    assert (it, salt) == (7, SALT)
    assert h == digest(b"b", SALT, 7)
    assert check(cfg.passwords["alice"], b"a")
    assert parse("").passwords is None


def test_empty_file_means_no_users() -> None:
    assert parse_passwords("\n# nobody\n") == {}


def test_malformed_lines_name_file_and_line() -> None:
    good = line("alice", b"a")
    h = b64(digest(b"a", SALT, 1000))
    cases = (
        ("nocolon", "expected 'username:$sha256$ITERATIONS$SALT$HASH'"),
        (":$sha256$1000$%s$%s" % (b64(SALT), h), "empty username"),
        ("bob:plaintext", "user 'bob': expected a hash"),
        ("bob:$md5$1000$%s$%s" % (b64(SALT), h), "user 'bob': expected a hash"),
        ("bob:$sha256$1000$%s" % b64(SALT), "user 'bob': expected a hash"),
        ("bob:$sha256$x$%s$%s" % (b64(SALT), h), "user 'bob': iterations: expected an integer"),
        ("bob:$sha256$0$%s$%s" % (b64(SALT), h), "user 'bob': iterations: 0 is out of range"),
        ("bob:$sha256$1000$!!!$%s" % h, "user 'bob': salt and hash must be base64"),
        ("bob:$sha256$1000$%s$abc" % b64(SALT), "user 'bob': salt and hash must be base64"),
        ("bob:$sha256$1000$$%s" % h, "user 'bob': empty salt"),
        ("bob:$sha256$1000$%s$%s" % (b64(SALT), b64(b"short")),
         "user 'bob': the hash must be 32 bytes"),
        (good, "user 'alice' is defined twice (first on line 2)"),
    )
    for bad, reason in cases:
        msg = file_error_of("password_file", PATH, "# users\n%s\n\n%s\n" % (good, bad))
        want = "%s:4: %s" % (PATH, reason)
        assert msg.startswith(want), (msg, want)


def test_unreadable_file() -> None:
    remove_file(PATH)
    msg = error_of_missing()
    assert msg.startswith("broker.conf:2: password_file: cannot read %s: " % PATH), msg


def error_of_missing() -> str:
    return error_of("\npassword_file %s\n" % PATH)


def test_password_file_needs_one_value() -> None:
    for text in ("password_file\n", "password_file a b\n"):
        try:
            parse(text, "broker.conf")
        except ConfigError as e:
            assert str(e).startswith("broker.conf:1: 'password_file'"), str(e)
        else:
            assert False, text


# --- CONNECT ---------------------------------------------------------------------------------

def test_right_password_accepted_without_anonymous() -> None:
    hub = hub_with([("alice", b"wonder"), ("bob", b"\xff\x00")])
    assert connack(hub, username="alice", password=b"wonder") == (0, False)
    assert connack(hub, username="bob", password=b"\xff\x00") == (0, False)


def test_wrong_password_refused_with_4() -> None:
    hub = hub_with([("alice", b"wonder")])
    for kw in ({"username": "alice", "password": b"wonde"},
               {"username": "alice", "password": b"\xff\xfe"},
               {"username": "alice"},  # a known user without a password
               {"username": "mallory", "password": b"wonder"},
               {"username": "", "password": b"wonder"},
               {"username": "mallory"}):
        assert connack(hub, **kw) == (4, True), kw
    assert "Client c1 from 127.0.0.1:5000: bad username or password." in hub.lines
    assert connack(hub, username="alice", password=b"wonder") == (0, False)


def test_anonymous_with_password_file() -> None:
    hub = hub_with([("alice", b"wonder")])
    assert connack(hub) == (5, True)
    hub = hub_with([("alice", b"wonder")], "allow_anonymous true\n")
    assert connack(hub) == (0, False)
    assert connack(hub, username="alice", password=b"nope") == (4, True)


def test_mqtt31_client_checked_too() -> None:
    hub = hub_with([("alice", b"wonder")])
    assert connack(hub, username="alice", password=b"wonder", protocol_level=3) == (0, False)
    assert connack(hub, username="alice", password=b"x", protocol_level=3) == (4, True)


def test_no_password_file_keeps_old_rules() -> None:
    hub = Hub("allow_anonymous false\n")
    assert connack(hub, username="alice", password=b"wonder") == (5, True)
    hub = Hub("allow_anonymous true\n")
    assert connack(hub, username="alice", password=b"wonder") == (0, False)


# --- mosquitto_passwd's hashes ---------------------------------------------------------------

# Written by mosquitto_passwd 2.0.11 (-b FILE alice wonderland): $7$ is PBKDF2-HMAC-SHA512.
MOSQ_7 = ("alice:$7$101$g2dXZJ0Vf1oAJDP0$Yk5OrT1OsnDHHNhBIbtmYAwTjMA6scJC9+nOrKzgn4UR9feiH0W5BReDy"
          "1Qr4R+0kwcEA0/l8zjqF7grgmF7PQ==")
# mosquitto 1.6's default (-H sha512): sha512(password + salt), here for "builder".
MOSQ_6 = ("bob:$6$c2FsdHNhbHRzYWx0$hcVifPBRwvRLKgMuL1iMIzbZvCw1Kj7I8l7P0P0XTKosOnvcfgdLqFm6bjpx"
          "TkLtzVA/GSsjTtGTmeNWGx9tWA==")


def refusal(text: str) -> str:
    try:
        parse_passwords(text, "pw")
    except ConfigError as e:
        return str(e)
    assert False, text
    return ""


def has_sha512() -> bool:
    return hasattr(hashlib, "sha512") and hasattr(hashlib, "pbkdf2_hmac")


def test_mosquitto_passwd_hashes_are_checked_where_sha512_exists() -> None:
    text = "%s\n%s\n%s\n" % (MOSQ_7, MOSQ_6, line("carol", b"pw"))
    if not has_sha512():
        msg = refusal(text)
        assert msg == ("pw:1: user 'alice': mosquitto_passwd's $7$ hash needs SHA-512, which"
                       " this runtime's hashlib lacks: use the $sha256$ format, entering each"
                       " password again with 'python -m broker.passwd FILE USER'"), msg
        return
    users = parse_passwords(text, "pw")
    assert users["alice"][0] == 101 and len(users["alice"][2]) == 64
    assert users["bob"][0] == 0 and users["bob"][1] == b"saltsaltsalt"
    assert check(users["alice"], b"wonderland") and not check(users["alice"], b"wonderlanD")
    assert check(users["bob"], b"builder") and not check(users["bob"], b"builde")
    assert check(users["carol"], b"pw")
    assert not check(None, b"wonderland", dummy_entry(users))
    # the shape most users have (one each here: the cheaper, the project's own)
    assert dummy_entry(users) == (DEFAULT_ITERATIONS, bytes(12), bytes(32))
    assert dummy_entry({"a": users["alice"]}) == (101, bytes(12), bytes(64))


def test_mosquitto_passwd_lines_malformed() -> None:
    if not has_sha512():
        return
    for bad, why in (
            ("u:$7$0$c2FsdA==$" + b64(bytes(64)), "iterations: 0 is out of range"),
            ("u:$7$c2FsdA==$" + b64(bytes(64)), "expected a hash"),
            ("u:$6$c2FsdA==$" + b64(bytes(32)), "the hash must be 64 bytes (SHA-512), got 32"),
            ("u:$5$c2FsdA==$" + b64(bytes(32)), "or mosquitto_passwd's '$7$ITERATIONS$SALT$HASH'"
                                                 " or '$6$SALT$HASH'")):
        msg = refusal(bad + "\n")
        assert msg.startswith("pw:1: user 'u': ") and why in msg, msg
