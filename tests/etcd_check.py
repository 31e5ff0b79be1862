#!/usr/bin/python3
"""Drive distkv-etcd with python-etcd and raw HTTP (tests/test_etcd.sh).

usage: etcd_check.py GATEWAY_URL [ETCD_URL]

With ETCD_URL (a real etcd --enable-v2 on loopback), every raw error case
runs against both and must give the same status, errorCode, message and
cause, except the deviations named in DEVIATIONS (docs/etcd.md lists them).
Every wait has a timeout; the script exits 1 on the first failure.
"""
import json
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import etcd

GW = sys.argv[1].rstrip("/")
REAL = sys.argv[2].rstrip("/") if len(sys.argv) > 2 else None
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)
    else:
        print("ok:", what, flush=True)


def http(base, method, path, body=None, timeout=5, headers=None):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base + path, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def hj(base, method, path, body=None):
    st, hd, b = http(base, method, path, body)
    try:
        return st, hd, json.loads(b)
    except ValueError:
        return st, hd, b


# ---- python-etcd ----
def python_etcd():
    u = urllib.parse.urlparse(GW)
    c = etcd.Client(host=u.hostname, port=u.port, read_timeout=5)
    r = c.write("/py/a", "1")
    check(r.action == "set" and r.value == "1", "python-etcd write")
    check(c.read("/py/a").value == "1", "python-etcd read")
    idx = c.read("/py/a").modifiedIndex
    r = c.test_and_set("/py/a", "2", "1")
    check(r.action == "compareAndSwap" and r.value == "2", "test_and_set ok")
    try:
        c.test_and_set("/py/a", "3", "1")
        check(False, "test_and_set with a wrong prev value fails")
    except etcd.EtcdCompareFailed:
        check(True, "test_and_set with a wrong prev value fails")
    c.write("/py/d/x", "x")
    c.write("/py/d/y/z", "z")
    leaves = sorted(x.key for x in c.read("/py", recursive=True).leaves)
    check(leaves == ["/py/a", "/py/d/x", "/py/d/y/z"], "recursive read: %s" % leaves)
    w = c.watch("/py/a", index=idx + 1, timeout=3)
    check(w.action == "compareAndSwap" and w.value == "2",
          "watch(index=) returns the event from the history")
    try:
        c.watch("/py/a", timeout=0.5)
        check(False, "watch timeout raises")
    except etcd.EtcdWatchTimedOut:
        check(True, "watch timeout raises")
    got = {}

    def waiter():
        got["r"] = c.watch("/py/d", recursive=True, timeout=5)
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    c.write("/py/d/y/z", "zz")
    t.join(6)
    r = got.get("r")
    check(r is not None and r.key == "/py/d/y/z" and r.value == "zz" and
          r._prev_node.value == "z", "recursive watch sees a write below, with prevNode")
    r = c.write("/py/q", "first", append=True)
    r2 = c.write("/py/q", "second", append=True)
    check(r.action == "create" and r.key < r2.key and len(r.key.split("/")[-1]) == 20,
          "POST makes in-order keys: %s %s" % (r.key, r2.key))
    r = c.delete("/py/a")
    check(r.action == "delete", "delete")
    try:
        c.read("/py/a")
        check(False, "read of a deleted key raises EtcdKeyNotFound")
    except etcd.EtcdKeyNotFound:
        check(True, "read of a deleted key raises EtcdKeyNotFound")
    r = c.write("/py/n", "v", prevExist=False)
    check(r.action == "create", "write prevExist=False creates")
    try:
        c.write("/py/n", "v", prevExist=False)
        check(False, "second create fails")
    except etcd.EtcdAlreadyExist:
        check(True, "second create fails with EtcdAlreadyExist")
    c.delete("/py", recursive=True)
    try:
        c.read("/py")
        check(False, "recursive delete removes the dir")
    except etcd.EtcdKeyNotFound:
        check(True, "recursive delete removes the dir")


# ---- raw HTTP: error codes, shared with the real etcd ----
SETUP = [
    ("PUT", "/v2/keys/t/file", "value=v"),
    ("PUT", "/v2/keys/t/dir/child", "value=c"),
    ("PUT", "/v2/keys/t/empty?dir=true", None),
]
CASES = [
    # (name, method, path, body)
    ("get missing", "GET", "/v2/keys/t/nope", None),
    ("get below a file", "GET", "/v2/keys/t/file/x", None),
    ("cas wrong value", "PUT", "/v2/keys/t/file", "value=n&prevValue=zz"),
    ("cas wrong index", "PUT", "/v2/keys/t/file?prevIndex=1", "value=n"),
    ("cas both wrong", "PUT", "/v2/keys/t/file", "value=n&prevValue=zz&prevIndex=1"),
    ("cas missing", "PUT", "/v2/keys/t/nope?prevValue=a", "value=n"),
    ("cas on dir", "PUT", "/v2/keys/t/dir?prevValue=a", "value=n"),
    ("create existing", "PUT", "/v2/keys/t/file?prevExist=false", "value=n"),
    ("mkdir existing", "PUT", "/v2/keys/t/empty?prevExist=false&dir=true", None),
    ("update missing", "PUT", "/v2/keys/t/nope?prevExist=true", "value=n"),
    ("update dir with value", "PUT", "/v2/keys/t/dir?prevExist=true", "value=n"),
    ("set value on dir", "PUT", "/v2/keys/t/dir", "value=n"),
    ("set dir on dir", "PUT", "/v2/keys/t/dir?dir=true", None),
    ("put below a file", "PUT", "/v2/keys/t/file/x", "value=n"),
    ("post below a file", "POST", "/v2/keys/t/file", "value=n"),
    ("delete dir without dir", "DELETE", "/v2/keys/t/dir", None),
    ("delete full dir with dir", "DELETE", "/v2/keys/t/dir?dir=true", None),
    ("delete missing", "DELETE", "/v2/keys/t/nope", None),
    ("cad wrong value", "DELETE", "/v2/keys/t/file?prevValue=zz", None),
    ("cad wrong index", "DELETE", "/v2/keys/t/file?prevIndex=1", None),
    ("cad on dir", "DELETE", "/v2/keys/t/dir?prevValue=a", None),
    ("delete root", "DELETE", "/v2/keys/?dir=true", None),
    ("put root", "PUT", "/v2/keys/", "value=x"),
    ("bad prevIndex", "PUT", "/v2/keys/t/file?prevIndex=abc", "value=n"),
    ("negative prevIndex", "PUT", "/v2/keys/t/file?prevIndex=-1", "value=n"),
    ("huge prevIndex", "PUT", "/v2/keys/t/file?prevIndex=99999999999999999999999", "value=n"),
    ("bad waitIndex", "GET", "/v2/keys/t/file?wait=true&waitIndex=x", None),
    ("bad ttl", "PUT", "/v2/keys/t/file?ttl=abc", "value=n"),
    ("bad recursive", "GET", "/v2/keys/t?recursive=yes", None),
    ("bad sorted", "GET", "/v2/keys/t?sorted=2", None),
    ("bad dir", "PUT", "/v2/keys/t/x?dir=maybe", None),
    ("bad prevExist", "PUT", "/v2/keys/t/file?prevExist=maybe", "value=n"),
    ("empty prevValue", "PUT", "/v2/keys/t/file?prevValue=", "value=n"),
    ("wait on PUT", "PUT", "/v2/keys/t/file?wait=true", "value=n"),
    ("refresh with value", "PUT", "/v2/keys/t/file?refresh=true&ttl=5", "value=n"),
    ("refresh without ttl", "PUT", "/v2/keys/t/file?refresh=true", None),
    ("bad escape in body", "PUT", "/v2/keys/t/file", "value=%zz"),
    ("bad escape in query", "PUT", "/v2/keys/t/file?value=%g1", None),
    ("condition in body", "PUT", "/v2/keys/t/file", "value=n&prevValue=zz"),
]
# differences on purpose (docs/etcd.md, "Deviations")
DEVIATIONS = {
    # Go's error text quotes the escape ("invalid URL escape \"%zz\"")
    "bad escape in body": "cause",
    "bad escape in query": "cause",
    # refresh needs a TTL, which the gateway refuses: the TTL error wins
    "refresh with value": None,
}


def strip(b):
    """errorCode, message and cause; indexes in a cause differ by design."""
    if not isinstance(b, dict):
        return b
    out = {k: b.get(k) for k in ("errorCode", "message", "cause")}
    if isinstance(out["cause"], str):
        out["cause"] = re.sub(r"!= \d+\]", "!= N]", out["cause"])
    return out


def raw_errors():
    for base in [GW] + ([REAL] if REAL else []):
        for m, p, b in SETUP:
            st, _, _ = http(base, m, p, b)
            check(st in (200, 201), "setup %s %s on %s" % (m, p, base))
    for name, m, p, b in CASES:
        st, hd, body = hj(GW, m, p, b)
        ok = isinstance(body, dict) and "errorCode" in body and "index" in body
        check(ok and st >= 400, "%s: gateway answers an etcd error (%s %s)" % (name, st, body))
        check(hd.get("Content-Type") == "application/json" and "X-Etcd-Index" in hd,
              "%s: Content-Type and X-Etcd-Index" % name)
        if REAL is None:
            continue
        rst, _, rbody = hj(REAL, m, p, b)
        dev = DEVIATIONS.get(name, "")
        if dev is None:
            continue
        a, e = strip(body), strip(rbody)
        if dev == "cause":
            a.pop("cause", None)
            e.pop("cause", None)
        if dev == "code":
            check(st >= 400, "%s: deviation (etcd %s %s)" % (name, rst, rbody))
            continue
        check(st == rst and a == e, "%s: same as etcd: %s %s vs etcd %s %s" % (name, st, a, rst, e))
    # TTL is refused, never ignored (etcd would accept it)
    st, _, body = hj(GW, "PUT", "/v2/keys/t/ttl", "value=v&ttl=5")
    check(st == 400 and body.get("errorCode") == 209, "ttl refused with 209")
    st, _, _ = http(GW, "GET", "/v2/keys/t/ttl")
    check(st == 404, "a refused ttl write stored nothing")


def raw_shapes():
    st, hd, b = hj(GW, "PUT", "/v2/keys/s/k", "value=one")
    check(st == 201 and b["action"] == "set" and b["node"]["key"] == "/s/k" and
          b["node"]["value"] == "one", "PUT new: 201 set")
    i1 = b["node"]["modifiedIndex"]
    check(int(hd["X-Etcd-Index"]) == i1, "X-Etcd-Index = modifiedIndex of the write")
    st, hd, b = hj(GW, "PUT", "/v2/keys/s/k", "value=two")
    i2 = b["node"]["modifiedIndex"]
    check(st == 200 and i2 > i1 and b["prevNode"]["value"] == "one" and
          b["prevNode"]["modifiedIndex"] == i1, "PUT existing: 200 with prevNode, index grows")
    st, hd, b = hj(GW, "GET", "/v2/keys/s/k")
    check(b["node"]["modifiedIndex"] == i2 and int(hd["X-Etcd-Index"]) >= i2,
          "GET shows the write's index")
    st, hd, b = hj(GW, "GET", "/v2/keys/s/k?wait=true&waitIndex=%d" % i2)
    check(b["action"] == "set" and b["node"]["modifiedIndex"] == i2 and
          b["prevNode"]["value"] == "one", "waitIndex = the write's index returns it")
    hj(GW, "PUT", "/v2/keys/s/_hidden", "value=h")
    st, hd, b = hj(GW, "GET", "/v2/keys/s")
    keys = [n["key"] for n in b["node"].get("nodes", [])]
    check(keys == ["/s/k"], "hidden keys are not listed: %s" % keys)
    st, hd, b = hj(GW, "GET", "/v2/keys/s/_hidden")
    check(st == 200 and b["node"]["value"] == "h", "hidden keys are readable")
    st, hd, b = hj(GW, "PUT", "/v2/keys/s/dd?dir=true")
    check(st == 201 and b["node"].get("dir") is True, "mkdir: a dir node")
    st, hd, b = hj(GW, "GET", "/v2/keys/s/dd")
    check(b["node"].get("dir") is True and "nodes" not in b["node"], "empty dir reads back")
    st, hd, b = hj(GW, "DELETE", "/v2/keys/s/dd?dir=true")
    check(st == 200 and b["action"] == "delete" and b["node"].get("dir") is True and
          b["prevNode"].get("dir") is True, "rmdir: delete of a dir node")
    st, hd, b = hj(GW, "GET", "/v2/keys/s?recursive=true&sorted=true&quorum=true")
    check(st == 200, "quorum accepted")
    # conditions in the form body
    st, hd, b = hj(GW, "PUT", "/v2/keys/s/k", "value=three&prevIndex=%d" % i2)
    check(st == 200 and b["action"] == "compareAndSwap", "prevIndex in the body")
    # noValueOnSuccess
    st, hd, b = hj(GW, "PUT", "/v2/keys/s/k?noValueOnSuccess=true", "value=four")
    check(st == 200 and "node" not in b, "noValueOnSuccess")
    for p in ("/version", "/health", "/v2/members", "/v2/machines"):
        st, hd, b = http(GW, "GET", p)
        check(st == 200, "%s answers" % p)
    st, hd, b = hj(GW, "GET", "/v2/members")
    check(b["members"][0]["clientURLs"] == [GW], "members point back at the gateway")
    st, _, b = http(GW, "GET", "/nothing")
    check(st == 404, "unknown path: 404")
    st, hd, b = http(GW, "PATCH", "/v2/keys/s/k", "value=x")
    check(st == 405, "PATCH: 405")
    st, _, b = http(GW, "GET", "/v2/keys/%zz")
    check(st == 400, "bad escape in the path: 400")
    st, _, b = hj(GW, "PUT", "/v2/keys/s/big", "value=" + "x" * (2 << 20))
    check(st == 400 and b.get("errorCode") == 210, "huge body: 210")
    st, _, b = http(GW, "GET", "/v2/keys/s/big")
    check(st == 404, "huge body wrote nothing")
    st, _, b = http(GW, "GET", "/v2/keys/s/k", headers={"X-Big": "y" * 100000})
    check(st in (413, 431), "huge header: refused by the server (%s)" % st)
    # a value written by another client as a number shows as JSON text
    # (set by the shell test with distkv-cli before this script runs)
    st, _, b = hj(GW, "GET", "/v2/keys/cli/num")
    check(st == 200 and b["node"]["value"] == "8080", "non-string value as JSON text")


def raw_watch():
    # headers come at once, before any event
    u = urllib.parse.urlparse(GW)
    s = socket.create_connection((u.hostname, u.port), timeout=5)
    s.sendall(b"GET /v2/keys/wt/a?wait=true HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    check(head.startswith(b"HTTP/1.1 200") and b"X-Etcd-Index" in head,
          "long-poll headers are sent at once")
    hj(GW, "PUT", "/v2/keys/wt/a/child", "value=1")   # a child: not for a non-recursive wait
    hj(GW, "PUT", "/v2/keys/wt/b", "value=1")
    s.settimeout(0.5)
    try:
        extra = s.recv(4096)
    except socket.timeout:
        extra = b""
    check(extra == b"", "non-recursive wait ignores children and siblings")
    st, _, b = hj(GW, "DELETE", "/v2/keys/wt/a/child")
    st, _, b = hj(GW, "PUT", "/v2/keys/wt/a", "value=v")
    s.settimeout(5)
    body = b""
    while b"}\r\n" not in body and b"0\r\n\r\n" not in body:
        d = s.recv(4096)
        if not d:
            break
        body += d
    check(b'"key":"/wt/a"' in body, "the long-poll gets its event")
    s.close()
    # history limit: waitIndex older than the kept events -> 401
    for i in range(30):
        hj(GW, "PUT", "/v2/keys/wt/h", "value=%d" % i)
    st, hd, b = hj(GW, "GET", "/v2/keys/wt/h?wait=true&waitIndex=1")
    check(st == 400 and b.get("errorCode") == 401 and "cleared" in b.get("cause", ""),
          "waitIndex older than the history: 401 (%s)" % b)
    # many idle long-polls, some of which vanish
    n = 300
    socks = []
    for i in range(n):
        c = socket.create_connection((u.hostname, u.port), timeout=5)
        c.sendall(b"GET /v2/keys/many?wait=true HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(c)
    for c in socks[: n // 2]:
        c.close()
    time.sleep(1.5)      # the gateway sweeps hung-up watchers once a second
    hj(GW, "PUT", "/v2/keys/many", "value=go")
    ok = 0
    for c in socks[n // 2:]:
        c.settimeout(5)
        data = b""
        try:
            while b'"value":"go"' not in data:
                d = c.recv(65536)
                if not d:
                    break
                data += d
        except socket.timeout:
            pass
        ok += b'"value":"go"' in data
        c.close()
    check(ok == n - n // 2, "%d of %d live long-polls got the event" % (ok, n - n // 2))
    st, _, _ = http(GW, "GET", "/v2/keys/many")
    check(st == 200, "gateway still serves after vanished watchers")


def put_concurrently(nthreads, per, nkeys):
    """nthreads clients, started together, each PUT per plain sets of
    keys /cs/k0..; returns the good replies (modifiedIndex, key, value,
    X-Etcd-Index) and the bad ones."""
    replies, errors = [], []
    lock = threading.Lock()
    go = threading.Barrier(nthreads)

    def writer(t):
        go.wait(10)
        for j in range(per):
            key = "/cs/k%d" % ((t + j) % nkeys)
            val = "t%d-%d" % (t, j)
            st, hd, b = hj(GW, "PUT", "/v2/keys" + key, "value=" + val)
            ok = (st == 200 and isinstance(b, dict) and
                  b.get("action") == "set" and "prevNode" in b and
                  b["node"].get("value") == val)
            with lock:
                if ok:
                    replies.append((b["node"]["modifiedIndex"], key, val,
                                    int(hd.get("X-Etcd-Index", "0"))))
                else:
                    errors.append((st, b))
    ts = [threading.Thread(target=writer, args=(t,)) for t in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return replies, errors


def concurrent_sets():
    """Plain sets of known keys skip the workers (docs/etcd.md,
    "Threads"): from 16 clients at once, every reply still has its
    prevNode and an index that is already in the history, and the
    history replays every set in index order with action "set"."""
    nkeys = 8
    # idle connections on every HTTP thread: a connection alone on its
    # thread is served inline, these sets must take the async path
    u = urllib.parse.urlparse(GW)
    idle = [socket.create_connection((u.hostname, u.port), timeout=5)
            for _ in range(8)]
    for i in range(nkeys):
        hj(GW, "PUT", "/v2/keys/cs/k%d" % i, "value=start")
    replies, errors = put_concurrently(16, 25, nkeys)
    check(not errors and len(replies) == 400,
          "400 concurrent plain sets: all 200 set with prevNode (%d errors: %s)"
          % (len(errors), errors[:2]))
    idx = sorted(r[0] for r in replies)
    check(len(set(idx)) == len(idx) and all(r[3] >= r[0] for r in replies),
          "concurrent sets: distinct indexes, X-Etcd-Index >= modifiedIndex")
    # one set per client, few enough for the test's --history 20
    st, hd, _ = hj(GW, "GET", "/v2/keys/cs/k0")
    first = int(hd.get("X-Etcd-Index", "0")) + 1
    replies, errors = put_concurrently(16, 1, nkeys)
    idx = sorted(r[0] for r in replies)
    # each reply's index is in the history when the reply comes: a wait
    # at it answers at once with that very set
    bad = 0
    for mi, key, val, _ in replies:
        st, _, b = hj(GW, "GET", "/v2/keys%s?wait=true&waitIndex=%d" % (key, mi))
        if not (st == 200 and b.get("action") == "set" and
                b["node"].get("modifiedIndex") == mi and
                b["node"].get("value") == val):
            bad += 1
    check(not errors and len(replies) == 16 and bad == 0,
          "16 concurrent sets: a wait at each reply's index returns that "
          "set (%d wrong, %d errors)" % (bad, len(errors)))
    # the recursive history from the first set on holds each, in order
    seen, since = [], first
    while len(seen) < len(replies):
        st, _, b = hj(GW, "GET", "/v2/keys/cs?wait=true&recursive=true&waitIndex=%d" % since)
        if st != 200:
            break
        seen.append((b["node"]["modifiedIndex"], b["action"]))
        since = b["node"]["modifiedIndex"] + 1
    check([i for i, _ in seen] == idx and all(a == "set" for _, a in seen),
          "16 concurrent sets: the history replays each in index order, "
          "action set (%s)" % seen[:4])
    for c in idle:
        c.close()


python_etcd()
concurrent_sets()
raw_shapes()
raw_errors()
raw_watch()
print("%d failures" % len(FAILS))
sys.exit(1 if FAILS else 0)
