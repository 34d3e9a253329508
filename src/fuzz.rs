//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the corpus
//! replay test: bytes in, bounded work, never a panic. The server does not
//! use them; they build their own in-memory fixture (`Store::temporary()`).

use std::cell::RefCell;
use std::net::SocketAddr;

use bytes::BytesMut;
use ldap3_proto::proto::{LdapFilter, LdapMsg};
use tokio_util::codec::Encoder;

use crate::auth::password::Hasher;
use crate::auth::Authenticator;
use crate::directory::filter::NoChain;
use crate::directory::{Directory, Dn, Entry, Filter, Identity, Scope, SearchQuery};
use crate::ldap::codec::{Codec, Incoming};
use crate::ldap::conn::{protocol_error_response, Answer};
use crate::ldap::handler::{Handler, Limits};
use crate::store::{Member, NewUser, Store};

/// Requests handled per input at most.
const MAX_MESSAGES: usize = 64;
/// Longest filter string, and deepest parenthesis nesting, given to the
/// filter parser.
const MAX_FILTER_LEN: usize = 4096;
const MAX_FILTER_DEPTH: usize = 32;

struct Fixture {
    rt: tokio::runtime::Runtime,
    handler: Handler,
    entries: Vec<Entry>,
}

fn build() -> Option<Fixture> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let store = Store::temporary().ok()?;
    let hasher = Hasher::for_tests();
    let admins = store.create_group("admins", None).ok()?;
    store.create_group("ldap-search", None).ok()?;
    for (name, admin) in [("alice", false), ("root", true)] {
        let u = store
            .create_user(NewUser {
                username: name.into(),
                full_name: Some(format!("{name} example")),
                email: Some(format!("{name}@example.com")),
            })
            .ok()?;
        let phc = hasher.hash_blocking(&format!("{name}-pw")).ok()?;
        store.set_password_hash(u.id, &phc).ok()?;
        if admin {
            store.add_member(admins.id, Member::User(u.id)).ok()?;
        }
    }
    let base = Dn::parse("dc=example,dc=com").ok()?;
    let directory = Directory::new(store.clone(), base.clone(), "admins", "ldap-search");
    let root = store.user_by_name("root").ok()??;
    let entries = directory
        .search(
            &Identity::User {
                id: root.id,
                username: root.username,
            },
            &SearchQuery {
                base: base.into(),
                scope: Scope::Sub,
                filter: Filter::from_ldap(&LdapFilter::Present("objectClass".into())).into(),
                deadline: None,
            },
        )
        .ok()?
        .entries;
    let handler = Handler::new(
        directory,
        Authenticator::new(store, hasher),
        Limits {
            size_limit: 100,
            time_limit: None,
        },
    );
    Some(Fixture {
        rt,
        handler,
        entries,
    })
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = RefCell::new(build());
}

/// Decodes requests from `data` as the connection would (same codec and
/// limits as the defaults), runs each through the handler on one session,
/// and returns the encoded responses. Stops at the first framing error,
/// like the connection does.
pub fn messages(data: &[u8]) -> Vec<u8> {
    FIXTURE.with(|f| {
        let fixture = f.borrow();
        let Some(fx) = fixture.as_ref() else {
            return Vec::new();
        };
        let mut codec = Codec::new(256 * 1024, 32);
        let mut session = fx.handler.session(SocketAddr::from(([127, 0, 0, 1], 1)));
        let mut rest = data;
        let mut out = BytesMut::new();
        for _ in 0..MAX_MESSAGES {
            let (item, used) = match codec.decode_slice(rest) {
                Ok(Some(pair)) => pair,
                Ok(None) | Err(_) => break,
            };
            rest = rest.get(used..).unwrap_or(&[]);
            let msg: LdapMsg = match item {
                Incoming::Msg(m) => m,
                Incoming::UnreadablePassword(req) => {
                    let outcome = fx
                        .rt
                        .block_on(fx.handler.unreadable_bind(&mut session, req));
                    for response in outcome.responses {
                        if codec.encode(response, &mut out).is_err() {
                            return Vec::new();
                        }
                    }
                    continue;
                }
                Incoming::Undecodable { msgid, op_tag } => {
                    match protocol_error_response(msgid, op_tag) {
                        Answer::Respond(response) => {
                            if codec.encode(*response, &mut out).is_err() {
                                return Vec::new();
                            }
                            continue;
                        }
                        Answer::Ignore => continue,
                        Answer::Close => break,
                    }
                }
            };
            let outcome = fx.rt.block_on(fx.handler.handle(&mut session, msg));
            for response in outcome.responses {
                if codec.encode(response, &mut out).is_err() {
                    return Vec::new();
                }
            }
        }
        out.to_vec()
    })
}

/// Parses `data` as an RFC 4515 filter string (bounded in length and
/// nesting, as BER depth bounds filters from the network), converts it
/// and evaluates it against every fixture entry. Returns the matches.
pub fn filter(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else {
        return 0;
    };
    if text.len() > MAX_FILTER_LEN || paren_depth(text) > MAX_FILTER_DEPTH {
        return 0;
    }
    let Ok(parsed) = ldap3_proto::parse_ldap_filter_str(text) else {
        return 0;
    };
    let filter = Filter::from_ldap(&parsed);
    FIXTURE.with(|f| {
        let fixture = f.borrow();
        let Some(fx) = fixture.as_ref() else {
            return 0;
        };
        fx.entries
            .iter()
            .filter(|e| filter.matches(e, &NoChain))
            .count()
    })
}

fn paren_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in text.bytes() {
        match c {
            b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses `data` as a DN; a DN that parses must print to a string that
/// parses to the same normalized DN. `Err` describes a violation.
pub fn dn(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(dn) = Dn::parse(text) else {
        return Ok(());
    };
    let printed = dn.to_string();
    match Dn::parse(&printed) {
        Ok(again) if again.normalized_str() == dn.normalized_str() => Ok(()),
        Ok(again) => Err(format!(
            "{text:?} printed as {printed:?} normalizes to {:?}, not {:?}",
            again.normalized_str(),
            dn.normalized_str()
        )),
        Err(e) => Err(format!(
            "{text:?} printed as {printed:?} does not parse: {e}"
        )),
    }
}

/// Largest LDIF input given to the reader and planner.
const MAX_LDIF_LEN: usize = 256 * 1024;

/// Reads `data` as an LDIF file, plans its import (the dry run: entries
/// mapped to users and groups, members resolved, cycles found) and renders
/// the report, as `portcullis import --dry-run` does. Every entry read must
/// also survive the writer: written out and read back, it is the same
/// entry. Returns the number of entries read; `Err` describes a violation.
pub fn ldif(data: &[u8]) -> Result<usize, String> {
    use crate::ldif::{read_all, Writer};
    use crate::migrate::import::{plan_ldif, ImportOptions};

    if data.len() > MAX_LDIF_LEN {
        return Ok(0);
    }
    let Ok(file) = read_all(data) else {
        return Ok(0);
    };
    let plan = plan_ldif(
        &file,
        &ImportOptions {
            keep_attributes: vec!["employeeType".into()],
        },
    );
    let _ = plan.report();
    let _ = plan.to_json();

    let mut writer = Writer::new(Vec::new()).map_err(|e| e.to_string())?;
    for entry in &file.entries {
        writer.entry(entry).map_err(|e| e.to_string())?;
    }
    let written = writer.into_inner();
    let again = read_all(written.as_slice()).map_err(|e| {
        format!(
            "written LDIF does not read back: {e}\n{}",
            String::from_utf8_lossy(&written)
        )
    })?;
    // Line numbers differ (the writer folds differently); nothing else may.
    let strip = |entries: &[crate::ldif::LdifEntry]| {
        let mut entries = entries.to_vec();
        for e in &mut entries {
            e.line = 0;
            for a in &mut e.attrs {
                a.line = 0;
            }
        }
        entries
    };
    if strip(&file.entries) != strip(&again.entries) {
        return Err(format!(
            "entries changed by writing and reading back:\n{:?}\n{:?}",
            file.entries, again.entries
        ));
    }
    Ok(file.entries.len())
}
