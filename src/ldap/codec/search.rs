//! A direct decoder for the request most clients send most: a search
//! request without controls.
//!
//! The general path parses the whole message into a tree of BER tags (a
//! vector per constructed element, a copy of every primitive) and then
//! converts the tree into an [`LdapMsg`]; on a lookup by uid that was a
//! tenth of the server's CPU per request. Here the message is read in
//! place and only the strings the request keeps are copied.
//!
//! The decoder accepts a narrow, canonical subset and answers `None` for
//! everything else, which then takes the general path: a message with
//! controls; an element with a multi-byte tag, an indefinite or a
//! more-than-four-byte length, or one running past its parent; a field
//! missing, repeated or of another type; a filter other than and, or,
//! not, equality, ordering, approximate or presence; a string that is not
//! UTF-8; nesting the general parser would refuse. What it accepts it
//! decodes into the same [`LdapMsg`] as ldap3_proto does (its tests
//! compare the two on generated and mutated requests), so the handler
//! cannot tell which path a request took.

use ldap3_proto::proto::{
    LdapDerefAliases, LdapFilter, LdapMsg, LdapOp, LdapSearchRequest, LdapSearchScope,
};

/// Filter nesting decoded here at most (ldap3_proto refuses beyond 127;
/// deeper filters take the general path, which decides).
const MAX_FILTER_DEPTH: usize = 32;

const INTEGER: u8 = 0x02;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const SEQUENCE: u8 = 0x30;
/// `[APPLICATION 3]` constructed: SearchRequest.
const SEARCH_REQUEST: u8 = 0x63;

/// The search request without controls in `message` (one whole
/// LDAPMessage, its message ID already checked), or `None` when it is
/// anything else. `max_depth` is the BER parser's limit: an element it
/// would refuse is left to it.
pub(super) fn decode(message: &[u8], max_depth: usize) -> Option<LdapMsg> {
    let mut rest = message;
    let outer = next(&mut rest, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let d = Depth { max: max_depth };
    // Levels as the BER parser counts them: the message is 1, its
    // fields 2, the request's fields 3, a filter's operands one more
    // than the filter.
    d.check(3)?;
    let mut fields = outer;
    let msgid = message_id(next(&mut fields, INTEGER)?)?;
    let mut req = next(&mut fields, SEARCH_REQUEST)?;
    if !fields.is_empty() {
        return None;
    }
    let base = utf8(next(&mut req, OCTET_STRING)?)?;
    let scope = match raw_integer(next(&mut req, ENUMERATED)?)? {
        0 => LdapSearchScope::Base,
        1 => LdapSearchScope::OneLevel,
        2 => LdapSearchScope::Subtree,
        3 => LdapSearchScope::Children,
        _ => return None,
    };
    let aliases = match raw_integer(next(&mut req, ENUMERATED)?)? {
        0 => LdapDerefAliases::Never,
        1 => LdapDerefAliases::InSearching,
        2 => LdapDerefAliases::FindingBaseObj,
        3 => LdapDerefAliases::Always,
        _ => return None,
    };
    let sizelimit = limit(next(&mut req, INTEGER)?)?;
    let timelimit = limit(next(&mut req, INTEGER)?)?;
    let typesonly = *next(&mut req, BOOLEAN)?.first()? != 0;
    let (tag, content) = any(&mut req)?;
    let filter = filter(tag, content, 3, 1, d)?;
    let mut list = next(&mut req, SEQUENCE)?;
    if !req.is_empty() {
        return None;
    }
    let mut attrs = Vec::new();
    if !list.is_empty() {
        d.check(4)?;
    }
    while !list.is_empty() {
        attrs.push(utf8(next(&mut list, OCTET_STRING)?)?);
    }
    Some(LdapMsg {
        msgid,
        op: LdapOp::SearchRequest(LdapSearchRequest {
            base,
            scope,
            aliases,
            sizelimit,
            timelimit,
            typesonly,
            filter,
            attrs,
        }),
        ctrl: Vec::new(),
    })
}

/// The BER parser's depth limit: it refuses an element at level `l`
/// (the outermost being 1) unless `l < max`.
#[derive(Clone, Copy)]
struct Depth {
    max: usize,
}

impl Depth {
    fn check(self, level: usize) -> Option<()> {
        (level < self.max).then_some(())
    }
}

/// The filter element of `tag` with `content` at BER level `level`,
/// `nesting` filters deep.
fn filter(tag: u8, content: &[u8], level: usize, nesting: usize, d: Depth) -> Option<LdapFilter> {
    if nesting > MAX_FILTER_DEPTH {
        return None;
    }
    match tag {
        // and, or: SET OF Filter.
        0xa0 | 0xa1 => {
            let mut items = content;
            let mut list = Vec::new();
            if !items.is_empty() {
                d.check(level + 1)?;
            }
            while !items.is_empty() {
                let (t, c) = any(&mut items)?;
                list.push(filter(t, c, level + 1, nesting + 1, d)?);
            }
            Some(if tag == 0xa0 {
                LdapFilter::And(list)
            } else {
                LdapFilter::Or(list)
            })
        }
        // not: one Filter.
        0xa2 => {
            let mut items = content;
            d.check(level + 1)?;
            let (t, c) = any(&mut items)?;
            if !items.is_empty() {
                return None;
            }
            Some(LdapFilter::Not(Box::new(filter(
                t,
                c,
                level + 1,
                nesting + 1,
                d,
            )?)))
        }
        // equalityMatch, greaterOrEqual, lessOrEqual, approxMatch:
        // AttributeValueAssertion.
        0xa3 | 0xa5 | 0xa6 | 0xa8 => {
            let mut items = content;
            d.check(level + 1)?;
            let attr = utf8(next(&mut items, OCTET_STRING)?)?;
            let value = utf8(next(&mut items, OCTET_STRING)?)?;
            if !items.is_empty() {
                return None;
            }
            Some(match tag {
                0xa3 => LdapFilter::Equality(attr, value),
                0xa5 => LdapFilter::GreaterOrEqual(attr, value),
                0xa6 => LdapFilter::LessOrEqual(attr, value),
                _ => LdapFilter::Approx(attr, value),
            })
        }
        // present: AttributeDescription, primitive.
        0x87 => Some(LdapFilter::Present(utf8(content)?)),
        _ => None,
    }
}

/// The next element of `buf`, which must have tag byte `tag`: its
/// content.
fn next<'a>(buf: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    match any(buf)? {
        (t, content) if t == tag => Some(content),
        _ => None,
    }
}

/// The next element of `buf`: its tag byte and content. `None` for a
/// multi-byte tag, an indefinite or more-than-four-byte length, or an
/// element longer than what is left.
fn any<'a>(buf: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let (&tag, rest) = buf.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    *buf = rest;
    Some((tag, content))
}

fn utf8(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

/// An INTEGER's content as ldap3_proto reads it: big-endian, zero- (not
/// sign-) extended to 64 bits; `None` beyond 8 bytes.
fn raw_integer(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) as i64)
}

/// A request's message ID: non-negative and in 1..=2^31−1 (what
/// `check_message_id` lets through; anything else is left to it).
fn message_id(bytes: &[u8]) -> Option<i32> {
    if bytes.first()? & 0x80 != 0 {
        return None;
    }
    i32::try_from(raw_integer(bytes)?).ok().filter(|&id| id > 0)
}

/// A size or time limit: ldap3_proto truncates the value to 32 bits.
fn limit(bytes: &[u8]) -> Option<i32> {
    Some(raw_integer(bytes)? as i32)
}

#[cfg(test)]
mod tests;
