"""test_protocol.py - bad input and limits against a running fleetd.

Malformed RESP, absurd lengths, binary garbage, half-sent frames, slow and
greedy clients, the client limits and AUTH: each must get Redis' error or a
disconnect, while the server stays up and a bystander client notices
nothing.
"""
import os
import random
import socket
import sys
import time

import fleetlib
from fleetlib import Conn, encode

res = fleetlib.Results("protocol")


def bystander_ok(srv, what):
    c = Conn(srv.port)
    res.check(c.call("PING") == b"+PONG\r\n", "bystander PING after " + what)
    c.close()
    res.check(srv.alive(), "server alive after " + what)


def expect_error_and_close(srv, raw, error, what):
    c = Conn(srv.port)
    c.send_raw(raw)
    reply = c.read_reply()
    res.check(reply == b"-ERR " + error + b"\r\n", "%s: got %r" % (what, reply))
    res.check(c.closed_by_peer(), what + ": connection closed")
    c.close()
    bystander_ok(srv, what)


def test_malformed(srv):
    cases = [
        (b"*abc\r\n", b"Protocol error: invalid multibulk length", "bad count"),
        (b"*1\r\n!foo\r\n", b"Protocol error: expected '$', got '!'", "no $"),
        (b"*1\r\n$-5\r\n", b"Protocol error: invalid bulk length", "neg bulk"),
        (b"*1\r\n$999999999999\r\n", b"Protocol error: invalid bulk length", "huge bulk"),
        (b"*99999999999\r\n", b"Protocol error: invalid multibulk length", "huge count"),
        (b"*1\r\n$" + b"9" * 70000, b"Protocol error: too big bulk count string", "long len"),
        (b"A" * 70000, b"Protocol error: too big inline request", "long inline"),
        (b'SET "a b\r\n', b"Protocol error: unbalanced quotes in request", "quotes"),
    ]
    for raw, err, what in cases:
        expect_error_and_close(srv, raw, err, what)


def test_garbage(srv):
    rnd = random.Random(7)
    for i in range(20):
        c = Conn(srv.port)
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 20000)))
        try:
            c.send_raw(blob)
            c.sock.settimeout(0.3)
            try:
                c.sock.recv(65536)
            except socket.timeout:
                pass
        except OSError:
            pass
        c.close()
    bystander_ok(srv, "binary garbage")


def test_half_frames(srv):
    c = Conn(srv.port)
    frame = encode(["SET", "half", "x" * 1000])
    slow = Conn(srv.port)
    slow.send_raw(frame[:7])          # a slow client parked mid-frame
    for i in range(0, len(frame), 97):
        c.send_raw(frame[i:i + 97])
        time.sleep(0.001)
    res.check(c.read_reply() == b"+OK\r\n", "SET sent in pieces")
    bystander_ok(srv, "slow client parked mid-frame")
    for b in encode(["GET", "half"]):
        c.send_raw(bytes([b]))
    res.check(c.read_reply() == b"$1000\r\n" + b"x" * 1000 + b"\r\n", "byte by byte")
    slow.send_raw(frame[7:])
    res.check(slow.read_reply() == b"+OK\r\n", "parked client completes")
    c.close()
    slow.close()


def test_inline_and_pipeline(srv):
    c = Conn(srv.port)
    c.send_raw(b"PING\r\nSET \"a b\" \"c\\x41\"\nGET \"a b\"\r\n\r\n")
    res.check(c.read_reply() == b"+PONG\r\n", "inline PING")
    res.check(c.read_reply() == b"+OK\r\n", "inline SET with quotes")
    res.check(c.read_reply() == b"$2\r\ncA\r\n", "inline escapes")
    n = 20000
    c.send_raw(encode(["PING"]) * n)
    ok = all(c.read_reply() == b"+PONG\r\n" for _ in range(n))
    res.check(ok, "20000 pipelined PINGs")
    c.send_raw(b"*0\r\n*-1\r\nPING\r\n")
    res.check(c.read_reply() == b"+PONG\r\n", "empty multibulks skipped")
    c.close()


def test_wrong_arity_and_unknown(srv):
    c = Conn(srv.port)
    res.check(c.call("GET") == b"-ERR wrong number of arguments for 'get' command\r\n",
              "arity")
    r = c.call("FOO", "bar")
    res.check(r == b"-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n",
              "unknown: %r" % r)
    res.check(c.call("GEOADD", "k", "200", "100", "m").startswith(
        b"-ERR invalid longitude,latitude pair 200.000000,100.000000"), "bad coords")
    res.check(c.call("PING") == b"+PONG\r\n", "connection usable after errors")
    c.close()


def test_quit(srv):
    c = Conn(srv.port)
    c.send_raw(encode(["QUIT"]) + encode(["PING"]))
    res.check(c.read_reply() == b"+OK\r\n", "QUIT replies OK")
    res.check(c.closed_by_peer(), "QUIT closes")
    c.close()


def test_client_cmds(srv):
    a, b = Conn(srv.port), Conn(srv.port)
    a.call("CLIENT", "SETNAME", "alpha")
    lst = a.call("CLIENT", "LIST")
    res.check(b"name=alpha" in lst, "CLIENT LIST shows the name")
    aid = int(a.call("CLIENT", "ID")[1:-2])
    res.check(a.call("CLIENT", "KILL", "ID", str(aid)) == b":0\r\n", "SKIPME yes by default")
    bid = int(b.call("CLIENT", "ID")[1:-2])
    res.check(a.call("CLIENT", "KILL", "ID", str(bid)) == b":1\r\n", "CLIENT KILL ID")
    res.check(b.closed_by_peer(), "killed client is closed")
    info = a.call("INFO", "clients")
    res.check(b"connected_clients:" in info, "INFO clients")
    a.close()
    b.close()


def test_output_limit(srv):
    c = Conn(srv.port)
    c.call("SET", "big", "v" * 60000)
    c.call("CONFIG", "SET", "client-output-buffer-limit", "normal 200000 0 0")
    greedy = Conn(srv.port)
    greedy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        greedy.send_raw(encode(["GET", "big"]) * 3000)
    except OSError:
        pass
    closed = greedy.closed_by_peer(timeout=5)
    res.check(closed, "client over the output limit is disconnected")
    stats = c.call("INFO", "stats")
    res.check(b"client_output_limit_disconnections:0" not in stats, "counted in INFO")
    c.call("CONFIG", "SET", "client-output-buffer-limit", "normal 67108864 0 0")
    c.close()
    bystander_ok(srv, "output limit")


def test_query_limit(srv):
    c = Conn(srv.port)
    c.call("CONFIG", "SET", "client-query-buffer-limit", "1048576")
    big = Conn(srv.port)
    try:
        big.send_raw(b"*2\r\n$3\r\nGET\r\n$100000000\r\n" + b"x" * (3 << 20))
    except OSError:
        pass
    res.check(big.closed_by_peer(), "query buffer limit closes the client")
    c.call("CONFIG", "SET", "client-query-buffer-limit", "1073741824")
    c.close()
    bystander_ok(srv, "query limit")


def test_maxclients_timeout_auth():
    srv = fleetlib.start_fleetd("--maxclients", "3", "--timeout", "1",
                                "--requirepass", "s3cret")
    conns = [Conn(srv.port) for _ in range(3)]
    extra = Conn(srv.port)
    r = extra.read_reply()
    res.check(r == b"-ERR max number of clients reached\r\n", "maxclients: %r" % r)
    for c in conns:
        c.close()
    extra.close()
    time.sleep(0.2)
    c = Conn(srv.port)
    res.check(c.call("GET") == b"-ERR wrong number of arguments for 'get' command\r\n",
              "arity is checked before auth, as in Redis")
    res.check(c.call("PING") == b"-NOAUTH Authentication required.\r\n", "NOAUTH")
    r = c.call("HELLO", "3", "AUTH", "default", "s3cret", "BOGUS")
    res.check(r.startswith(b"-ERR Syntax error in HELLO option"), "HELLO bad option")
    res.check(c.call("PING") == b"-NOAUTH Authentication required.\r\n",
              "a refused HELLO does not authenticate")
    res.check(c.call("AUTH", "wrong").startswith(b"-WRONGPASS"), "WRONGPASS")
    res.check(c.call("AUTH", "s3cret") == b"+OK\r\n", "AUTH ok")
    res.check(c.call("PING") == b"+PONG\r\n", "after AUTH")
    h = Conn(srv.port)
    r = h.call("HELLO", "3", "AUTH", "default", "s3cret")
    res.check(r.startswith(b"%7\r\n"), "HELLO 3 AUTH gives a map: %r" % r[:20])
    h.close()
    u = Conn(srv.port)
    u.send_raw(b"*20\r\n")
    res.check(u.read_reply() == b"-ERR Protocol error: unauthenticated multibulk length\r\n",
              "unauthenticated multibulk limit")
    u.close()
    idle = Conn(srv.port)
    res.check(idle.closed_by_peer(timeout=4), "idle client closed by --timeout")
    waiting = Conn(srv.port)
    admin = Conn(srv.port)
    admin.call("AUTH", "s3cret")
    res.check(admin.call("CONFIG", "SET", "requirepass", "") == b"+OK\r\n", "clear password")
    res.check(waiting.call("PING") == b"+PONG\r\n", "waiting client let in once password cleared")
    res.check(admin.call("CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0") == b"+OK\r\n",
              "output limit 0")
    res.check(admin.call("PING") == b"+PONG\r\n", "output limit 0 means no limit")
    waiting.close()
    admin.close()
    res.check(srv.stop() == 0, "clean exit")


def main():
    srv = fleetlib.start_fleetd()
    try:
        test_malformed(srv)
        test_garbage(srv)
        test_half_frames(srv)
        test_inline_and_pipeline(srv)
        test_wrong_arity_and_unknown(srv)
        test_quit(srv)
        test_client_cmds(srv)
        test_output_limit(srv)
        test_query_limit(srv)
    finally:
        res.check(srv.stop() == 0, "fleetd exits 0 on SIGTERM")
    test_maxclients_timeout_auth()
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
