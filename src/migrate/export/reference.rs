//! The export's LDIF as it was written before it was streamed: from one
//! whole [`Snapshot`] in memory. Kept for tests only, as the reference
//! the streamed export must equal byte for byte.

use super::{is_keystring, to_ldif, ExportError};
use crate::directory::dn::Dn;
use crate::directory::entry;
use crate::directory::schema;
use crate::ldif::Writer;
use crate::store::{Group, Member, Snapshot};
use std::collections::HashMap;
use std::io::Write;

pub fn ldif_of(
    mut snap: Snapshot,
    base: &Dn,
    admin_group: &str,
    with_secrets: bool,
    out: &mut impl Write,
) -> Result<usize, ExportError> {
    snap.sort_canonically();
    let mut w = Writer::new(out)?;
    w.comment(&format!(
        "portcullis export of {base}{}",
        if with_secrets {
            " (with password hashes)"
        } else {
            ""
        }
    ))?;
    let mut count = 0;
    for e in [
        entry::base_entry(base),
        entry::users_ou_entry(base),
        entry::groups_ou_entry(base),
    ] {
        w.entry(&to_ldif(e, &super::exported()))?;
        count += 1;
    }
    let by_id: HashMap<_, _> = snap
        .groups
        .iter()
        .map(|g| (g.group.id, g.group.clone()))
        .collect();
    let users_by_id: HashMap<_, _> = snap
        .users
        .iter()
        .map(|u| (u.user.id, u.user.clone()))
        .collect();
    let parents = snap.parents();
    let parents_of = |m: Member| -> Vec<Group> {
        parents
            .get(&m)
            .into_iter()
            .flatten()
            .filter_map(|g| by_id.get(g).cloned())
            .collect()
    };
    let admins = snap.transitive_user_members(admin_group);
    for su in &snap.users {
        let u = &su.user;
        let direct = parents_of(Member::User(u.id));
        let e = entry::user_entry(base, u, &direct, admins.contains(&u.id));
        let mut le = to_ldif(e, &super::exported());
        for (k, v) in &u.attrs {
            // Kept attributes the schema does not know (import's
            // keep_attributes). The portal's settings (`portcullis/locale`,
            // `goauthentik.io/user/…`) are no attribute names, so no LDIF
            // reader would take them: only the JSON backup carries those.
            if schema::attribute(k).is_none() && is_keystring(k) && !v.trim().is_empty() {
                le.push(k, v);
            }
        }
        if with_secrets {
            if let Some(hash) = &su.password_hash {
                let value = if hash.starts_with("$argon2") {
                    format!("{{ARGON2}}{hash}")
                } else {
                    hash.clone()
                };
                le.push("userPassword", value);
            }
        }
        w.entry(&le)?;
        count += 1;
    }
    for sg in &snap.groups {
        let g = &sg.group;
        let mut member_users = Vec::new();
        let mut children = Vec::new();
        for m in &sg.members {
            match m {
                Member::User(id) => member_users.extend(users_by_id.get(id).cloned()),
                Member::Group(id) => children.extend(by_id.get(id).cloned()),
            }
        }
        let parents = parents_of(Member::Group(g.id));
        let e = entry::group_entry(base, g, &member_users, &children, &parents);
        w.entry(&to_ldif(e, &super::exported()))?;
        count += 1;
    }
    Ok(count)
}
