//! Criterion benchmarks of the directory's hot paths: filter evaluation,
//! entry building, BER encoding of a search result entry, decoding of
//! the search requests applications send, parsing of the DNs they name
//! and conversion of their filters.
//!
//! Run: `cargo bench --bench directory`.

use portcullis::domain::attrs::Attrs;

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ldap3_proto::proto::{
    LdapDerefAliases, LdapFilter, LdapMsg, LdapOp, LdapPartialAttribute, LdapSearchRequest,
    LdapSearchResultEntry, LdapSearchScope,
};
use ldap3_proto::{parse_ldap_filter_str, LdapCodec};
use tokio_util::codec::Encoder;
use uuid::Uuid;

use portcullis::directory::entry::{group_entry_named, user_entry, user_entry_for, Wanted};
use portcullis::directory::filter::NoChain;
use portcullis::directory::{Dn, Filter};
use portcullis::ldap::codec::Codec;
use portcullis::store::{Group, GroupId, User, UserId};

fn user(i: u32) -> User {
    User {
        id: UserId(Uuid::new_v4()),
        username: format!("user{i:05}"),
        full_name: Some(format!("User {i} Tester")),
        email: Some(format!("user{i:05}@example.com")),
        uid_number: 2000 + i,
        gid_number: 2000 + i,
        disabled: false,
        attrs: Attrs::new(),
        created: 1_700_000_000,
        modified: 1_700_000_000,
        pwd_changed: Some(1_700_000_000),
        cred_generation: 1,
    }
}

fn group(name: &str, gid: u32) -> Group {
    Group {
        id: GroupId(Uuid::new_v4()),
        name: name.into(),
        gid_number: gid,
        description: None,
        created: 1_700_000_000,
        modified: 1_700_000_000,
    }
}

fn benches(c: &mut Criterion) {
    let base = Dn::parse("dc=example,dc=com").expect("base");
    let groups = vec![group("staff", 4002), group("dev", 4003)];
    let entries: Vec<_> = (0..1000)
        .map(|i| user_entry(&base, &user(i), &groups, false))
        .collect();

    let filters = [
        ("equality_uid", "(uid=user00500)"),
        (
            "and_objectclass_memberof",
            "(&(objectClass=posixAccount)(memberOf=\"cn=dev,ou=groups,dc=example,dc=com\"))",
        ),
        ("substring_mail", "(mail=*500@example.com)"),
        ("integer_ge", "(uidNumber>=2500)"),
    ];
    for (name, text) in filters {
        let ldap = parse_ldap_filter_str(text).expect("filter");
        let filter = Filter::from_ldap(&ldap);
        c.bench_function(&format!("filter_1000_entries/{name}"), |b| {
            b.iter(|| {
                entries
                    .iter()
                    .filter(|e| filter.matches(black_box(e), &NoChain))
                    .count()
            })
        });
    }

    let u = user(42);
    c.bench_function("user_entry_build", |b| {
        b.iter(|| user_entry(black_box(&base), black_box(&u), &groups, false))
    });

    // What search-uid asks for: only those attributes (and uid, which its
    // filter reads) are built.
    let mut wanted = Wanted::selected(&["cn".into(), "mail".into(), "uidNumber".into()]);
    wanted.add(portcullis::directory::schema::attribute("uid").expect("uid"));
    c.bench_function("user_entry_build_selected", |b| {
        b.iter(|| user_entry_for(black_box(&base), black_box(&u), &groups, false, &wanted))
    });

    // The 500-member group of the load generator's dataset.
    let names: Vec<String> = (1..=500).map(|i| format!("user{i:05}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let big = group("group001", 4100);
    c.bench_function("group_entry_build_500_members", |b| {
        b.iter(|| group_entry_named(black_box(&base), black_box(&big), &names, &[], &[]))
    });
    let big_entry = group_entry_named(&base, &big, &names, &[], &[]);
    let member_attr = vec!["member".to_string()];
    c.bench_function("select_and_encode_500_members", |b| {
        let mut codec = LdapCodec::default();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            let selected = big_entry.clone().into_selected(&member_attr, false);
            encode_entry(&mut codec, &mut buf, big_entry.dn.to_string(), selected)
        })
    });

    // Requests as the matrix rows send them (docs/clients/applications.md).
    let requests = [
        (
            "grafana_login",
            "dc=example,dc=com",
            "(cn=user00042)",
            &["cn", "givenName", "sn", "mail"][..],
        ),
        (
            "sssd_user_uid",
            "ou=users,dc=example,dc=com",
            "(&(uid=user00042)(objectclass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))",
            &[
                "objectClass",
                "uid",
                "userPassword",
                "uidNumber",
                "gidNumber",
                "displayName",
                "homeDirectory",
                "loginShell",
                "modifyTimestamp",
                "entryUUID",
            ][..],
        ),
    ];
    for (name, base, filter, attrs) in requests {
        let bytes = search_request(base, filter, attrs);
        c.bench_function(&format!("decode_search_request/{name}"), |b| {
            let mut codec = Codec::new(256 * 1024, 32);
            b.iter(|| {
                let (msg, used) = codec
                    .decode_slice(black_box(&bytes))
                    .expect("decode")
                    .expect("whole");
                black_box((msg, used))
            })
        });
    }

    // Base DNs and filter values applications send: a user's own DN (a
    // base-scope read), the base, a group DN in a memberOf filter.
    let dns = [
        ("user", "uid=user00123,ou=users,dc=example,dc=com"),
        ("base", "dc=example,dc=com"),
        (
            "spaced_upper",
            "CN=Group 001, OU=Groups, DC=Example, DC=Com",
        ),
    ];
    for (name, text) in dns {
        c.bench_function(&format!("dn_parse/{name}"), |b| {
            b.iter(|| Dn::parse(black_box(text)).expect("dn"))
        });
    }
    let group = "cn=group001,ou=groups,dc=example,dc=com";
    let converted = [
        (
            "member_of",
            LdapFilter::Equality("memberOf".into(), group.into()),
        ),
        (
            "cn",
            parse_ldap_filter_str("(cn=user00123)").expect("filter"),
        ),
        (
            "nss_user",
            parse_ldap_filter_str("(&(objectClass=posixAccount)(uid=user00123))").expect("filter"),
        ),
    ];
    for (name, ldap) in converted {
        c.bench_function(&format!("filter_convert/{name}"), |b| {
            b.iter(|| Filter::from_ldap(black_box(&ldap)))
        });
    }

    let attrs: Vec<String> = Vec::new();
    let entry = &entries[42];
    c.bench_function("select_and_encode_entry", |b| {
        let mut codec = LdapCodec::default();
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            let selected = entry.select(&attrs, false);
            encode_entry(&mut codec, &mut buf, entry.dn.to_string(), selected)
        })
    });
}

/// The bytes of a search request as a client sends it.
fn search_request(base: &str, filter: &str, attrs: &[&str]) -> Vec<u8> {
    let msg = LdapMsg::new(
        7,
        LdapOp::SearchRequest(LdapSearchRequest {
            base: base.into(),
            scope: LdapSearchScope::Subtree,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter: parse_ldap_filter_str(filter).expect("filter"),
            attrs: attrs.iter().map(|a| a.to_string()).collect(),
        }),
    );
    let mut buf = BytesMut::new();
    LdapCodec::default().encode(msg, &mut buf).expect("encode");
    buf.to_vec()
}

/// Encodes selected attributes as one SearchResultEntry message, as the
/// server answers a search; returns the encoded length.
fn encode_entry(
    codec: &mut LdapCodec,
    buf: &mut BytesMut,
    dn: String,
    selected: Vec<(String, Vec<String>)>,
) -> usize {
    let attributes = selected
        .into_iter()
        .map(|(atype, vals)| LdapPartialAttribute {
            atype,
            vals: vals.into_iter().map(String::into_bytes).collect(),
        })
        .collect();
    let msg = LdapMsg::new(
        2,
        LdapOp::SearchResultEntry(LdapSearchResultEntry { dn, attributes }),
    );
    buf.clear();
    codec.encode(msg, buf).expect("encode");
    black_box(buf.len())
}

criterion_group!(directory, benches);
criterion_main!(directory);
