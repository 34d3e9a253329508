#!/usr/bin/python3
"""Drive Portcullis with the two Python LDAP libraries people use.

Run with Debian's interpreter (/usr/bin/python3) so that the packages
python3-ldap (python-ldap) and python3-ldap3 are importable. Settings come
from the environment (see `env` below); every result is printed as one JSON
object per line, `{"lib": ..., "step": ..., ...}`, for the Rust test in
tests/it/clients.rs to check. The script itself asserts nothing: a failure
is printed as a step with "ok": false and the script goes on, so the test
reports every broken step at once.

Steps, for each library:
  bind        simple bind as the search account
  paged       a Simple Paged Results search (RFC 2696) over ou=users with a
              page size smaller than the result: number of pages, entries
  passwd      Password Modify extended operation (RFC 3062) on a user,
              giving old and new password
  rebind_new  bind as that user with the new password
  rebind_old  bind with the old password (must fail: invalidCredentials)
"""

import json
import os
import sys
import traceback


def env(name):
    value = os.environ.get(name)
    if value is None:
        sys.exit(f"missing environment variable {name}")
    return value


URL = env("PC_URL")
BASE = env("PC_BASE")
SVC_DN = env("PC_SVC_DN")
SVC_PW = env("PC_SVC_PW")
PAGE_SIZE = int(env("PC_PAGE_SIZE"))


def report(lib, step, **fields):
    print(json.dumps({"lib": lib, "step": step, **fields}), flush=True)


def run(lib, step, fn):
    try:
        fields = fn() or {}
        report(lib, step, ok=True, **fields)
    except Exception as e:  # report every failure, keep going
        report(lib, step, ok=False, error=f"{type(e).__name__}: {e}",
               trace=traceback.format_exc(limit=3))


def python_ldap(user_dn, old_pw, new_pw):
    import ldap
    from ldap.controls import SimplePagedResultsControl

    def connect():
        c = ldap.initialize(URL)
        c.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        c.set_option(ldap.OPT_NETWORK_TIMEOUT, 10)
        c.set_option(ldap.OPT_REFERRALS, 0)
        return c

    conn = connect()

    def bind():
        conn.simple_bind_s(SVC_DN, SVC_PW)
        return {"whoami": conn.whoami_s()}

    def paged():
        ctrl = SimplePagedResultsControl(True, size=PAGE_SIZE, cookie=b"")
        pages, names = 0, []
        while True:
            msgid = conn.search_ext(f"ou=users,{BASE}", ldap.SCOPE_ONELEVEL,
                                    "(objectClass=posixAccount)", ["uid"],
                                    serverctrls=[ctrl])
            _, data, _, sctrls = conn.result3(msgid)
            pages += 1
            names += [e[1]["uid"][0].decode() for e in data if e[0]]
            resp = [c for c in sctrls
                    if c.controlType == SimplePagedResultsControl.controlType]
            if not resp or not resp[0].cookie:
                break
            ctrl.cookie = resp[0].cookie
            if pages > 1000:
                raise RuntimeError("paging does not end")
        return {"pages": pages, "entries": sorted(names)}

    def passwd():
        c = connect()
        c.simple_bind_s(user_dn, old_pw)
        c.passwd_s(user_dn, old_pw, new_pw)
        c.unbind_s()

    def rebind_new():
        c = connect()
        c.simple_bind_s(user_dn, new_pw)
        who = c.whoami_s()
        c.unbind_s()
        return {"whoami": who}

    def rebind_old():
        c = connect()
        try:
            c.simple_bind_s(user_dn, old_pw)
        except ldap.INVALID_CREDENTIALS:
            return {"result": "invalidCredentials"}
        return {"result": "success"}

    run("python-ldap", "bind", bind)
    run("python-ldap", "paged", paged)
    run("python-ldap", "passwd", passwd)
    run("python-ldap", "rebind_new", rebind_new)
    run("python-ldap", "rebind_old", rebind_old)


def ldap3_package(user_dn, old_pw, new_pw):
    import ldap3
    from ldap3.core.exceptions import LDAPBindError

    # get_info=ALL: ldap3 reads the root DSE and cn=subschema at bind and
    # parses every attribute type and object class it finds there.
    server = ldap3.Server(URL, get_info=ldap3.ALL, connect_timeout=10)

    def bind():
        conn = ldap3.Connection(server, SVC_DN, SVC_PW, auto_bind=True,
                                raise_exceptions=True)
        info = server.info
        schema = server.schema
        out = {
            "whoami": conn.extend.standard.who_am_i(),
            "naming_contexts": [str(n) for n in info.naming_contexts],
            "paged_control": "1.2.840.113556.1.4.319" in
                             [c[0] for c in info.supported_controls],
            "password_modify": "1.3.6.1.4.1.4203.1.11.1" in
                               [e[0] for e in info.supported_extensions],
            "schema_attribute_types": len(schema.attribute_types),
            "schema_object_classes": len(schema.object_classes),
            "inetorgperson_must": sorted(
                schema.object_classes["inetOrgPerson"].must_contain
                + schema.object_classes["person"].must_contain),
        }
        conn.unbind()
        return out

    def paged():
        conn = ldap3.Connection(server, SVC_DN, SVC_PW, auto_bind=True,
                                raise_exceptions=True)
        pages, names, cookie = 0, [], None
        while True:
            conn.search(f"ou=users,{BASE}", "(objectClass=posixAccount)",
                        search_scope=ldap3.LEVEL, attributes=["uid"],
                        paged_size=PAGE_SIZE, paged_cookie=cookie)
            pages += 1
            names += [str(e.uid) for e in conn.entries]
            cookie = (conn.result.get("controls", {})
                      .get("1.2.840.113556.1.4.319", {})
                      .get("value", {}).get("cookie"))
            if not cookie:
                break
            if pages > 1000:
                raise RuntimeError("paging does not end")
        conn.unbind()
        return {"pages": pages, "entries": sorted(names)}

    def passwd():
        conn = ldap3.Connection(server, user_dn, old_pw, auto_bind=True,
                                raise_exceptions=True)
        ok = conn.extend.standard.modify_password(user_dn, old_pw, new_pw)
        result = conn.result.get("description")
        conn.unbind()
        if not ok:
            raise RuntimeError(f"modify_password returned {ok}: {result}")
        return {"result": result}

    def rebind_new():
        conn = ldap3.Connection(server, user_dn, new_pw, auto_bind=True,
                                raise_exceptions=True)
        who = conn.extend.standard.who_am_i()
        conn.unbind()
        return {"whoami": who}

    def rebind_old():
        try:
            ldap3.Connection(server, user_dn, old_pw, auto_bind=True,
                             raise_exceptions=True)
        except LDAPBindError as e:
            return {"result": "invalidCredentials"
                    if "invalidCredentials" in str(e) else str(e)}
        except ldap3.core.exceptions.LDAPInvalidCredentialsResult:
            return {"result": "invalidCredentials"}
        return {"result": "success"}

    run("ldap3", "bind", bind)
    run("ldap3", "paged", paged)
    run("ldap3", "passwd", passwd)
    run("ldap3", "rebind_new", rebind_new)
    run("ldap3", "rebind_old", rebind_old)


if __name__ == "__main__":
    python_ldap(env("PC_USER1_DN"), env("PC_USER1_OLD"), env("PC_USER1_NEW"))
    ldap3_package(env("PC_USER2_DN"), env("PC_USER2_OLD"), env("PC_USER2_NEW"))
