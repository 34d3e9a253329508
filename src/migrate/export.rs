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
//! Both are streamed from one snapshot of the store
//! ([`crate::store::Backend::snapshot_streamed`]; [`ldif_from`],
//! [`json_from`]): each user is written as it is read, so an export of a
//! million users holds its groups (with member ids) and the names of group
//! members in memory, never the whole directory or the whole output. An
//! export of a live server holds every change completely or not at all;
//! on sled, writes wait until it is written, or with a spooled snapshot
//! (a serving process's) until the records are copied (see
//! `store/sled/snapshot.rs` for how long), so callers write to a local
//! file, never to a slow reader. Both are written in the snapshot's canonical order
//! ([`Snapshot::sort_canonically`]; LDIF by DN), so two exports of one
//! directory are byte-identical, also across backends, and identical to
//! what the whole-snapshot path wrote before (a test keeps that path as
//! the reference).

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
use crate::account::AccountError;
use crate::auth::keys::ServerKey;
use crate::auth::totp;
use crate::directory::dn::Dn;
use crate::directory::entry::{self, AttrSink, Entry, Pushed, Requested, Wanted};
use crate::directory::schema::{self, AttributeType};
use crate::directory::tree;
use crate::domain::snapshot::{read_beside, IdMap, IdSet};
use crate::ldif::{self, LdifEntry, Writer};
use crate::store::mfa::RawDevice;
use crate::store::{
    now, DeviceKind, Group, GroupId, Member, Result as StoreResult, Snapshot, SnapshotGroup,
    SnapshotHead, SnapshotSink, SnapshotUser, Store, StoreError, UserId,
};
use std::collections::HashMap;
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding the backup: {0}")]
    Json(String),
    #[error("{0}")]
    Account(#[from] AccountError),
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

/// What an LDIF export writes of an entry: every user attribute and the
/// stored operational ones.
fn exported() -> Requested {
    let mut requested: Vec<String> = vec!["*".into()];
    requested.extend(STORED_OPERATIONAL.iter().map(|s| (*s).to_string()));
    Requested::parse(&requested)
}

/// `e` as LDIF, its values moved rather than copied; `exported` is
/// [`exported`], parsed once per export.
fn to_ldif(e: Entry, exported: &Requested) -> LdifEntry {
    let mut out = LdifEntry::new(e.dn.to_string());
    for (name, values) in e.into_selected_as(exported, false) {
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

/// [`ldif`] with the configured admin group (for `ak-superuser`), streamed
/// from one snapshot of the store.
pub fn ldif_with(
    store: &Store,
    base: &Dn,
    admin_group: &str,
    with_secrets: bool,
    out: &mut impl Write,
) -> Result<usize, ExportError> {
    ldif_from(
        |sink| store.snapshot_streamed(sink),
        base,
        admin_group,
        with_secrets,
        out,
    )
}

/// [`ldif_from`] of a snapshot already in memory.
pub fn ldif_of(
    snap: Snapshot,
    base: &Dn,
    admin_group: &str,
    with_secrets: bool,
    out: &mut impl Write,
) -> Result<usize, ExportError> {
    ldif_from(|sink| snap.feed(sink), base, admin_group, with_secrets, out)
}

/// Writes the served tree as LDIF while `read` streams one snapshot into
/// it (e.g. [`crate::store::Backend::snapshot_streamed`]); see the module
/// docs. Returns the number of entries written.
///
/// Ordered by DN, so two exports of one directory are byte-identical
/// (also across backends): the base, the two OUs, then the users and the
/// groups, each by lowercase DN. A streamed snapshot comes in its
/// canonical order ([`SnapshotSink`]): names are letters, digits, `.`,
/// `_` and `-`, which all sort after the `,` that ends the RDN, so the
/// order of lowercase names is the order of lowercase DNs. Multi-valued
/// attributes follow the same order (`memberOf` by group name, `member`
/// by id).
///
/// `read` runs on a thread of its own beside the writing
/// ([`read_beside`]). Each user is written as it arrives; what is held
/// meanwhile is the snapshot's head (groups with their member ids) and the
/// names of the users that are members of a group, for the group entries
/// written last.
pub fn ldif_from<E: Into<ExportError>>(
    read: impl FnOnce(&mut dyn SnapshotSink) -> Result<(), E> + Send,
    base: &Dn,
    admin_group: &str,
    with_secrets: bool,
    out: &mut impl Write,
) -> Result<usize, ExportError> {
    let mut sink = LdifSink {
        base,
        admin_group,
        with_secrets,
        out: Some(out),
        w: None,
        head: None,
        names: IdMap::default(),
        order: CanonicalOrder::default(),
        wanted: Wanted::everything(),
        lines: UserLines {
            exported: exported(),
            dn: String::new(),
            record: Vec::new(),
            pushed: Pushed::default(),
        },
        count: 0,
        failed: None,
    };
    let read = read_beside(|s| read(s).map_err(Into::into), &mut sink);
    sink.finish(read)
}

/// What [`ldif_from`] knows once the head has come.
struct LdifHead {
    groups: Vec<SnapshotGroup>,
    by_id: HashMap<GroupId, Group>,
    parents: IdMap<Member, Vec<GroupId>>,
    admins: IdSet<UserId>,
    /// Each group's DN, as a user's memberOf lists it.
    dns: HashMap<GroupId, String>,
    /// `ou=users,<base>`, under which users' DNs are made.
    users_ou: String,
}

impl LdifHead {
    /// The groups `m` is a direct member of, by name.
    fn parents_of(&self, m: Member) -> Vec<Group> {
        self.parents
            .get(&m)
            .into_iter()
            .flatten()
            .filter_map(|g| self.by_id.get(g).cloned())
            .collect()
    }
}

/// The LDIF lines of the user entry being written, as
/// [`entry::push_user_attrs`] pushes its attributes: each value the export
/// keeps ([`exported`]), in the order pushed.
struct UserLines {
    exported: Requested,
    /// The entry's DN.
    dn: String,
    record: Vec<u8>,
    pushed: Pushed,
}

impl UserLines {
    /// Starts the entry of user `name`: its DN under `users_ou`, its `dn`
    /// line.
    fn start(&mut self, name: &str, users_ou: &str) {
        self.dn.clear();
        entry::push_child_dn(&mut self.dn, name, users_ou);
        self.record.clear();
        ldif::push_line(&mut self.record, "dn", &[], self.dn.as_bytes());
        self.pushed.clear();
    }
}

impl AttrSink for UserLines {
    fn push(&mut self, ty: &'static AttributeType, values: &[&str]) {
        if self.pushed.first(ty, values) && self.exported.keeps(ty) {
            for v in values {
                ldif::push_line(&mut self.record, ty.name, &[], v.as_bytes());
            }
        }
    }
}

struct LdifSink<'a, W: Write> {
    base: &'a Dn,
    admin_group: &'a str,
    with_secrets: bool,
    /// Until the head comes: nothing is written before the snapshot
    /// starts, so a store that cannot be read leaves the output empty.
    out: Option<W>,
    w: Option<Writer<W>>,
    head: Option<LdifHead>,
    /// Usernames of the users that are members of some group.
    names: IdMap<UserId, String>,
    order: CanonicalOrder,
    /// Everything: what [`entry::user_entry`] makes.
    wanted: Wanted,
    /// Also holds [`exported`], parsed once per export.
    lines: UserLines,
    count: usize,
    failed: Option<ExportError>,
}

impl<W: Write> LdifSink<'_, W> {
    fn start(&mut self, head: SnapshotHead) -> Result<(), ExportError> {
        let out = self.out.take().ok_or_else(|| twice("head"))?;
        let mut w = Writer::new(out)?;
        w.comment(&format!(
            "portcullis export of {}{}",
            self.base,
            if self.with_secrets {
                " (with password hashes)"
            } else {
                ""
            }
        ))?;
        for e in [
            entry::base_entry(self.base),
            entry::users_ou_entry(self.base),
            entry::groups_ou_entry(self.base),
        ] {
            w.entry(&to_ldif(e, &self.lines.exported))?;
            self.count += 1;
        }
        self.w = Some(w);
        let groups_ou = tree::groups_ou(self.base).to_string();
        self.head = Some(LdifHead {
            dns: head
                .groups
                .iter()
                .map(|g| {
                    (
                        g.group.id,
                        entry::child_dn_string(&g.group.name, &groups_ou),
                    )
                })
                .collect(),
            users_ou: tree::users_ou(self.base).to_string(),
            by_id: head
                .groups
                .iter()
                .map(|g| (g.group.id, g.group.clone()))
                .collect(),
            parents: head.parents(),
            admins: head.transitive_user_members(self.admin_group),
            groups: head.groups,
        });
        // Every member a group lists may need its name: sized once, not
        // grown (and rehashed) through a million users.
        if let Some(h) = &self.head {
            self.names.reserve(h.parents.len());
        }
        Ok(())
    }

    /// Writes a user's entry straight from its parts, as the built entry
    /// ([`entry::user_entry`] through [`to_ldif`]) would be written: the
    /// same lines in the same order, without building and copying it
    /// (what an export of a million users spent most of its time on).
    fn write_user(&mut self, su: SnapshotUser) -> Result<(), ExportError> {
        self.order.next(&su)?;
        let (Some(w), Some(head)) = (self.w.as_mut(), self.head.as_ref()) else {
            return Err(twice("user before the head"));
        };
        let u = &su.user;
        let direct = head
            .parents
            .get(&Member::User(u.id))
            .map_or(&[][..], Vec::as_slice);
        let member_of: Vec<&str> = direct
            .iter()
            .filter_map(|g| head.dns.get(g).map(String::as_str))
            .collect();
        let superuser = head.admins.contains(&u.id);
        let lines = &mut self.lines;
        lines.start(&u.username, &head.users_ou);
        let dn = std::mem::take(&mut lines.dn);
        entry::push_user_attrs(lines, &dn, u, &member_of, superuser, &self.wanted);
        lines.dn = dn;
        if lines.pushed.repeated() {
            // A type pushed twice (a kept attribute the entry also makes):
            // the built entry merges the two, so it is built.
            let e = entry::user_entry(
                self.base,
                u,
                &head.parents_of(Member::User(u.id)),
                superuser,
            );
            lines.record.clear();
            ldif::push_line(&mut lines.record, "dn", &[], e.dn.to_string().as_bytes());
            for (name, values) in e.into_selected_as(&lines.exported, false) {
                for v in values {
                    ldif::push_line(&mut lines.record, &name, &[], v.as_bytes());
                }
            }
        }
        for (k, v) in &u.attrs {
            // Kept attributes the schema does not know (import's
            // keep_attributes). The portal's settings (`portcullis/locale`,
            // `goauthentik.io/user/…`) are no attribute names, so no LDIF
            // reader would take them: only the JSON backup carries those.
            if schema::attribute(k).is_none() && is_keystring(k) && !v.trim().is_empty() {
                ldif::push_line(&mut lines.record, k, &[], v.as_bytes());
            }
        }
        if self.with_secrets {
            if let Some(hash) = &su.password_hash {
                let prefix: &[u8] = if hash.starts_with("$argon2") {
                    b"{ARGON2}"
                } else {
                    b""
                };
                let value = [prefix, hash.as_bytes()].concat();
                ldif::push_line(&mut lines.record, "userPassword", &[], &value);
            }
        }
        w.record(&lines.record)?;
        self.count += 1;
        if !direct.is_empty() {
            self.names.insert(u.id, su.user.username);
        }
        Ok(())
    }

    /// The group entries, once every user has passed; or the error that
    /// stopped the snapshot (the sink's own first: it says why).
    fn finish(mut self, read: Result<(), ExportError>) -> Result<usize, ExportError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        read?;
        let (Some(mut w), Some(head)) = (self.w.take(), self.head.take()) else {
            return Err(twice("no head"));
        };
        for sg in &head.groups {
            let g = &sg.group;
            let mut usernames = Vec::new();
            let mut children = Vec::new();
            for m in &sg.members {
                match m {
                    Member::User(id) => usernames.extend(self.names.get(id).map(String::as_str)),
                    Member::Group(id) => children.extend(head.by_id.get(id).cloned()),
                }
            }
            let parents = head.parents_of(Member::Group(g.id));
            let e = entry::group_entry_named(self.base, g, &usernames, &children, &parents);
            w.entry(&to_ldif(e, &self.lines.exported))?;
            self.count += 1;
        }
        Ok(self.count)
    }
}

impl<W: Write> SnapshotSink for LdifSink<'_, W> {
    fn head(&mut self, head: SnapshotHead) -> StoreResult<()> {
        let started = self.start(head);
        keep_failure(&mut self.failed, started)
    }

    fn user(&mut self, user: SnapshotUser) -> StoreResult<()> {
        let written = self.write_user(user);
        keep_failure(&mut self.failed, written)
    }
}

/// Keeps a sink's own failure for its caller and stops the snapshot.
fn keep_failure(failed: &mut Option<ExportError>, r: Result<(), ExportError>) -> StoreResult<()> {
    r.map_err(|e| {
        let stopped = StoreError::Backend(format!("the export stopped: {e}"));
        *failed = Some(e);
        stopped
    })
}

/// A snapshot that broke the order of [`SnapshotSink`] (a backend's bug).
fn twice(what: &str) -> ExportError {
    ExportError::Store(StoreError::Backend(format!(
        "the snapshot came out of order: {what}"
    )))
}

/// Checks that users come in canonical order: an export out of order
/// would differ from the same directory's other exports, so it fails
/// instead.
#[derive(Default)]
struct CanonicalOrder(Option<String>);

impl CanonicalOrder {
    fn next(&mut self, u: &SnapshotUser) -> Result<(), ExportError> {
        let key = u.canonical_key();
        if self.0.as_ref().is_some_and(|last| *last >= key) {
            return Err(twice("users not by lowercase name"));
        }
        self.0 = Some(key);
        Ok(())
    }
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

/// Builds the backup document of the whole store in memory (what
/// `migrate-store` restores from). With [`Secrets::Include`]
/// (`--with-secrets`) it holds TOTP secrets, the keyed hashes of static
/// tokens and app passwords, and the server key; with [`Secrets::Omit`]
/// devices and app passwords are listed without secrets. Files are
/// written by [`json`], streamed.
pub fn backup(store: &Store, with: Secrets<'_>) -> Result<Backup, ExportError> {
    backup_of(store.snapshot()?, with)
}

/// [`backup`] of one snapshot (consumed: its records move into the
/// document).
pub fn backup_of(mut snap: Snapshot, with: Secrets<'_>) -> Result<Backup, ExportError> {
    // The canonical order, so a backup's lists do not depend on the
    // backend it was taken from.
    snap.sort_canonically();
    let (secrets, server_key) = with.split();
    if secrets && server_key.is_none() && snap.has_keyed_hashes() {
        return Err(ExportError::MissingKey);
    }
    let users = snap
        .users
        .into_iter()
        .map(|su| backup_user(su, secrets))
        .collect();
    let groups = snap.groups.into_iter().map(backup_group).collect();
    Ok(backup_document(
        secrets,
        server_key,
        users,
        groups,
        snap.settings,
        snap.counters,
    ))
}

/// The document around the users and groups.
fn backup_document(
    secrets: bool,
    server_key: Option<&ServerKey>,
    users: Vec<BackupUser>,
    groups: Vec<BackupGroup>,
    settings: Vec<(String, String)>,
    (next_uid, next_gid): (u32, u32),
) -> Backup {
    Backup {
        format: BACKUP_FORMAT.into(),
        version: BACKUP_VERSION,
        created: now(),
        secrets,
        server_key: server_key.map(|k| Hidden(k.to_hex())),
        users,
        groups,
        settings: settings.into_iter().collect(),
        counters: BackupCounters { next_uid, next_gid },
        extra: Vec::new(),
    }
}

impl<'a> Secrets<'a> {
    /// Whether secrets are written, and the key that goes with them.
    fn split(self) -> (bool, Option<&'a ServerKey>) {
        match self {
            Secrets::Omit => (false, None),
            Secrets::Include(key) => (true, key),
        }
    }
}

/// One user as the backup writes it (`migrate-store` compares and
/// restores users one at a time from this).
pub(crate) fn backup_user(su: SnapshotUser, secrets: bool) -> BackupUser {
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
    BackupUser {
        user: su.user,
        password_hash: su.password_hash,
        mfa_devices,
        app_passwords,
    }
}

/// One group as the backup writes it.
pub(crate) fn backup_group(sg: SnapshotGroup) -> BackupGroup {
    BackupGroup {
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
    }
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
            w.count(u);
        }
        w
    }
}

impl WithoutSecrets {
    fn count(&mut self, u: &BackupUser) {
        for d in &u.mfa_devices {
            let missing = match &d.kind {
                BackupDeviceKind::Totp { secret, .. } => secret.is_none(),
                BackupDeviceKind::Static { token_hashes, .. } => token_hashes.is_none(),
            };
            if missing {
                self.devices += 1;
            }
        }
        self.app_passwords += u.app_passwords.iter().filter(|a| a.hash.is_none()).count();
    }
}

/// Writes the JSON backup (pretty-printed), streamed from one snapshot
/// of the store; see [`json_from`].
pub fn json(
    store: &Store,
    with: Secrets<'_>,
    out: &mut impl Write,
) -> Result<WithoutSecrets, ExportError> {
    json_from(|sink| store.snapshot_streamed(sink), with, out)
}

/// [`json_from`] of a snapshot already in memory.
pub fn json_of(
    snap: Snapshot,
    with: Secrets<'_>,
    out: &mut impl Write,
) -> Result<WithoutSecrets, ExportError> {
    if matches!(with, Secrets::Include(None)) && snap.has_keyed_hashes() {
        return Err(ExportError::MissingKey);
    }
    json_from(|sink| snap.feed(sink), with, out)
}

/// Writes the JSON backup while `read` streams one snapshot into it: the
/// bytes `serde_json::to_writer_pretty` writes for the [`backup`] of the
/// same snapshot, each user written as it arrives (the groups, settings
/// and counters come first, in the head, and are written after the
/// users, where the document has them). The reading, not the writing,
/// sets its pace: unlike [`ldif_from`], it runs on the caller's thread
/// (beside it, a million users' backup took as long and 1.4 s more CPU).
/// It holds password hashes (and
/// with [`Secrets::Include`] every second-factor secret): the caller
/// creates the file with mode 0600. Returns what was listed without
/// secrets.
///
/// With [`Secrets::Include`]`(None)` a user holding a keyed hash stops the
/// export with [`ExportError::MissingKey`] when it comes; callers that
/// write where a failed export cannot be taken back (standard output)
/// ask [`crate::store::Backend::has_keyed_hashes`] first.
pub fn json_from<E: Into<ExportError>>(
    read: impl FnOnce(&mut dyn SnapshotSink) -> Result<(), E>,
    with: Secrets<'_>,
    out: &mut impl Write,
) -> Result<WithoutSecrets, ExportError> {
    let (secrets, server_key) = with.split();
    let mut sink = JsonSink {
        out,
        secrets,
        server_key,
        rest: None,
        users: 0,
        element: Vec::new(),
        left_out: WithoutSecrets::default(),
        order: CanonicalOrder::default(),
        failed: None,
    };
    let read = read(&mut sink);
    sink.finish(read.map_err(Into::into))
}

/// Where the document continues after the users.
struct JsonRest {
    groups: Vec<SnapshotGroup>,
    /// From the users' `]` to the groups' `[`.
    between: Vec<u8>,
    /// From the groups' `]` to the end.
    tail: Vec<u8>,
}

struct JsonSink<'a, W: Write> {
    out: W,
    secrets: bool,
    server_key: Option<&'a ServerKey>,
    rest: Option<JsonRest>,
    users: usize,
    /// One array element, reused.
    element: Vec<u8>,
    left_out: WithoutSecrets,
    order: CanonicalOrder,
    failed: Option<ExportError>,
}

/// Where an array sits in the pretty-printed document: its key at depth 1,
/// on a line of its own (a string cannot hold a raw newline, so this is
/// never inside a value).
const USERS_EMPTY: &[u8] = b"\n  \"users\": []";
const GROUPS_EMPTY: &[u8] = b"\n  \"groups\": []";

fn find(haystack: &[u8], needle: &[u8]) -> Result<usize, ExportError> {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .ok_or_else(|| ExportError::Json("the document has no place for a list".into()))
}

impl<W: Write> JsonSink<'_, W> {
    /// Writes the document up to the users' `[`: the document of an empty
    /// store with this head's settings and counters, pretty-printed by
    /// serde_json and cut where the two lists go.
    fn start(&mut self, head: SnapshotHead) -> Result<(), ExportError> {
        if self.rest.is_some() {
            return Err(twice("head"));
        }
        let skeleton = backup_document(
            self.secrets,
            self.server_key,
            Vec::new(),
            Vec::new(),
            head.settings,
            head.counters,
        );
        let text =
            serde_json::to_vec_pretty(&skeleton).map_err(|e| ExportError::Json(e.to_string()))?;
        let u = find(&text, USERS_EMPTY)?;
        let g = find(&text, GROUPS_EMPTY)?;
        // Where each empty list's `]` is: the text before it ends with
        // the list's `[`.
        let (u, g) = (u + USERS_EMPTY.len() - 1, g + GROUPS_EMPTY.len() - 1);
        self.out.write_all(&text[..u])?;
        self.rest = Some(JsonRest {
            groups: head.groups,
            between: text[u..g].to_vec(),
            tail: text[g..].to_vec(),
        });
        Ok(())
    }

    /// Writes one element of a list at depth 1, as serde_json's pretty
    /// printer would: on a line of its own, every line indented 4 spaces.
    fn element(&mut self, first: bool, value: &impl serde::Serialize) -> Result<(), ExportError> {
        self.element.clear();
        serde_json::to_writer_pretty(&mut self.element, value)
            .map_err(|e| ExportError::Json(e.to_string()))?;
        self.out.write_all(if first { b"\n" } else { b",\n" })?;
        for (i, line) in self.element.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                self.out.write_all(b"\n")?;
            }
            self.out.write_all(b"    ")?;
            self.out.write_all(line)?;
        }
        Ok(())
    }

    /// Ends a list of `n` elements: its `]` on a line of its own unless
    /// the list is empty. The `]` itself begins the rest of the document
    /// ([`JsonRest`]).
    fn close(&mut self, n: usize) -> Result<(), ExportError> {
        if n > 0 {
            self.out.write_all(b"\n  ")?;
        }
        Ok(())
    }

    fn write_user(&mut self, su: SnapshotUser) -> Result<(), ExportError> {
        self.order.next(&su)?;
        if self.rest.is_none() {
            return Err(twice("user before the head"));
        }
        if self.secrets && self.server_key.is_none() && su.has_keyed_hashes() {
            return Err(ExportError::MissingKey);
        }
        let u = backup_user(su, self.secrets);
        self.left_out.count(&u);
        self.element(self.users == 0, &u)?;
        self.users += 1;
        Ok(())
    }

    fn finish(mut self, read: Result<(), ExportError>) -> Result<WithoutSecrets, ExportError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        read?;
        let rest = self.rest.take().ok_or_else(|| twice("no head"))?;
        self.close(self.users)?;
        self.out.write_all(&rest.between)?;
        let groups = rest.groups.len();
        for (i, sg) in rest.groups.into_iter().enumerate() {
            self.element(i == 0, &backup_group(sg))?;
        }
        self.close(groups)?;
        self.out.write_all(&rest.tail)?;
        self.out.write_all(b"\n")?;
        Ok(self.left_out)
    }
}

impl<W: Write> SnapshotSink for JsonSink<'_, W> {
    fn head(&mut self, head: SnapshotHead) -> StoreResult<()> {
        let started = self.start(head);
        keep_failure(&mut self.failed, started)
    }

    fn user(&mut self, user: SnapshotUser) -> StoreResult<()> {
        let written = self.write_user(user);
        keep_failure(&mut self.failed, written)
    }
}

#[cfg(test)]
pub(super) mod reference;
