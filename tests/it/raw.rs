//! A minimal blocking LDAP client over any stream (plain TCP or rustls),
//! for tests that need what real clients will not send: garbage, huge
//! lengths, deep nesting, abandon at a chosen moment, StartTLS after a
//! refused bind on the same connection.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapExtendedRequest, LdapFilter, LdapMsg,
    LdapOp, LdapResultCode, LdapSearchRequest, LdapSearchScope,
};
use ldap3_proto::LdapCodec;
use tokio_util::codec::{Decoder, Encoder};

pub const OID_STARTTLS: &str = "1.3.6.1.4.1.1466.20037";
pub const OID_WHOAMI: &str = "1.3.6.1.4.1.4203.1.11.3";

pub struct Raw<S: Read + Write> {
    pub stream: S,
    buf: BytesMut,
    codec: LdapCodec,
}

/// What a read gave.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Got {
    Msg(LdapMsg),
    /// The server closed the connection.
    Eof,
    /// Nothing within the read timeout.
    Timeout,
}

impl Raw<TcpStream> {
    pub fn connect(addr: &str) -> Raw<TcpStream> {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Raw::new(stream)
    }

    /// Caps the kernel's receive buffer of this connection at `bytes`,
    /// which also stops Linux growing it (up to tcp_rmem's maximum, 32 MB
    /// on the CI machine): what the client leaves unread then backs up
    /// into the server within that much.
    pub fn cap_receive_buffer(&self, bytes: usize) {
        socket2::SockRef::from(&self.stream)
            .set_recv_buffer_size(bytes)
            .expect("SO_RCVBUF");
    }

    pub fn set_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("timeout");
    }

    /// Upgrades to TLS (after a successful StartTLS, or for LDAPS),
    /// verifying the server against `cacert`.
    pub fn into_tls(
        self,
        cacert: &Path,
    ) -> Raw<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
        assert!(self.buf.is_empty(), "bytes left before the TLS handshake");
        let stream = tls_client(cacert, self.stream);
        Raw::new(stream)
    }
}

pub fn tls_client(
    cacert: &Path,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(cacert).expect("read cacert") {
        roots.add(cert.expect("pem")).expect("add root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    rustls::StreamOwned::new(conn, tcp)
}

impl<S: Read + Write> Raw<S> {
    pub fn new(stream: S) -> Raw<S> {
        Raw {
            stream,
            buf: BytesMut::new(),
            codec: LdapCodec::default(),
        }
    }

    pub fn send(&mut self, msg: LdapMsg) {
        assert!(self.try_send(msg), "send failed");
    }

    /// Sends; false if the connection (or its TLS handshake) failed.
    pub fn try_send(&mut self, msg: LdapMsg) -> bool {
        let mut out = BytesMut::new();
        self.codec.encode(msg, &mut out).expect("encode");
        self.try_send_bytes(&out)
    }

    /// Sends; false if the server has closed the connection already.
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok() && self.stream.flush().is_ok()
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        assert!(self.try_send_bytes(bytes), "send failed");
    }

    pub fn recv(&mut self) -> Got {
        loop {
            if !self.buf.is_empty() {
                match self.codec.decode(&mut self.buf) {
                    Ok(Some(msg)) => return Got::Msg(msg),
                    Ok(None) => {}
                    Err(e) => panic!("undecodable response: {e}"),
                }
            }
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Got::Eof,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Got::Timeout
                }
                Err(_) => return Got::Eof,
            }
        }
    }

    /// The next message; panics on EOF or timeout.
    pub fn msg(&mut self) -> LdapMsg {
        match self.recv() {
            Got::Msg(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Reads until the server closes, skipping a Notice of Disconnection;
    /// true if it closed (false on timeout or another message).
    pub fn closed(&mut self) -> bool {
        loop {
            match self.recv() {
                Got::Eof => return true,
                Got::Msg(m) if m.msgid == 0 => continue,
                _ => return false,
            }
        }
    }

    pub fn bind(&mut self, msgid: i32, dn: &str, pw: &str) -> LdapResultCode {
        self.send(bind(msgid, dn, pw));
        code(&self.msg())
    }
}

pub fn bind(msgid: i32, dn: &str, pw: &str) -> LdapMsg {
    LdapMsg::new(
        msgid,
        LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: dn.into(),
            cred: LdapBindCred::Simple(pw.into()),
        }),
    )
}

pub fn extended(msgid: i32, oid: &str) -> LdapMsg {
    LdapMsg::new(
        msgid,
        LdapOp::ExtendedRequest(LdapExtendedRequest {
            name: oid.into(),
            value: None,
        }),
    )
}

pub fn search(msgid: i32, base: &str, filter: LdapFilter) -> LdapMsg {
    LdapMsg::new(
        msgid,
        LdapOp::SearchRequest(LdapSearchRequest {
            base: base.into(),
            scope: LdapSearchScope::Subtree,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter,
            attrs: vec![],
        }),
    )
}

pub fn code(msg: &LdapMsg) -> LdapResultCode {
    match &msg.op {
        LdapOp::BindResponse(r) => r.res.code.clone(),
        LdapOp::SearchResultDone(r) | LdapOp::CompareResult(r) => r.code.clone(),
        LdapOp::ExtendedResponse(r) => r.res.code.clone(),
        other => panic!("no result in {other:?}"),
    }
}

/// One BER TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A search request whose filter nests `depth` NOTs around a presence
/// filter, as raw BER.
pub fn deep_filter_search(msgid: u8, depth: usize) -> Vec<u8> {
    let mut filter = tlv(0x87, b"objectClass");
    for _ in 0..depth {
        filter = tlv(0xa2, &filter);
    }
    let mut body = Vec::new();
    body.extend(tlv(0x04, b"")); // base
    body.extend(tlv(0x0a, &[2])); // scope sub
    body.extend(tlv(0x0a, &[0])); // deref never
    body.extend(tlv(0x02, &[0])); // size limit
    body.extend(tlv(0x02, &[0])); // time limit
    body.extend(tlv(0x01, &[0])); // types only
    body.extend(filter);
    body.extend(tlv(0x30, b"")); // attributes
    let mut msg = tlv(0x02, &[msgid]);
    msg.extend(tlv(0x63, &body));
    tlv(0x30, &msg)
}
