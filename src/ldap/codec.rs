//! The LDAP wire codec with explicit limits.
//!
//! Decoding reads the outer BER header first, so a request announcing more
//! than `max_message_bytes` (say a 4-GiB length) is refused before any of
//! it is buffered; nesting deeper than `max_ber_depth` is refused by the
//! BER parser. A well-formed message that ldap3_proto cannot turn into an
//! `LdapMsg` (an operation or a field it does not know) is not a framing
//! error: its message ID and operation tag are recovered, so the
//! connection can answer it with protocolError and carry on. A message ID
//! outside 1..2^31−1 is a framing error (RFC 4511 §4.1.1): it is checked
//! on the raw INTEGER, before ldap3_proto would truncate it to an `i32`
//! (−5 as 251, 2^32+1 as 1) and the server would answer under an ID the
//! client never sent. Encoding is
//! ldap3_proto's, except for search result entries (most of the bytes a
//! server sends) and the result that ends every search, which are written
//! straight into the output buffer: the generic path builds a tree of tags
//! and copies every value once per nesting level. The bytes are the same.
//! Search requests without controls are likewise read in place
//! ([`search`]). A search result entry may also be
//! encoded once without its message ID ([`entry_op`]) and sent again and
//! again as an [`Outgoing::Entry`]: only the message's header is written
//! per response.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use ldap3_lber::common::TagClass;
use ldap3_lber::structure::{StructureTag, PL};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{LdapBindCred, LdapMsg, LdapOp, LdapResult, LdapSearchResultEntry};
use ldap3_proto::LdapCodec;
use tokio_util::codec::{Decoder, Encoder};

mod search;

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
    /// A simple bind whose password is not UTF-8, which ldap3_proto
    /// cannot decode. No stored password is one, so it is a wrong
    /// password, not a protocol error.
    UnreadablePassword(UnreadableBind),
}

/// A simple bind request (RFC 4511 §4.2) without its password, which was
/// not UTF-8 and so can match no password: everything else the handler
/// needs to refuse it as a wrong password. It carries no password, so it
/// cannot be mistaken for any bind that could succeed.
#[derive(Debug)]
pub struct UnreadableBind {
    pub msgid: i32,
    pub version: i64,
    pub dn: String,
    pub ctrl: Vec<LdapControl>,
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

/// The error for a message whose ID is not a request's (RFC 4511 §4.1.1):
/// the connection answers it with a Notice of Disconnection.
pub const INVALID_MESSAGE_ID: &str = "invalid message ID";

/// RFC 4511 §4.1.1: `maxInt INTEGER ::= 2147483647 -- (2^^31 - 1) --`.
const MAX_INT: u32 = 0x7fff_ffff;

/// RFC 4511 §4.1.1: `MessageID ::= INTEGER (0 .. maxInt)`, maxInt being
/// 2^31−1, and 0 is reserved for unsolicited notifications, which a client
/// never sends. So a request's ID must be in 1..=maxInt; anything else
/// (negative, 0, too large for 32 bits) is refused here, from the raw
/// INTEGER's two's-complement content octets. A first element that is not
/// an INTEGER is left to the decoder (not an LDAPMessage at all).
fn check_message_id(tag: &StructureTag) -> io::Result<()> {
    let PL::C(items) = &tag.payload else {
        return Ok(());
    };
    let Some(id) = items.first() else {
        return Ok(());
    };
    let (TagClass::Universal, 2, PL::P(bytes)) = (id.class, id.id, &id.payload) else {
        return Ok(());
    };
    let valid = match bytes.first() {
        // No content octets: not an INTEGER (X.690 §8.3.1).
        None => false,
        // The sign bit: negative.
        Some(b) if b & 0x80 != 0 => false,
        Some(_) => {
            // Non-negative: leading zero octets (allowed by lenient
            // encoders) do not change the value.
            let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
            let digits = bytes.get(start..).unwrap_or_default();
            digits.len() <= 4 && {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
                (1..=MAX_INT).contains(&value)
            }
        }
    };
    if valid {
        Ok(())
    } else {
        Err(invalid(INVALID_MESSAGE_ID))
    }
}

/// A bind request that is well-formed except for a simple password that
/// is not UTF-8: the message with a UTF-8 stand-in password goes through
/// ldap3_proto (so every other field and the controls are checked as for
/// any request), and the stand-in is dropped.
fn unreadable_password(tag: &StructureTag) -> Option<UnreadableBind> {
    let PL::C(items) = &tag.payload else {
        return None;
    };
    let op = items.get(1)?;
    if op.class != TagClass::Application || op.id != 0 {
        return None;
    }
    let PL::C(fields) = &op.payload else {
        return None;
    };
    let cred = fields.get(2)?;
    let PL::P(password) = &cred.payload else {
        return None;
    };
    if cred.class != TagClass::Context || cred.id != 0 || std::str::from_utf8(password).is_ok() {
        return None;
    }
    let mut stand_in = tag.clone();
    if let PL::C(items) = &mut stand_in.payload {
        if let Some(PL::C(fields)) = items.get_mut(1).map(|op| &mut op.payload) {
            if let Some(cred) = fields.get_mut(2) {
                cred.payload = PL::P(Vec::new());
            }
        }
    }
    match LdapMsg::try_from(stand_in).ok()? {
        LdapMsg {
            msgid,
            op: LdapOp::BindRequest(req),
            ctrl,
        } if matches!(req.cred, LdapBindCred::Simple(_)) => Some(UnreadableBind {
            msgid,
            version: req.version,
            dn: req.dn,
            ctrl,
        }),
        _ => None,
    }
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
        if let Some(msg) = search::decode(&buf[..total], self.max_ber_depth) {
            buf.advance(total);
            return Ok(Some(Incoming::Msg(msg)));
        }
        self.decode_parsed(buf, total)
    }
}

impl Codec {
    /// Decodes the complete message of `total` bytes at the start of
    /// `buf` through ldap3_proto: every request [`search::decode`] does
    /// not take.
    fn decode_parsed(&mut self, buf: &mut BytesMut, total: usize) -> io::Result<Option<Incoming>> {
        let mut parser = ldap3_lber::Parser::new(self.max_ber_depth);
        let tag = match parser.parse(&buf[..total]) {
            Ok(([], tag)) => tag,
            _ => return Err(invalid("malformed BER")),
        };
        buf.advance(total);
        check_message_id(&tag)?;
        let recovered = recover(&tag);
        let unreadable = unreadable_password(&tag);
        match LdapMsg::try_from(tag) {
            Ok(msg) => Ok(Some(Incoming::Msg(msg))),
            Err(_) => match (unreadable, recovered) {
                (Some(bind), _) => Ok(Some(Incoming::UnreadablePassword(bind))),
                (None, Some((msgid, op_tag))) => Ok(Some(Incoming::Undecodable { msgid, op_tag })),
                (None, None) => Err(invalid("not an LDAPMessage")),
            },
        }
    }
}

/// One response for the writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Msg(LdapMsg),
    /// A SearchResultEntry without controls whose protocolOp element
    /// (`[APPLICATION 4] …`) was encoded beforehand by [`entry_op`].
    Entry {
        msgid: i32,
        op: Bytes,
    },
    /// Complete messages, encoded beforehand by [`encode_msg`] (the
    /// entries of a search, built and encoded on a blocking thread).
    Encoded(Bytes),
}

#[cfg(test)]
impl Outgoing {
    /// The message of a response that is not pre-encoded.
    pub fn msg(&self) -> &LdapMsg {
        match self {
            Outgoing::Msg(m) => m,
            Outgoing::Entry { .. } | Outgoing::Encoded(_) => panic!("a pre-encoded entry"),
        }
    }
}

impl From<LdapMsg> for Outgoing {
    fn from(msg: LdapMsg) -> Outgoing {
        Outgoing::Msg(msg)
    }
}

impl Encoder<Outgoing> for Codec {
    type Error = io::Error;

    fn encode(&mut self, out: Outgoing, buf: &mut BytesMut) -> io::Result<()> {
        match out {
            Outgoing::Msg(msg) => self.encode(msg, buf),
            Outgoing::Entry { msgid, op } => {
                entry_header(msgid, op.len(), buf);
                buf.reserve(op.len());
                buf.extend_from_slice(&op);
                Ok(())
            }
            Outgoing::Encoded(bytes) => {
                buf.extend_from_slice(&bytes);
                Ok(())
            }
        }
    }
}

/// The bytes of a message that come before its protocolOp element of
/// `op_len` bytes, header included (a pre-encoded one of an
/// [`Outgoing::Entry`], which may be sent from where it is, or one the
/// caller writes next): the message's SEQUENCE header and its messageID.
/// Room is reserved for these only.
pub fn entry_header(msgid: i32, op_len: usize, buf: &mut BytesMut) {
    let id = int_bytes(msgid);
    let msg_len = tlv_len(id.len()) + op_len;
    buf.reserve(tlv_len(msg_len) - op_len);
    header(buf, 0x30, msg_len);
    header(buf, 0x02, id.len());
    buf.extend_from_slice(&id);
}

/// The protocolOp element of a SearchResultEntry (`[APPLICATION 4]
/// SEQUENCE { objectName, attributes }`), the same bytes
/// [`Codec`] writes inside a message.
pub fn entry_op(entry: &LdapSearchResultEntry) -> Bytes {
    entry_op_parts(&entry.dn, &attr_refs(entry))
}

/// [`entry_op`] of the entry `dn` with `attrs`: the bytes that follow the
/// message ID in what [`encode_entry_parts`] writes.
pub fn entry_op_parts<V: AsRef<[u8]>>(dn: &str, attrs: &[AttrRef<'_, V>]) -> Bytes {
    let mut buf = BytesMut::new();
    write_entry_op(dn, attrs, attrs_len(attrs), &mut buf);
    buf.freeze()
}

impl Encoder<LdapMsg> for Codec {
    type Error = io::Error;

    fn encode(&mut self, msg: LdapMsg, buf: &mut BytesMut) -> io::Result<()> {
        encode_msg(msg, buf)
    }
}

/// Appends `msg` as [`Codec`] writes it, for callers that put several
/// messages into one [`Outgoing::Encoded`].
pub fn encode_msg(msg: LdapMsg, buf: &mut BytesMut) -> io::Result<()> {
    {
        match msg {
            LdapMsg {
                msgid,
                op: LdapOp::SearchResultEntry(entry),
                ctrl,
            } if msgid >= 0 && ctrl.is_empty() => {
                encode_entry(msgid, &entry, buf);
                Ok(())
            }
            LdapMsg {
                msgid,
                op: LdapOp::SearchResultDone(result),
                ctrl,
            } if msgid >= 0 && ctrl.is_empty() && result.referral.is_empty() => {
                encode_search_done(msgid, &result, buf);
                Ok(())
            }
            msg => LdapCodec::default().encode(msg, buf),
        }
    }
}

/// BER (definite, shortest lengths, RFC 4511 §5.1) of a SearchResultEntry
/// message without controls (§4.5.2):
/// `SEQUENCE { messageID INTEGER, [APPLICATION 4] SEQUENCE { objectName
/// OCTET STRING, attributes SEQUENCE OF SEQUENCE { type OCTET STRING,
/// vals SET OF OCTET STRING } } }`. Lengths are summed first, so every
/// byte is written once, in place.
fn encode_entry(msgid: i32, entry: &LdapSearchResultEntry, buf: &mut BytesMut) {
    let attrs = attr_refs(entry);
    encode_entry_parts(msgid, &entry.dn, &attrs, buf);
}

/// BER of a SearchResultDone message without controls or referral (RFC
/// 4511 §4.5.2, §4.1.9): `SEQUENCE { messageID INTEGER, [APPLICATION 5]
/// SEQUENCE { resultCode ENUMERATED, matchedDN OCTET STRING,
/// diagnosticMessage OCTET STRING } }`, as ldap3_proto writes it. Every
/// search ends with one; the generic path built a tree of tags for it.
fn encode_search_done(msgid: i32, result: &LdapResult, buf: &mut BytesMut) {
    let code = int_bytes(result.code.clone() as i32);
    let op_len =
        tlv_len(code.len()) + tlv_len(result.matcheddn.len()) + tlv_len(result.message.len());
    entry_header(msgid, tlv_len(op_len), buf);
    buf.reserve(tlv_len(op_len));
    header(buf, 0x65, op_len);
    header(buf, 0x0a, code.len());
    buf.extend_from_slice(&code);
    header(buf, 0x04, result.matcheddn.len());
    buf.extend_from_slice(result.matcheddn.as_bytes());
    header(buf, 0x04, result.message.len());
    buf.extend_from_slice(result.message.as_bytes());
}

/// One attribute of an entry being encoded, borrowed from wherever the
/// entry lives (an [`LdapSearchResultEntry`], or a directory entry sent
/// without first being copied into one).
pub struct AttrRef<'a, V> {
    pub atype: &'a str,
    pub vals: &'a [V],
}

/// The attributes of `entry`, borrowed for [`encode_entry_parts`].
fn attr_refs(entry: &LdapSearchResultEntry) -> Vec<AttrRef<'_, Vec<u8>>> {
    entry
        .attributes
        .iter()
        .map(|a| AttrRef {
            atype: &a.atype,
            vals: &a.vals,
        })
        .collect()
}

/// Appends a SearchResultEntry message of `dn` and `attrs` (the same
/// bytes [`Codec`] writes for the equivalent [`LdapSearchResultEntry`]).
pub fn encode_entry_parts<V: AsRef<[u8]>>(
    msgid: i32,
    dn: &str,
    attrs: &[AttrRef<'_, V>],
    buf: &mut BytesMut,
) {
    let attrs_len = attrs_len(attrs);
    let op_len = tlv_len(dn.len()) + tlv_len(attrs_len);
    entry_header(msgid, tlv_len(op_len), buf);
    buf.reserve(tlv_len(op_len));
    write_entry_op(dn, attrs, attrs_len, buf);
}

fn set_len<V: AsRef<[u8]>>(vals: &[V]) -> usize {
    vals.iter().map(|v| tlv_len(v.as_ref().len())).sum()
}

fn attr_len<V: AsRef<[u8]>>(a: &AttrRef<'_, V>) -> usize {
    tlv_len(a.atype.len()) + tlv_len(set_len(a.vals))
}

fn attrs_len<V: AsRef<[u8]>>(attrs: &[AttrRef<'_, V>]) -> usize {
    attrs.iter().map(|a| tlv_len(attr_len(a))).sum()
}

/// The `[APPLICATION 4]` element, `attrs_len` being [`attrs_len`] of
/// `attrs`.
fn write_entry_op<V: AsRef<[u8]>>(
    dn: &str,
    attrs: &[AttrRef<'_, V>],
    attrs_len: usize,
    buf: &mut BytesMut,
) {
    let op_len = tlv_len(dn.len()) + tlv_len(attrs_len);
    buf.reserve(tlv_len(op_len));
    header(buf, 0x64, op_len);
    header(buf, 0x04, dn.len());
    buf.extend_from_slice(dn.as_bytes());
    header(buf, 0x30, attrs_len);
    for a in attrs {
        write_attr(a, buf);
    }
}

/// One `PartialAttribute` (`SEQUENCE { type, vals SET OF OCTET STRING }`).
fn write_attr<V: AsRef<[u8]>>(a: &AttrRef<'_, V>, buf: &mut BytesMut) {
    header(buf, 0x30, attr_len(a));
    header(buf, 0x04, a.atype.len());
    buf.extend_from_slice(a.atype.as_bytes());
    header(buf, 0x31, set_len(a.vals));
    for v in a.vals {
        let v = v.as_ref();
        header(buf, 0x04, v.len());
        buf.extend_from_slice(v);
    }
}

/// Appends one attribute of an entry as [`encode_entry_parts`] writes it,
/// for [`encode_entry_attrs_encoded`].
pub fn encode_attr<V: AsRef<[u8]>>(atype: &str, vals: &[V], buf: &mut BytesMut) {
    let a = AttrRef { atype, vals };
    buf.reserve(tlv_len(attr_len(&a)));
    write_attr(&a, buf);
}

/// [`encode_entry_parts`] of attributes already encoded, each by
/// [`encode_attr`], in order: for an entry written as its attributes are
/// made, without holding them.
pub fn encode_entry_attrs_encoded(msgid: i32, dn: &str, attrs: &[u8], buf: &mut BytesMut) {
    let op_len = tlv_len(dn.len()) + tlv_len(attrs.len());
    entry_header(msgid, tlv_len(op_len), buf);
    buf.reserve(tlv_len(op_len));
    header(buf, 0x64, op_len);
    header(buf, 0x04, dn.len());
    buf.extend_from_slice(dn.as_bytes());
    header(buf, 0x30, attrs.len());
    buf.extend_from_slice(attrs);
}

/// Bytes of a length in BER's definite form.
fn len_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        1 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

/// Bytes of an element with a one-byte tag and `content` bytes.
fn tlv_len(content: usize) -> usize {
    1 + len_len(content) + content
}

/// Appends a tag and a length, in one copy (an entry has a dozen of them).
fn header(buf: &mut BytesMut, tag: u8, len: usize) {
    if len < 0x80 {
        buf.extend_from_slice(&[tag, len as u8]);
    } else {
        let n = len_len(len) - 1;
        let mut bytes = [0u8; 2 + std::mem::size_of::<usize>()];
        bytes[0] = tag;
        bytes[1] = 0x80 | n as u8;
        bytes[2..2 + n].copy_from_slice(&len.to_be_bytes()[std::mem::size_of::<usize>() - n..]);
        buf.extend_from_slice(&bytes[..2 + n]);
    }
}

/// An INTEGER's content: shortest two's complement for a non-negative
/// one (a message ID, RFC 4511 §4.1.1), four bytes for a negative one.
fn int_bytes(n: i32) -> Vec<u8> {
    let be = n.to_be_bytes();
    // Drop leading zero bytes while the next byte's top bit stays clear.
    let mut start = 0;
    while start < be.len() - 1 && be[start] == 0 && be[start + 1] & 0x80 == 0 {
        start += 1;
    }
    be[start..].to_vec()
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

    /// An unbind request whose messageID INTEGER has `id` as content.
    fn unbind_with_id(id: &[u8]) -> Vec<u8> {
        let mut msg = vec![0x30, u8::try_from(id.len() + 4).expect("short"), 0x02];
        msg.push(u8::try_from(id.len()).expect("short"));
        msg.extend_from_slice(id);
        msg.extend_from_slice(&[0x42, 0x00]);
        msg
    }

    #[test]
    fn message_ids_outside_1_to_max_int_are_refused() {
        // RFC 4511 §4.1.1: 0 is for unsolicited notifications; negative
        // and > 2^31−1 are no message IDs. ldap3_proto alone would read
        // −5 as 251 and 2^32+1 as 1.
        for id in [
            &[][..],                                           // no content octets
            &[0x00],                                           // 0
            &[0x00, 0x00],                                     // 0, padded
            &[0xfb],                                           // −5
            &[0xff, 0xff, 0xff, 0xff],                         // −1 in four octets
            &[0x80, 0x00, 0x00, 0x00],                         // −2^31
            &[0x00, 0x80, 0x00, 0x00, 0x00],                   // 2^31
            &[0x00, 0xff, 0xff, 0xff, 0xff],                   // 2^32−1
            &[0x01, 0x00, 0x00, 0x00, 0x01],                   // 2^32+1
            &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // 2^63−1
        ] {
            let e = codec()
                .decode_slice(&unbind_with_id(id))
                .expect_err("refused");
            assert_eq!(e.to_string(), INVALID_MESSAGE_ID, "{id:02x?}");
        }
        for (id, want) in [
            (&[0x01][..], 1),
            (&[0x00, 0xfb], 251),
            (&[0x7f, 0xff, 0xff, 0xff], i32::MAX),
            // A redundant leading zero does not change the value.
            (&[0x00, 0x00, 0x00, 0x00, 0x05], 5),
        ] {
            let (item, _) = codec()
                .decode_slice(&unbind_with_id(id))
                .expect("ok")
                .expect("item");
            assert!(
                matches!(&item, Incoming::Msg(m) if m.msgid == want),
                "{id:02x?}: {item:?}"
            );
        }
        // The check comes before recovery: an undecodable operation under
        // ID 0 is refused too, not answered under ID 0.
        let e = codec()
            .decode_slice(&[0x30, 0x05, 0x02, 0x01, 0x00, 0x5e, 0x00])
            .expect_err("refused");
        assert_eq!(e.to_string(), INVALID_MESSAGE_ID);
    }

    /// A simple bind request, message ID 3, as raw BER.
    fn simple_bind(dn: &[u8], password: &[u8]) -> Vec<u8> {
        let tlv = |tag: u8, content: &[u8]| {
            let mut v = vec![tag, u8::try_from(content.len()).expect("short")];
            v.extend_from_slice(content);
            v
        };
        let mut op = tlv(0x02, &[3]);
        op.extend(tlv(0x04, dn));
        op.extend(tlv(0x80, password));
        let mut msg = tlv(0x02, &[3]);
        msg.extend(tlv(0x60, &op));
        tlv(0x30, &msg)
    }

    #[test]
    fn a_password_that_is_not_utf8_is_an_unreadable_bind() {
        let dn = b"cn=alice,ou=users,dc=example,dc=com";
        let (item, _) = codec()
            .decode_slice(&simple_bind(dn, b"caf\xe9"))
            .expect("ok")
            .expect("item");
        let Incoming::UnreadablePassword(b) = item else {
            panic!("{item:?}");
        };
        assert_eq!((b.msgid, b.version, b.dn.as_bytes()), (3, 3, &dn[..]));
        assert!(b.ctrl.is_empty());
        // A UTF-8 password decodes as usual.
        let (item, _) = codec()
            .decode_slice(&simple_bind(dn, "café".as_bytes()))
            .expect("ok")
            .expect("item");
        assert!(matches!(item, Incoming::Msg(m) if m.msgid == 3));
        // A DN that is not UTF-8 stays a request not understood.
        let (item, _) = codec()
            .decode_slice(&simple_bind(b"cn=\xff", b"caf\xe9"))
            .expect("ok")
            .expect("item");
        assert!(matches!(
            item,
            Incoming::Undecodable {
                msgid: 3,
                op_tag: 0
            }
        ));
    }

    #[test]
    fn search_results_done_encode_as_ldap3_proto_does() {
        use ldap3_proto::proto::LdapResultCode;
        let long = "x".repeat(300);
        let codes = [
            LdapResultCode::Success,
            LdapResultCode::SizeLimitExceeded,
            LdapResultCode::NoSuchObject,
            LdapResultCode::InvalidCredentials,
            LdapResultCode::Other,
            LdapResultCode::AuthorizationError,
            LdapResultCode::EsyncRefreshRequired,
        ];
        let texts = ["", "cn=alice,ou=users,dc=example,dc=com", long.as_str()];
        for msgid in [0, 1, 127, 128, 32768, i32::MAX] {
            for code in &codes {
                for (matched, message) in texts.iter().zip(texts.iter().rev()) {
                    let done = |referral: Vec<String>| {
                        LdapMsg::new(
                            msgid,
                            LdapOp::SearchResultDone(LdapResult {
                                code: code.clone(),
                                matcheddn: matched.to_string(),
                                message: message.to_string(),
                                referral,
                            }),
                        )
                    };
                    // With a referral: ldap3_proto's path, compared too.
                    for msg in [done(Vec::new()), done(vec!["ldap://x/".into()])] {
                        let mut ours = BytesMut::new();
                        codec().encode(msg.clone(), &mut ours).expect("encode");
                        let mut theirs = BytesMut::new();
                        LdapCodec::default()
                            .encode(msg, &mut theirs)
                            .expect("encode");
                        assert_eq!(ours, theirs, "msgid {msgid} code {code:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn entries_encode_as_ldap3_proto_does() {
        use ldap3_proto::proto::LdapPartialAttribute;
        let long = "x".repeat(300);
        let many: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("cn=user{i},ou=users,dc=example,dc=com").into_bytes())
            .collect();
        let entries = [
            LdapSearchResultEntry {
                dn: String::new(),
                attributes: Vec::new(),
            },
            LdapSearchResultEntry {
                dn: "cn=alice,ou=users,dc=example,dc=com".into(),
                attributes: vec![
                    LdapPartialAttribute {
                        atype: "uid".into(),
                        vals: vec![b"alice".to_vec()],
                    },
                    LdapPartialAttribute {
                        atype: "mail".into(),
                        vals: Vec::new(),
                    },
                    LdapPartialAttribute {
                        atype: "description".into(),
                        vals: vec![long.clone().into_bytes(), Vec::new()],
                    },
                ],
            },
            LdapSearchResultEntry {
                dn: format!("cn={long},ou=groups,dc=example,dc=com"),
                attributes: vec![LdapPartialAttribute {
                    atype: "member".into(),
                    vals: many,
                }],
            },
        ];
        for msgid in [0, 1, 127, 128, 255, 256, 32767, 32768, 8_388_608, i32::MAX] {
            for entry in &entries {
                let msg = LdapMsg::new(msgid, LdapOp::SearchResultEntry(entry.clone()));
                let mut ours = BytesMut::new();
                codec().encode(msg.clone(), &mut ours).expect("encode");
                let mut theirs = BytesMut::new();
                LdapCodec::default()
                    .encode(msg.clone(), &mut theirs)
                    .expect("encode");
                assert_eq!(ours, theirs, "msgid {msgid}");
                // Encoded once, sent under any message ID: the same bytes.
                let mut pre = BytesMut::new();
                codec()
                    .encode(
                        Outgoing::Entry {
                            msgid,
                            op: entry_op(entry),
                        },
                        &mut pre,
                    )
                    .expect("encode");
                assert_eq!(pre, theirs, "pre-encoded, msgid {msgid}");
                // And it reads back as the same message, except under
                // ID 0, which only the server may use (RFC 4511 §4.1.1).
                if msgid == 0 {
                    let e = codec().decode_slice(&ours).expect_err("ID 0");
                    assert_eq!(e.to_string(), INVALID_MESSAGE_ID);
                    continue;
                }
                let (back, used) = codec().decode_slice(&ours).expect("ok").expect("item");
                assert_eq!(used, ours.len());
                assert!(matches!(back, Incoming::Msg(m) if m == msg));
            }
        }
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
