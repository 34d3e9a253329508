#!/usr/bin/env python3
"""Writes the hand-made seed corpus in fuzz/corpus/<target>/ (run from fuzz/).

Fuzzing adds to these directories; keep only small, interesting inputs
(`cargo fuzz cmin <target>` minimizes). The stable test tests/it/corpus.rs
replays every file through the same entry points.
"""
import os, random

def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([tag, n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([tag, 0x80 | len(b)]) + b
    return head + content

def msg(msgid, op, controls=b""):
    return tlv(0x30, tlv(0x02, bytes([msgid])) + op + controls)

def s(x): return tlv(0x04, x.encode())
def i(v): return tlv(0x02, bytes([v]))
def e(v): return tlv(0x0a, bytes([v]))
def b(v): return tlv(0x01, bytes([0xff if v else 0]))

def bind(dn, pw, version=3):
    return tlv(0x60, i(version) + s(dn) + tlv(0x80, pw.encode()))

def search(base, scope, flt, attrs=(), size=0):
    return tlv(0x63, s(base) + e(scope) + e(0) + i(size) + i(0) + b(False) + flt
               + tlv(0x30, b"".join(s(a) for a in attrs)))

def present(a): return tlv(0x87, a.encode())
def eq(a, v): return tlv(0xa3, s(a) + s(v))
def sub(a, init): return tlv(0xa4, s(a) + tlv(0x30, tlv(0x80, init.encode())))
def and_(*fs): return tlv(0xa0, b"".join(fs))
def or_(*fs): return tlv(0xa1, b"".join(fs))
def not_(f): return tlv(0xa2, f)
def ext(oid, value=None):
    return tlv(0x77, tlv(0x80, oid.encode()) + (tlv(0x81, value) if value is not None else b""))
def paged(size, cookie=b""):
    val = tlv(0x30, tlv(0x02, bytes([size])) + tlv(0x04, cookie))
    return tlv(0xa0, tlv(0x30, s("1.2.840.113556.1.4.319") + tlv(0x04, val)))

ROOT = "cn=root,ou=users,dc=example,dc=com"
BASE = "dc=example,dc=com"
def deep(n):
    f = present("objectClass")
    for _ in range(n):
        f = not_(f)
    return f

message = {
    "anonymous-bind": msg(1, bind("", "")),
    "root-bind-search": msg(1, bind(ROOT, "root-pw")) + msg(2, search(BASE, 2, present("objectClass"))),
    "bad-password": msg(1, bind(ROOT, "nope")),
    "empty-password": msg(1, bind(ROOT, "")),
    "v2-bind": msg(1, bind("", "", 2)),
    "sasl-bind": msg(1, tlv(0x60, i(3) + s("") + tlv(0xa3, s("EXTERNAL")))),
    "rootdse": msg(1, search("", 0, present("objectClass"), ["+", "*"])),
    "subschema": msg(1, search("cn=subschema", 0, present("objectClass"), ["attributeTypes"])),
    "filters": msg(1, bind(ROOT, "root-pw")) + msg(2, search(BASE, 2, and_(eq("uid", "alice"), or_(sub("cn", "al"), not_(present("mail")))))),
    "in-chain": msg(1, bind(ROOT, "root-pw")) + msg(2, search(BASE, 2, tlv(0xa9, tlv(0x81, b"1.2.840.113556.1.4.1941") + tlv(0x82, b"memberOf") + tlv(0x83, b"cn=admins,ou=groups,dc=example,dc=com")))),
    "paged": msg(1, bind(ROOT, "root-pw")) + msg(2, search(BASE, 2, present("objectClass")), paged(1)),
    "paged-bad-cookie": msg(1, bind(ROOT, "root-pw")) + msg(2, search(BASE, 2, present("objectClass")), paged(1, b"nope")),
    "compare": msg(1, bind(ROOT, "root-pw")) + msg(2, tlv(0x6e, s("cn=alice,ou=users," + BASE) + tlv(0x30, s("uid") + s("alice")))),
    "whoami": msg(1, ext("1.3.6.1.4.1.4203.1.11.3")),
    "starttls": msg(1, ext("1.3.6.1.4.1.1466.20037")),
    "unknown-ext": msg(1, ext("1.2.3.4", b"x")),
    "passwd-anon": msg(1, ext("1.3.6.1.4.1.4203.1.11.1", tlv(0x30, tlv(0x80, b"u:alice")))),
    "passwd-malformed": msg(1, bind(ROOT, "root-pw")) + msg(2, ext("1.3.6.1.4.1.4203.1.11.1", b"\x01\x02")),
    "abandon": msg(1, tlv(0x50, bytes([7]))),
    "unbind": msg(1, tlv(0x42, b"")),
    "add": msg(1, tlv(0x68, s("cn=x," + BASE) + tlv(0x30, b""))),
    "delete": msg(1, tlv(0x4a, b"cn=x," + BASE.encode())),
    "client-sent-response": msg(1, tlv(0x61, e(0) + s("") + s(""))),
    "unknown-op": msg(1, tlv(0x7e, b"")),
    "bad-scope": msg(1, search(BASE, 9, present("objectClass"))),
    "critical-unknown-control": msg(1, search("", 0, present("objectClass")), tlv(0xa0, tlv(0x30, s("1.2.3.4") + b(True)))),
    "garbage": b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    "zeros": bytes(64),
    "ff": b"\xff" * 64,
    "length-4gib": bytes([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01]),
    "length-indefinite": bytes([0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00]),
    "truncated": msg(1, bind(ROOT, "root-pw"))[:-3],
    "deep-filter-10000": msg(2, search(BASE, 2, deep(10000))),
    "deep-filter-30": msg(1, bind(ROOT, "root-pw")) + msg(2, search(BASE, 2, deep(28))),
    "negative-msgid": tlv(0x30, tlv(0x02, b"\xff") + tlv(0x42, b"")),
    "huge-msgid": tlv(0x30, tlv(0x02, b"\x7f\xff\xff\xff\xff") + tlv(0x42, b"")),
}

flt = {
    "present": "(objectClass=*)",
    "eq": "(uid=alice)",
    "and-or-not": "(&(objectClass=person)(|(uid=alice)(!(mail=*))))",
    "substring": "(cn=*li*e*)",
    "ge-le": "(&(uidNumber>=2000)(uidNumber<=2001))",
    "approx": "(cn~=alice example)",
    "escaped": "(cn=\\28paren\\29\\2a\\5c)",
    "unknown-attr": "(nosuchattr=1)",
    "extensible": "(memberOf:1.2.840.113556.1.4.1941:=cn=admins,ou=groups,dc=example,dc=com)",
    "extensible-dn": "(:dn:2.5.13.5:=example)",
    "time": "(createTimestamp>=20200101000000Z)",
    "bad-int": "(uidNumber>=abc)",
    "empty-and": "(&)",
    "empty-or": "(|)",
    "unbalanced": "((uid=alice)",
    "garbage": "\x00\xff\xfe",
    "deep-10000": "(!" * 10000 + "(uid=alice)" + ")" * 10000,
    "deep-20": "(!" * 20 + "(uid=alice)" + ")" * 20,
    "long-value": "(cn=" + "a" * 3000 + ")",
    "bad-escape": "(cn=\\zz)",
}

dn = {
    "user": "cn=alice,ou=users,dc=example,dc=com",
    "spaces-case": "CN=Alice , OU=Users, DC=Example, DC=Com",
    "escaped": "cn=a\\,b\\+c\\\"d\\\\e,dc=example,dc=com",
    "hex-escape": "cn=\\41lice,dc=example",
    "hexstring": "cn=#04024869,dc=example",
    "multivalued": "cn=a+uid=b,dc=example",
    "oid-type": "2.5.4.3=alice,dc=example",
    "leading-space": "cn=\\ alice\\ ,dc=x",
    "hash-lead": "cn=\\#x,dc=x",
    "empty": "",
    "no-equals": "alice",
    "trailing-comma": "cn=a,",
    "bad-hex": "cn=\\zz",
    "utf8": "cn=Jürgen Ünïcödé,dc=example",
    "bad-utf8-escape": "cn=\\c3\\28",
    "semicolon": "cn=a;dc=b",
    "long": ",".join(["dc=x"] * 500),
    "garbage": "\x00=\x01,=,==",
}


base = "dc=example,dc=com"
def user(name, extra=""):
    return (f"dn: uid={name},ou=people,{base}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
            f"uid: {name}\ncn: {name.title()} Example\nsn: Example\nmail: {name}@example.com\n"
            f"uidNumber: 2001\ngidNumber: 2001\nhomeDirectory: /home/{name}\n{extra}\n")
ldif = {
    "users-groups": "version: 1\n\n" + user("alice", "userPassword: secret-pass-1\n") + user("bob")
        + f"dn: cn=staff,ou=groups,{base}\nobjectClass: groupOfNames\ncn: staff\nmember: uid=alice,ou=people,{base}\nmember: uid=bob,ou=people,{base}\n\n",
    "posix-group": f"dn: cn=dev,ou=groups,{base}\nobjectClass: posixGroup\ncn: dev\ngidNumber: 3000\nmemberUid: alice\n\n",
    "base64": f"dn:: {__import__('base64').b64encode(('uid=jürgen,ou=people,'+base).encode()).decode()}\nobjectClass: inetOrgPerson\nuid:: anVyZ2Vu\ncn: J\nsn: J\n\n",
    "folded": f"dn: uid=carol,ou=peo\n ple,{base}\nobjectClass: inetOrgPerson\nuid: carol\ncn: Carol\n  Long\nsn: C\n\n",
    "changetypes": f"dn: uid=dave,{base}\nchangetype: modify\nreplace: mail\nmail: d@x\n-\n\ndn: uid=erin,{base}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: erin\ncn: E\nsn: E\n\n",
    "ssha-hash": user("frank", "userPassword: {SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"),
    "cycle": f"dn: cn=a,{base}\nobjectClass: groupOfNames\ncn: a\nmember: cn=b,{base}\n\ndn: cn=b,{base}\nobjectClass: groupOfNames\ncn: b\nmember: cn=a,{base}\n\n",
    "duplicate": user("gina") + user("gina"),
    "options": f"dn: uid=hal,{base}\nobjectClass: inetOrgPerson\nuid: hal\ncn;lang-de: Hal\ncn: Hal\nsn: H\nemployeeType: staff\nsshPublicKey: ssh-ed25519 AAAA\n\n",
    "url-value": f"dn: uid=ivy,{base}\nobjectClass: inetOrgPerson\nuid: ivy\ncn: Ivy\nsn: I\njpegPhoto:< file:///etc/passwd\n\n",
    "bad-base64": "dn:: !!!notbase64\nuid: x\n\n",
    "no-dn": "uid: x\ncn: y\n\n",
    "crlf": "version: 1\r\n\r\ndn: uid=jo," + base + "\r\nobjectClass: inetOrgPerson\r\nuid: jo\r\ncn: Jo\r\nsn: J\r\n\r\n",
    "comments": "# a comment\n#  folded\n  comment\ndn: uid=kim," + base + "\nobjectClass: inetOrgPerson\nuid: kim\ncn: Kim\nsn: K\n\n",
    "long-value": f"dn: uid=lee,{base}\nobjectClass: inetOrgPerson\nuid: lee\ncn: {'x'*5000}\nsn: L\n\n",
    "garbage": "\x00\x01:::\n:\n dn\n\n\n",
    "empty": "",
}

for target, items in (("message", message), ("filter", flt), ("dn", dn), ("ldif", ldif)):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in items.items():
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

# A few generated variations: random byte flips of the valid messages.
rng = random.Random(4)
d = os.path.join("corpus", "message")
for n in range(12):
    base = bytearray(message[rng.choice(["root-bind-search", "filters", "paged", "compare", "whoami"])])
    for _ in range(rng.randint(1, 4)):
        base[rng.randrange(len(base))] = rng.randrange(256)
    with open(os.path.join(d, f"mutated-{n:02}"), "wb") as f:
        f.write(bytes(base))
