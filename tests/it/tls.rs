//! TLS: LDAPS and StartTLS with the generated certificate and verification
//! on, the confidentiality policy, StartTLS refusals, and certificate
//! reload on SIGHUP without dropping connections.

use std::net::TcpStream;
use std::process::Command;

use ldap3_proto::proto::{LdapOp, LdapResultCode};

use crate::harness::{tool, user_dn, Server, FAST_HASH_ENV};

/// Runs an OpenLDAP tool with LDAPTLS_* variables honoured: `tool` sets
/// LDAPNOINIT, which makes libldap ignore the environment too. The system
/// and user config files are kept out with LDAPCONF/LDAPRC.
fn tls_tool(name: &str, args: &[&str], cacert: &str) -> (i32, String, String) {
    let out = Command::new(name)
        .args(args)
        .env_remove("LDAPNOINIT")
        .env("LDAPCONF", "/dev/null")
        .env("LDAPRC", "/dev/null")
        .env("LDAPTLS_CACERT", cacert)
        .env("LDAPTLS_REQCERT", "demand")
        .output()
        .unwrap_or_else(|e| panic!("{name} not runnable (is ldap-utils installed?): {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
use crate::raw::{self, Raw, OID_STARTTLS, OID_WHOAMI};

#[test]
fn ldapwhoami_over_ldaps_and_starttls_with_verification() {
    let s = Server::start();
    s.add_user("alice", "alice-pw");
    let cacert = s.cacert();
    let cacert = cacert.to_str().expect("utf-8 path");
    let dn = user_dn("alice");
    for args in [
        vec![
            "-x",
            "-H",
            s.ldaps_url.as_str(),
            "-D",
            &dn,
            "-w",
            "alice-pw",
        ],
        vec![
            "-x",
            "-ZZ",
            "-H",
            s.url.as_str(),
            "-D",
            &dn,
            "-w",
            "alice-pw",
        ],
    ] {
        let (code, out, err) = tls_tool("ldapwhoami", &args, cacert);
        assert_eq!(code, 0, "ldapwhoami {args:?}: {err}");
        assert_eq!(out.trim(), format!("dn:{dn}"));
    }
    // Verification is really on: without the certificate it fails.
    let (code, _, _) = tool(
        "ldapwhoami",
        &["-x", "-ZZ", "-H", &s.url],
        &[
            ("LDAPTLS_CACERT", "/dev/null"),
            ("LDAPTLS_REQCERT", "demand"),
        ],
    );
    assert_ne!(
        code, 0,
        "StartTLS must fail against an untrusted certificate"
    );
    // The root DSE announces StartTLS.
    let (code, out, err) = tool(
        "ldapsearch",
        &[
            "-x",
            "-H",
            &s.url,
            "-b",
            "",
            "-s",
            "base",
            "supportedExtension",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(OID_STARTTLS), "{out}");
}

#[test]
fn cleartext_bind_refused_under_always_then_accepted_after_starttls() {
    let mut env = FAST_HASH_ENV.to_vec();
    env.push(("PORTCULLIS_LDAP_REQUIRE_TLS_FOR_BIND", "always"));
    let s = Server::start_with(&env);
    s.add_user("alice", "alice-pw");

    let mut c = Raw::connect(&s.addr);
    assert_eq!(
        c.bind(1, &user_dn("alice"), "alice-pw"),
        LdapResultCode::ConfidentialityRequired
    );
    // Anonymous binds are not affected.
    assert_eq!(c.bind(2, "", ""), LdapResultCode::Success);
    // StartTLS on the same connection, then the same bind succeeds.
    c.send(raw::extended(3, OID_STARTTLS));
    let resp = c.msg();
    assert_eq!(resp.msgid, 3);
    assert_eq!(raw::code(&resp), LdapResultCode::Success);
    let mut t = c.into_tls(&s.cacert());
    assert_eq!(
        t.bind(4, &user_dn("alice"), "alice-pw"),
        LdapResultCode::Success
    );
    t.send(raw::extended(5, OID_WHOAMI));
    let who = t.msg();
    let LdapOp::ExtendedResponse(r) = &who.op else {
        panic!("{who:?}")
    };
    assert_eq!(
        r.value.as_deref(),
        Some(format!("dn:{}", user_dn("alice")).as_bytes())
    );
    // RFC 4511 §4.14.1: StartTLS again is operationsError; the connection
    // stays usable.
    t.send(raw::extended(6, OID_STARTTLS));
    assert_eq!(raw::code(&t.msg()), LdapResultCode::OperationsError);
    t.send(raw::extended(7, OID_WHOAMI));
    assert_eq!(raw::code(&t.msg()), LdapResultCode::Success);

    // The OpenLDAP client agrees: refused in clear (13), fine with -ZZ.
    let (code, _, err) = tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            &s.url,
            "-D",
            &user_dn("alice"),
            "-w",
            "alice-pw",
        ],
        &[],
    );
    assert_eq!(code, 13, "{err}");
}

#[test]
fn certificate_reload_on_sighup_keeps_connections() {
    let s = Server::start();
    let old_cert = s.cacert();
    // A connection over the old certificate.
    let tcp = TcpStream::connect(s.ldaps_url.trim_start_matches("ldaps://")).expect("connect");
    let mut old = Raw::new(raw::tls_client(&old_cert, tcp));
    assert_eq!(old.bind(1, "", ""), LdapResultCode::Success);

    // Replace the files with a new self-signed pair and send SIGHUP.
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    let tmp = tempfile::tempdir().expect("tmp");
    let new_cert = tmp.path().join("new.pem");
    std::fs::write(&new_cert, cert.pem()).expect("write");
    std::fs::write(s.data.join("tls/key.pem"), key.serialize_pem()).expect("write key");
    std::fs::write(s.data.join("tls/cert.pem"), cert.pem()).expect("write cert");
    let status = Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());

    // New handshakes present the new certificate (trusting only it works);
    // poll briefly since the signal is handled asynchronously.
    let addr = s.ldaps_url.trim_start_matches("ldaps://").to_string();
    let mut ok = false;
    for _ in 0..50 {
        let tcp = TcpStream::connect(&addr).expect("connect");
        let mut c = Raw::new(raw::tls_client(&new_cert, tcp));
        // Until the reload, the handshake fails (the old certificate is
        // not trusted here) and so does the write.
        if c.try_send(raw::bind(1, "", "")) {
            if let raw::Got::Msg(m) = c.recv() {
                if raw::code(&m) == LdapResultCode::Success {
                    ok = true;
                    break;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok, "the new certificate is not served after SIGHUP");
    // The old connection is still up.
    old.send(raw::extended(2, OID_WHOAMI));
    assert_eq!(raw::code(&old.msg()), LdapResultCode::Success);
}
