//! Export: LDIF of the served tree, and the JSON backup.
//!
//! [`ldif`] writes what a `slapcat` of the served tree would hold: the
//! base, the two OUs, every user and group as the LDAP layer serves them
//! (same functions of [`crate::directory::entry`]), with the operational
//! attributes a directory stores (`entryUUID`, `createTimestamp`,
//! `modifyTimestamp`, `pwdChangedTime`, `structuralObjectClass`) and
//! without the ones it computes (`entryDN`, `hasSubordinates`,
//! `subschemaSubentry`). `userPassword` is written only with
//! `with_secrets`: native hashes as `{ARGON2}$argon2id$…` (OpenLDAP's
//! pw-argon2 form), legacy hashes as their own scheme-tagged strings.
//! Extra attributes kept at import that the schema does not serve are
//! written too, so an export/import round trip keeps them.
//!
//! Both read one [`Snapshot`] of the store (`ldif_of`, `json_of`), so an
//! export of a live server holds every change completely or not at all;
//! writing it out holds no lock. Both write it in its canonical order
//! ([`Snapshot::sort_canonically`]; LDIF by DN), so two exports of one
//! directory are byte-identical, also across backends.
//!
//! [`json`] writes a [`super::Backup`]: everything a fresh server needs to
//! restore completely with [`super::import::json`]. Password hashes are
//! always in it; second-factor secrets (TOTP secrets, the keyed hashes of
//! static tokens and app passwords) and the server key that keys those
//! hashes only with `--with-secrets`. The key travels rather than the
//! hashes being re-keyed: an HMAC cannot be recomputed without the token
//! or app password it hashes, which the server never keeps.

use super::{
    hex, Backup, BackupAppPassword, BackupCounters, BackupDevice, BackupDeviceKind, BackupGroup,
    BackupMember, BackupUser, Hidden, BACKUP_FORMAT, BACKUP_VERSION,
};
use crate::auth::keys::ServerKey;
use crate::auth::totp;
use crate::directory::dn::Dn;
use crate::directory::entry::{self, Entry};
use crate::directory::schema;
use crate::ldif::{LdifEntry, Writer};
use crate::store::mfa::RawDevice;
use crate::store::{now, DeviceKind, Group, Member, Snapshot, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding the backup: {0}")]
    Json(String),
    #[error(
        "the store holds app passwords or static tokens but the data directory has no \
         server.key, which keys their hashes; the backup would not restore them"
    )]
    MissingKey,
}

/// Operational attributes kept in an LDIF export (what slapcat stores).
const STORED_OPERATIONAL: &[&str] = &[
    "entryUUID",
    "createTimestamp",
    "modifyTimestamp",
    "pwdChangedTime",
    "structuralObjectClass",
];

/// Name of the admin group whose members are served `ak-superuser: TRUE`
/// by default (the `admin_group` setting's default).
pub const DEFAULT_ADMIN_GROUP: &str = "admins";

/// RFC 4512 §1.4 keystring: a letter, then letters, digits and `-`.
fn is_keystring(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn to_ldif(e: &Entry) -> LdifEntry {
    let mut requested: Vec<String> = vec!["*".into()];
    requested.extend(STORED_OPERATIONAL.iter().map(|s| (*s).to_string()));
    let mut out = LdifEntry::new(e.dn.to_string());
    for (name, values) in e.select(&requested, false) {
        for v in values {
            out.push(&name, v);
        }
    }
    out
}

/// Writes the served tree under `base` as LDIF; see the module docs.
/// Returns the number of entries written.
pub fn ldif(
    store: &Store,
    base: &Dn,
    with_secrets: bool,
    out: &mut impl Write,
) -> Result<usize, ExportError> {
    ldif_with(store, base, DEFAULT_ADMIN_GROUP, with_secrets, out)
}

/// [`ldif`] with the configured admin group (for `ak-superuser`), from
/// one snapshot of the store.
pub fn ldif_with(
    store: &Store,
    base: &Dn,
    admin_group: &str,
    with_secrets: bool,
    out: &mut impl Write,
) -> Result<usize, ExportError> {
    ldif_of(store.snapshot()?, base, admin_group, with_secrets, out)
}

/// Writes the served tree of `snap` as LDIF; see the module docs. Returns
/// the number of entries written.
///
/// Ordered by DN, so two exports of one directory are byte-identical
/// (also across backends): the base, the two OUs, then the users and the
/// groups, each by lowercase DN. `snap` is put in its canonical order
/// first ([`Snapshot::sort_canonically`]): names are letters, digits, `.`,
/// `_` and `-`, which all sort after the `,` that ends the RDN, so the
/// order of lowercase names is the order of lowercase DNs. Multi-valued
/// attributes follow the same order (`memberOf` by group name, `member`
/// by id).
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
        w.entry(&to_ldif(&e))?;
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
        let mut le = to_ldif(&e);
        for (k, v) in &u.attrs {
            // Kept attributes the schema does not know (import's
            // keep_attributes). The portal's settings (`portcullis/locale`,
            // `goauthentik.io/user/…`) are no attribute names, so no LDIF
            // reader would take them: only the JSON backup carries those.
            if schema::attribute(k).is_none() && is_keystring(k) && !v.trim().is_empty() {
                le.push(k, v.as_str());
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
        w.entry(&to_ldif(&e))?;
        count += 1;
    }
    Ok(count)
}

/// What a backup leaves out: second factors listed without their
/// secrets (a backup without `--with-secrets`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WithoutSecrets {
    pub devices: usize,
    pub app_passwords: usize,
}

/// Which secrets a backup carries beyond password hashes.
#[derive(Clone, Copy, Debug)]
pub enum Secrets<'a> {
    /// Devices and app passwords listed without their secrets.
    Omit,
    /// TOTP secrets, keyed hashes and the server key (`None` when the
    /// data directory has none; then it must hold no keyed hash).
    Include(Option<&'a ServerKey>),
}

/// Builds the backup document of the whole store. With
/// [`Secrets::Include`] (`--with-secrets`) it holds TOTP secrets, the
/// keyed hashes of static tokens and app passwords, and the server key;
/// with [`Secrets::Omit`] devices and app passwords are listed without
/// secrets.
pub fn backup(store: &Store, with: Secrets<'_>) -> Result<Backup, ExportError> {
    backup_of(store.snapshot()?, with)
}

/// [`backup`] of one snapshot (consumed: its records move into the
/// document).
pub fn backup_of(mut snap: Snapshot, with: Secrets<'_>) -> Result<Backup, ExportError> {
    // The canonical order, so a backup's lists do not depend on the
    // backend it was taken from.
    snap.sort_canonically();
    let (secrets, server_key) = match with {
        Secrets::Omit => (false, None),
        Secrets::Include(key) => (true, key),
    };
    if secrets && server_key.is_none() && snap.has_keyed_hashes() {
        return Err(ExportError::MissingKey);
    }
    let mut users = Vec::with_capacity(snap.users.len());
    for su in snap.users {
        let factors = su.second_factors;
        let mfa_devices = factors
            .devices
            .into_iter()
            .map(|d| backup_device(d, secrets))
            .collect();
        let app_passwords = factors
            .app_passwords
            .into_iter()
            .map(|a| BackupAppPassword {
                id: a.record.id.0,
                kind: a.record.kind,
                name: a.record.name,
                created: a.record.created,
                expires: a.record.expires,
                last_used: a.record.last_used,
                last_used_from: a.record.last_used_from,
                hash: secrets.then(|| Hidden(hex(&a.hash))),
            })
            .collect();
        users.push(BackupUser {
            user: su.user,
            password_hash: su.password_hash,
            mfa_devices,
            app_passwords,
        });
    }
    let groups = snap
        .groups
        .into_iter()
        .map(|sg| BackupGroup {
            members: sg
                .members
                .into_iter()
                .map(|m| match m {
                    Member::User(u) => BackupMember::User(u.0),
                    Member::Group(c) => BackupMember::Group(c.0),
                })
                .collect(),
            policy: sg.policy,
            attrs: sg.attrs,
            group: sg.group,
        })
        .collect();
    let settings: BTreeMap<String, String> = snap.settings.into_iter().collect();
    let (next_uid, next_gid) = snap.counters;
    Ok(Backup {
        format: BACKUP_FORMAT.into(),
        version: BACKUP_VERSION,
        created: now(),
        secrets,
        server_key: server_key.map(|k| Hidden(k.to_hex())),
        users,
        groups,
        settings,
        counters: BackupCounters { next_uid, next_gid },
        extra: Vec::new(),
    })
}

fn backup_device(d: RawDevice, secrets: bool) -> BackupDevice {
    let kind = match d.device.kind {
        DeviceKind::Totp { digits } => BackupDeviceKind::Totp {
            digits,
            period: totp::PERIOD,
            algorithm: "SHA1".into(),
            secret: d
                .totp_secret
                .filter(|_| secrets)
                .map(|s| Hidden(totp::secret_base32(&s.0))),
            last_step: d.totp_last_step,
        },
        DeviceKind::Static => BackupDeviceKind::Static {
            tokens_left: d.static_tokens.len(),
            token_hashes: secrets.then(|| d.static_tokens.iter().map(|h| Hidden(hex(h))).collect()),
        },
    };
    BackupDevice {
        id: d.device.id.0,
        label: d.device.label,
        created: d.device.created,
        confirmed: d.device.confirmed,
        kind,
    }
}

impl Backup {
    /// The devices and app passwords this backup lists without secrets
    /// (none when it was written with them).
    pub fn without_secrets(&self) -> WithoutSecrets {
        let mut w = WithoutSecrets::default();
        for u in &self.users {
            for d in &u.mfa_devices {
                let missing = match &d.kind {
                    BackupDeviceKind::Totp { secret, .. } => secret.is_none(),
                    BackupDeviceKind::Static { token_hashes, .. } => token_hashes.is_none(),
                };
                if missing {
                    w.devices += 1;
                }
            }
            w.app_passwords += u.app_passwords.iter().filter(|a| a.hash.is_none()).count();
        }
        w
    }
}

/// Writes the JSON backup (pretty-printed); see [`backup`]. It holds
/// password hashes (and with [`Secrets::Include`] every second-factor
/// secret):
/// the caller creates the file with mode 0600. Returns what was listed
/// without secrets.
pub fn json(
    store: &Store,
    with: Secrets<'_>,
    out: &mut impl Write,
) -> Result<WithoutSecrets, ExportError> {
    json_of(store.snapshot()?, with, out)
}

/// [`json`] of one snapshot.
pub fn json_of(
    snap: Snapshot,
    with: Secrets<'_>,
    out: &mut impl Write,
) -> Result<WithoutSecrets, ExportError> {
    let b = backup_of(snap, with)?;
    serde_json::to_writer_pretty(&mut *out, &b).map_err(|e| ExportError::Json(e.to_string()))?;
    out.write_all(b"\n")?;
    Ok(b.without_secrets())
}
