//! The LDAP wire codec with explicit limits.
//!
//! Decoding reads the outer BER header first, so a request announcing more
//! than `max_message_bytes` (say a 4-GiB length) is refused before any of
//! it is buffered; nesting deeper than `max_ber_depth` is refused by the
//! BER parser. A well-formed message that ldap3_proto cannot turn into an
//! `LdapMsg` (an operation or a field it does not know) is not a framing
//! error: its message ID and operation tag are recovered, so the
//! connection can answer it with protocolError and carry on. Encoding is
//! ldap3_proto's.

use std::io;

use bytes::{Buf, BytesMut};
use ldap3_lber::common::TagClass;
use ldap3_lber::structure::{StructureTag, PL};
use ldap3_proto::proto::LdapMsg;
use ldap3_proto::LdapCodec;
use tokio_util::codec::{Decoder, Encoder};

/// One decoded request.
#[derive(Debug)]
pub enum Incoming {
    Msg(LdapMsg),
    /// Well-formed BER with a message ID, but not a request ldap3_proto can
    /// decode. `op_tag` is the APPLICATION tag number of the operation.
    Undecodable {
        msgid: i32,
        op_tag: u64,
    },
}

/// Limits for the decoder.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    max_message_bytes: usize,
    max_ber_depth: usize,
}

impl Codec {
    pub fn new(max_message_bytes: usize, max_ber_depth: usize) -> Codec {
        Codec {
            max_message_bytes,
            max_ber_depth,
        }
    }

    /// Decodes one complete message from `bytes` (for tests and fuzzing):
    /// `Ok(None)` when more bytes are needed.
    pub fn decode_slice(&mut self, bytes: &[u8]) -> io::Result<Option<(Incoming, usize)>> {
        let mut buf = BytesMut::from(bytes);
        let before = buf.len();
        let item = self.decode(&mut buf)?;
        Ok(item.map(|i| (i, before - buf.len())))
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The total length (header + content) of the BER element at the start of
/// `buf`, or `None` when the header is not complete yet.
fn element_len(buf: &[u8]) -> io::Result<Option<usize>> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    // RFC 4511 §4.1.1: every LDAPMessage is a universal constructed
    // SEQUENCE.
    if tag != 0x30 {
        return Err(invalid("not an LDAPMessage"));
    }
    let Some(&first) = buf.get(1) else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some(2 + usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    // 0x80 is the indefinite form (not allowed in LDAP, RFC 4511 §5.1);
    // more than 4 length bytes is beyond any limit we accept.
    if n == 0 || n > 4 {
        return Err(invalid("unsupported BER length"));
    }
    let Some(bytes) = buf.get(2..2 + n) else {
        return Ok(None);
    };
    let len = bytes
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Ok(Some(2 + n + len))
}

/// The message ID and operation tag of a parsed LDAPMessage, if it has
/// them.
fn recover(tag: &StructureTag) -> Option<(i32, u64)> {
    let PL::C(items) = &tag.payload else {
        return None;
    };
    let id = items.first()?;
    let op = items.get(1)?;
    if id.class != TagClass::Universal || id.id != 2 {
        return None;
    }
    let PL::P(bytes) = &id.payload else {
        return None;
    };
    // messageID ::= INTEGER (0 .. maxInt): at most 4 content bytes.
    if bytes.is_empty() || bytes.len() > 4 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let msgid = bytes.iter().fold(0i64, |acc, &b| (acc << 8) | i64::from(b));
    let msgid = i32::try_from(msgid).ok()?;
    if op.class != TagClass::Application {
        return None;
    }
    Some((msgid, op.id))
}

impl Decoder for Codec {
    type Item = Incoming;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Incoming>> {
        let Some(total) = element_len(buf)? else {
            return Ok(None);
        };
        if total > self.max_message_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request larger than ldap.max_message_bytes",
            ));
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut parser = ldap3_lber::Parser::new(self.max_ber_depth);
        let tag = match parser.parse(&buf[..total]) {
            Ok(([], tag)) => tag,
            _ => return Err(invalid("malformed BER")),
        };
        buf.advance(total);
        let recovered = recover(&tag);
        match LdapMsg::try_from(tag) {
            Ok(msg) => Ok(Some(Incoming::Msg(msg))),
            Err(_) => match recovered {
                Some((msgid, op_tag)) => Ok(Some(Incoming::Undecodable { msgid, op_tag })),
                None => Err(invalid("not an LDAPMessage")),
            },
        }
    }
}

impl Encoder<LdapMsg> for Codec {
    type Error = io::Error;

    fn encode(&mut self, msg: LdapMsg, buf: &mut BytesMut) -> io::Result<()> {
        LdapCodec::default().encode(msg, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::proto::LdapOp;

    fn codec() -> Codec {
        Codec::new(256 * 1024, 32)
    }

    #[test]
    fn a_huge_length_is_refused_from_the_header() {
        let mut c = codec();
        assert!(c
            .decode_slice(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff])
            .is_err());
        assert!(c.decode_slice(&[0x30, 0x84, 0xff]).expect("ok").is_none());
        assert!(c.decode_slice(&[0x31, 0x00]).is_err());
        assert!(c.decode_slice(&[0x30, 0x80]).is_err());
    }

    #[test]
    fn decodes_and_recovers() {
        let mut c = codec();
        // An unbind, message ID 5.
        let (item, used) = c
            .decode_slice(&[0x30, 0x05, 0x02, 0x01, 0x05, 0x42, 0x00, 0xff])
            .expect("ok")
            .expect("item");
        assert_eq!(used, 7);
        assert!(matches!(item, Incoming::Msg(m) if m.msgid == 5 && m.op == LdapOp::UnbindRequest));
        // APPLICATION 30 (no such operation), message ID 7.
        let (item, _) = c
            .decode_slice(&[0x30, 0x05, 0x02, 0x01, 0x07, 0x5e, 0x00])
            .expect("ok")
            .expect("item");
        assert!(matches!(
            item,
            Incoming::Undecodable {
                msgid: 7,
                op_tag: 30
            }
        ));
        // No message ID: not recoverable.
        assert!(c.decode_slice(&[0x30, 0x02, 0x04, 0x00]).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut c = codec();
        // 40 nested SEQUENCEs inside a message.
        let depth = 40;
        let mut inner: Vec<u8> = Vec::new();
        for _ in 0..depth {
            let mut outer = vec![0x30, u8::try_from(inner.len()).unwrap_or(0)];
            outer.extend_from_slice(&inner);
            inner = outer;
            if inner.len() > 120 {
                break;
            }
        }
        let mut msg = vec![0x30, 0x00, 0x02, 0x01, 0x01];
        msg.extend_from_slice(&inner);
        msg[1] = u8::try_from(msg.len() - 2).expect("short");
        assert!(c.decode_slice(&msg).is_err());
    }
}
