use bytes::BytesMut;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{LdapMatchingRuleAssertion, LdapSubstringFilter};
use ldap3_proto::LdapCodec;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::codec::{Decoder, Encoder};

use super::super::{element_len, Codec, Incoming};
use super::*;

/// What ldap3_proto makes of `bytes` (one whole message) through the
/// general path: the message, or `None` when it is anything else (an
/// error, an undecodable request).
fn general(bytes: &[u8], max_depth: usize) -> Option<LdapMsg> {
    let total = element_len(bytes).ok()??;
    if total != bytes.len() {
        return None;
    }
    let mut buf = BytesMut::from(bytes);
    match Codec::new(1 << 20, max_depth).decode_parsed(&mut buf, total) {
        Ok(Some(Incoming::Msg(msg))) => Some(msg),
        _ => None,
    }
}

fn encoded(msg: LdapMsg) -> Vec<u8> {
    let mut buf = BytesMut::new();
    LdapCodec::default().encode(msg, &mut buf).expect("encode");
    buf.to_vec()
}

fn search(msgid: i32, base: &str, filter: LdapFilter, attrs: &[&str]) -> LdapMsg {
    LdapMsg {
        msgid,
        op: LdapOp::SearchRequest(LdapSearchRequest {
            base: base.into(),
            scope: LdapSearchScope::Subtree,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter,
            attrs: attrs.iter().map(|a| a.to_string()).collect(),
        }),
        ctrl: Vec::new(),
    }
}

fn eq(a: &str, v: &str) -> LdapFilter {
    LdapFilter::Equality(a.into(), v.into())
}

/// Short strings, sometimes empty, sometimes with multi-byte characters
/// or long enough for a two-byte BER length.
fn text(rng: &mut StdRng) -> String {
    let len = match rng.gen_range(0..10) {
        0 => 0,
        1 => rng.gen_range(120..300),
        _ => rng.gen_range(1..24),
    };
    (0..len)
        .map(|_| match rng.gen_range(0..20) {
            0 => 'é',
            1 => '=',
            2 => ',',
            _ => char::from(rng.gen_range(b'a'..=b'z')),
        })
        .collect()
}

fn random_filter(rng: &mut StdRng, depth: usize) -> LdapFilter {
    let leaf = depth == 0 || rng.gen_bool(0.4);
    let kind = if leaf {
        rng.gen_range(3..10)
    } else {
        rng.gen_range(0..3)
    };
    let list = |rng: &mut StdRng| {
        (0..rng.gen_range(0..4))
            .map(|_| random_filter(rng, depth.saturating_sub(1)))
            .collect()
    };
    match kind {
        0 => LdapFilter::And(list(rng)),
        1 => LdapFilter::Or(list(rng)),
        2 => LdapFilter::Not(Box::new(random_filter(rng, depth.saturating_sub(1)))),
        3 | 4 => LdapFilter::Equality(text(rng), text(rng)),
        5 => LdapFilter::GreaterOrEqual(text(rng), text(rng)),
        6 => LdapFilter::LessOrEqual(text(rng), text(rng)),
        7 => LdapFilter::Approx(text(rng), text(rng)),
        8 => LdapFilter::Present(text(rng)),
        // Left to the general path.
        _ if rng.gen_bool(0.5) => LdapFilter::Substring(
            text(rng),
            LdapSubstringFilter {
                initial: Some(text(rng)),
                any: vec![text(rng)],
                final_: None,
            },
        ),
        _ => LdapFilter::Extensible(LdapMatchingRuleAssertion {
            matching_rule: Some("2.5.13.2".into()),
            type_: Some(text(rng)),
            match_value: text(rng),
            dn_attributes: false,
        }),
    }
}

fn random_search(rng: &mut StdRng) -> LdapMsg {
    let scope = match rng.gen_range(0..4) {
        0 => LdapSearchScope::Base,
        1 => LdapSearchScope::OneLevel,
        2 => LdapSearchScope::Subtree,
        _ => LdapSearchScope::Children,
    };
    let aliases = match rng.gen_range(0..4) {
        0 => LdapDerefAliases::Never,
        1 => LdapDerefAliases::InSearching,
        2 => LdapDerefAliases::FindingBaseObj,
        _ => LdapDerefAliases::Always,
    };
    let limit = |rng: &mut StdRng| match rng.gen_range(0..4) {
        0 => 0,
        1 => rng.gen_range(1..1000),
        2 => rng.gen(),
        _ => -rng.gen_range(1..100_000),
    };
    let ctrl = if rng.gen_bool(0.1) {
        vec![LdapControl::SimplePagedResults {
            size: 100,
            cookie: Vec::new(),
        }]
    } else {
        Vec::new()
    };
    LdapMsg {
        msgid: rng.gen_range(1..=i32::MAX),
        op: LdapOp::SearchRequest(LdapSearchRequest {
            base: text(rng),
            scope,
            aliases,
            sizelimit: limit(rng),
            timelimit: limit(rng),
            typesonly: rng.gen_bool(0.2),
            filter: random_filter(rng, 4),
            attrs: (0..rng.gen_range(0..6)).map(|_| text(rng)).collect(),
        }),
        ctrl,
    }
}

/// Whether `f` holds only filters the direct decoder takes.
fn direct_filter(f: &LdapFilter) -> bool {
    match f {
        LdapFilter::And(l) | LdapFilter::Or(l) => l.iter().all(direct_filter),
        LdapFilter::Not(f) => direct_filter(f),
        LdapFilter::Substring(..) | LdapFilter::Extensible(_) => false,
        _ => true,
    }
}

/// Changes `bytes` at random: a byte replaced, flipped, dropped or
/// added (the outer header then no longer matches, which is also tried).
fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    let i = rng.gen_range(0..bytes.len());
    match rng.gen_range(0..4) {
        0 => bytes[i] = rng.gen(),
        1 => bytes[i] ^= 1 << rng.gen_range(0..8),
        2 => {
            bytes.remove(i);
        }
        _ => bytes.insert(i, rng.gen()),
    }
}

/// The decoder's rule: whatever it takes, ldap3_proto decodes to the same
/// message. Checked on generated requests of every filter kind, with and
/// without controls, and on each mutated a few ways.
#[test]
fn what_the_direct_decoder_takes_ldap3_proto_decodes_the_same() {
    let mut rng = StdRng::seed_from_u64(0x5eed_cafe);
    let (mut direct, mut expected_direct, mut mutated_direct) = (0, 0, 0);
    for _ in 0..3000 {
        let msg = random_search(&mut rng);
        let takes = msg.ctrl.is_empty()
            && matches!(&msg.op, LdapOp::SearchRequest(r) if direct_filter(&r.filter));
        let bytes = encoded(msg);
        let ours = decode(&bytes, 32);
        if let Some(m) = &ours {
            assert_eq!(general(&bytes, 32).as_ref(), Some(m), "{bytes:02x?}");
            direct += 1;
        }
        if takes {
            expected_direct += 1;
            assert!(ours.is_some(), "a plain search left to the general path");
        } else {
            assert!(ours.is_none(), "controls or a substring filter taken");
        }
        for _ in 0..8 {
            let mut bad = bytes.clone();
            for _ in 0..rng.gen_range(1..3) {
                mutate(&mut rng, &mut bad);
            }
            if let Some(m) = decode(&bad, 32) {
                assert_eq!(general(&bad, 32).as_ref(), Some(&m), "{bad:02x?}");
                mutated_direct += 1;
            }
        }
    }
    assert_eq!(direct, expected_direct);
    assert!(direct > 1000, "only {direct} of 3000 taken");
    // Some mutations keep a valid request (another letter in a value):
    // those went through the comparison above.
    assert!(mutated_direct > 100, "only {mutated_direct} mutated taken");
}

/// A limit is refused by the parser in the same place on both paths: a
/// request is taken at a depth limit only where ldap3_proto takes it.
#[test]
fn the_depth_limit_is_the_parsers() {
    let deep = (0..6).fold(eq("uid", "alice"), |f, _| LdapFilter::And(vec![f]));
    let bytes = encoded(search(7, "dc=example,dc=com", deep, &["cn"]));
    let mut taken = 0;
    for max in 4..14 {
        let ours = decode(&bytes, max);
        assert_eq!(ours.is_some(), general(&bytes, max).is_some(), "max {max}");
        if let Some(m) = ours {
            assert_eq!(general(&bytes, max), Some(m));
            taken += 1;
        }
    }
    assert!(taken > 0 && taken < 10, "taken at {taken} of 10 limits");
}

#[test]
fn a_lookup_by_uid_is_decoded_whole() {
    let msg = search(
        3,
        "ou=users,dc=example,dc=com",
        LdapFilter::And(vec![
            eq("objectClass", "posixAccount"),
            eq("uid", "user00042"),
            LdapFilter::Present("uidNumber".into()),
            LdapFilter::Not(Box::new(eq("uidNumber", "0"))),
        ]),
        &["uid", "cn", "memberOf"],
    );
    assert_eq!(decode(&encoded(msg.clone()), 32), Some(msg));
}

/// Message IDs outside 1..2^31−1 are the general path's to refuse, as a
/// protocol error that ends the connection.
#[test]
fn message_ids_out_of_range_are_left_to_the_general_path() {
    let bytes = encoded(search(5, "", eq("uid", "a"), &[]));
    // SEQUENCE header (2 bytes), INTEGER tag, length 1, the ID.
    assert_eq!(&bytes[2..5], &[0x02, 0x01, 0x05]);
    for id in [0x00, 0x80, 0xff] {
        let mut b = bytes.clone();
        b[4] = id;
        assert!(decode(&b, 32).is_none(), "ID byte {id:#x}");
        let mut buf = BytesMut::from(&b[..]);
        assert!(Codec::new(1 << 20, 32).decode(&mut buf).is_err());
    }
}

#[test]
fn strings_that_are_not_utf8_are_left_to_the_general_path() {
    let bytes = encoded(search(9, "cn=x", eq("uid", "é"), &["cn"]));
    let at = bytes
        .windows(2)
        .position(|w| w == "é".as_bytes())
        .expect("é");
    let mut bad = bytes.clone();
    bad[at] = 0xff;
    assert!(decode(&bad, 32).is_none());
    assert!(general(&bad, 32).is_none());
}
