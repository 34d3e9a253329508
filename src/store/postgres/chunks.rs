//! The users and memberships of a batch (`batch`), written in chunks: a
//! round trip checks a chunk's names, ids, numbers and emails against the
//! database, and one multi-row `INSERT … SELECT FROM UNNEST(…)` writes it.
//! Inside the batch's one transaction, so all or nothing still holds; a
//! streamed import holds one chunk of users in memory, not all of them.
//!
//! The refusals are those of one user at a time, in the batch's order:
//! a name twice, an id, uidNumber or email another user holds (stored
//! before, or written by an earlier chunk, or earlier in the chunk), a
//! member that does not exist.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use tokio_postgres::Transaction;

use super::batch::{conflict, BatchRun};
use super::users::{email_key, name_key, user_row, USER_COLUMNS};
use super::{from_u64, to_u32, unique_violation, TxError, TxResult};
use crate::store::import::{BatchMember, BatchUser};
use crate::store::{GroupId, Member, Result, Store, StoreError, UserId, FIRST_UID_NUMBER};

/// Users per chunk: large enough that a round trip carries a thousand
/// rows, small enough that a chunk is a few MiB.
const USER_CHUNK: usize = 2000;

/// Memberships per chunk.
const MEMBER_CHUNK: usize = 10_000;

/// How many numbers one read of the numbers in use covers (uidNumber
/// allocation).
const NUMBER_WINDOW: u32 = 8192;

const INSERT_USERS: &str = "INSERT INTO users (id, username, username_key, full_name, email, \
     email_key, uid_number, gid_number, disabled, attrs, created, modified, pwd_changed, \
     cred_generation) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], \
     $5::text[], $6::text[], $7::int8[], $8::int8[], $9::bool[], $10::jsonb[], $11::int8[], \
     $12::int8[], $13::int8[], $14::int8[])";

impl BatchRun<'_, '_> {
    /// The users of the batch, chunk by chunk as `users` yields them; the
    /// `next_uid` allocator moves past every number handed out and every
    /// fixed one.
    pub(super) async fn write_users(
        &mut self,
        users: &mut dyn Iterator<Item = Result<BatchUser>>,
    ) -> TxResult<()> {
        let mut numbers = Numbers::read(self.tx).await?;
        let mut chunk = Vec::with_capacity(USER_CHUNK);
        loop {
            for u in (&mut *users).take(USER_CHUNK) {
                let u = u?;
                Store::check_batch_user(&u)?;
                chunk.push(u);
            }
            if chunk.is_empty() {
                break;
            }
            let new = self.merge_existing(std::mem::take(&mut chunk)).await?;
            self.create_users(new, &mut numbers).await?;
            chunk = Vec::with_capacity(USER_CHUNK);
        }
        numbers.save(self.tx).await
    }

    /// Merges (or, on a restore, overwrites) the chunk's users whose
    /// names exist; answers the others, in order.
    async fn merge_existing(&mut self, chunk: Vec<BatchUser>) -> TxResult<Vec<BatchUser>> {
        let keys: Vec<String> = chunk.iter().map(|b| name_key(&b.user.username)).collect();
        let mut existing: HashMap<String, crate::store::User> = HashMap::new();
        for row in self
            .tx
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE username_key = ANY($1) \
                     FOR NO KEY UPDATE"
                ),
                &[&keys],
            )
            .await?
        {
            let u = user_row(&row)?;
            existing.insert(name_key(&u.username), u);
        }
        let mut in_chunk = HashSet::new();
        let mut new = Vec::with_capacity(chunk.len());
        for (bu, key) in chunk.into_iter().zip(keys) {
            let twice = || conflict(format!("user {} appears twice", bu.user.username));
            if !in_chunk.insert(key.clone()) {
                return Err(twice());
            }
            match existing.remove(&key) {
                Some(ex) => {
                    if !self.users_written.insert(ex.id) {
                        return Err(twice());
                    }
                    self.merge_user(&bu, ex).await?;
                }
                None => new.push(bu),
            }
        }
        Ok(new)
    }

    /// Creates the chunk's new users: each must not reuse an id, a fixed
    /// uidNumber or an email; then one insert of the users and one of
    /// their password hashes.
    async fn create_users(&mut self, new: Vec<BatchUser>, numbers: &mut Numbers) -> TxResult<()> {
        if new.is_empty() {
            return Ok(());
        }
        self.check_new_users(&new).await?;
        let mut rows = UserRows::default();
        let fixed: HashSet<u32> = new
            .iter()
            .filter(|b| !b.allocate_uid)
            .map(|b| b.user.uid_number)
            .collect();
        numbers.note_fixed(&fixed);
        for bu in new {
            let mut u = bu.user;
            if bu.allocate_uid {
                u.uid_number = numbers.take(self.tx, &fixed).await?;
                if u.gid_number == 0 {
                    u.gid_number = u.uid_number;
                }
            }
            if let Some(hash) = bu.password_hash {
                if !self.restore {
                    u.pwd_changed = Some(u.pwd_changed.unwrap_or(self.at));
                }
                rows.credentials.0.push(u.id.0);
                rows.credentials.1.push(hash);
                self.report.passwords_set.push(u.username.clone());
            }
            self.users_written.insert(u.id);
            rows.push(&u)?;
            self.report.users_created.push(u.username);
        }
        rows.insert(self.tx).await
    }

    /// The refusals of [`BatchRun::create_users`], user by user in order,
    /// from three reads of the database for the whole chunk.
    async fn check_new_users(&self, new: &[BatchUser]) -> TxResult<()> {
        let ids: Vec<uuid::Uuid> = new.iter().map(|b| b.user.id.0).collect();
        let fixed: Vec<i64> = new
            .iter()
            .filter(|b| !b.allocate_uid)
            .map(|b| i64::from(b.user.uid_number))
            .collect();
        let emails: Vec<String> = new
            .iter()
            .filter_map(|b| b.user.email.as_deref().map(email_key))
            .collect();
        let tx = self.tx;
        let mut taken_ids = HashSet::new();
        for row in tx
            .query("SELECT id FROM users WHERE id = ANY($1)", &[&ids])
            .await?
        {
            taken_ids.insert(row.try_get::<_, uuid::Uuid>("id")?);
        }
        let mut owners: HashMap<u32, String> = HashMap::new();
        for row in tx
            .query(
                "SELECT uid_number, username FROM users WHERE uid_number = ANY($1)",
                &[&fixed],
            )
            .await?
        {
            owners.insert(
                to_u32(row.try_get("uid_number")?, "uidNumber")?,
                row.try_get("username")?,
            );
        }
        let mut taken_emails = HashSet::new();
        for row in tx
            .query(
                "SELECT email_key FROM users WHERE email_key = ANY($1)",
                &[&emails],
            )
            .await?
        {
            taken_emails.insert(row.try_get::<_, String>("email_key")?);
        }
        for bu in new {
            let u = &bu.user;
            if !taken_ids.insert(u.id.0) {
                return Err(conflict(format!(
                    "user id {} of {} is already used by another user",
                    u.id, u.username
                )));
            }
            if !bu.allocate_uid {
                if let Some(owner) = owners.get(&u.uid_number) {
                    return Err(conflict(format!(
                        "uidNumber {} of user {} already belongs to user {owner}",
                        u.uid_number, u.username
                    )));
                }
                owners.insert(u.uid_number, u.username.clone());
            }
            if let Some(email) = &u.email {
                if !taken_emails.insert(email_key(email)) {
                    return Err(conflict(format!(
                        "email {email} of user {} already belongs to another user",
                        u.username
                    )));
                }
            }
        }
        Ok(())
    }

    /// Memberships are only added; an existing group that gains members
    /// gets a new `modified` (import only). Chunk by chunk: the names
    /// resolved in two reads (groups are remembered across chunks), the
    /// refusals in the batch's order, then one insert per kind of member
    /// that counts what it added per group.
    pub(super) async fn write_memberships(&mut self) -> TxResult<()> {
        let mut groups: HashMap<String, Option<GroupId>> = HashMap::new();
        let mut touched: HashSet<GroupId> = HashSet::new();
        for chunk in self.batch.memberships.chunks(MEMBER_CHUNK) {
            let users = self.resolve(chunk, &mut groups).await?;
            let group_of = |name: &str| groups.get(&name_key(name)).copied().flatten();
            let mut seen = HashSet::new();
            let (mut of_users, mut of_groups) = (Pairs::default(), Pairs::default());
            for (group, member) in chunk {
                let gid = group_of(group).ok_or_else(|| {
                    TxError::Store(StoreError::NotFound(format!("group {group} (member list)")))
                })?;
                let m = match member {
                    BatchMember::User(n) => users
                        .get(&name_key(n))
                        .map(|id| Member::User(*id))
                        .ok_or_else(|| StoreError::NotFound(format!("user {n}")))?,
                    BatchMember::Group(n) => group_of(n)
                        .map(Member::Group)
                        .ok_or_else(|| StoreError::NotFound(format!("group {n}")))?,
                };
                if m == Member::Group(gid) {
                    return Err(conflict(format!("group {group} cannot contain itself")));
                }
                if !seen.insert((gid, m)) {
                    continue;
                }
                match m {
                    Member::User(u) => of_users.push(gid, u.0),
                    Member::Group(c) => of_groups.push(gid, c.0),
                }
            }
            for (table, pairs) in [
                ("user_members (group_id, user_id)", of_users),
                ("group_members (group_id, child_id)", of_groups),
            ] {
                if pairs.0.is_empty() {
                    continue;
                }
                for row in self
                    .tx
                    .query(
                        &format!(
                            "WITH added AS (INSERT INTO {table} SELECT * FROM \
                             UNNEST($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING \
                             RETURNING group_id) \
                             SELECT group_id, count(*) AS n FROM added GROUP BY group_id"
                        ),
                        &[&pairs.0, &pairs.1],
                    )
                    .await?
                {
                    let gid = GroupId(row.try_get("group_id")?);
                    let n: i64 = row.try_get("n")?;
                    self.report.memberships_added += usize::try_from(n).unwrap_or(0);
                    if self.existing_groups.contains(&gid) {
                        touched.insert(gid);
                    }
                }
            }
        }
        if !self.restore {
            for gid in touched {
                self.tx
                    .execute(
                        "UPDATE groups SET modified = $2 WHERE id = $1",
                        &[&gid.0, &self.at],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Reads the ids of the chunk's groups not known yet into `groups`
    /// (`None`: no such group) and answers the ids of its users, by
    /// lowercase name.
    async fn resolve(
        &self,
        chunk: &[(String, BatchMember)],
        groups: &mut HashMap<String, Option<GroupId>>,
    ) -> TxResult<HashMap<String, UserId>> {
        let mut want_groups = HashSet::new();
        let mut want_users = HashSet::new();
        for (group, member) in chunk {
            want_groups.insert(name_key(group));
            match member {
                BatchMember::User(n) => want_users.insert(name_key(n)),
                BatchMember::Group(n) => want_groups.insert(name_key(n)),
            };
        }
        let want_groups: Vec<String> = want_groups
            .into_iter()
            .filter(|k| !groups.contains_key(k))
            .collect();
        if !want_groups.is_empty() {
            for row in self
                .tx
                .query(
                    "SELECT name_key, id FROM groups WHERE name_key = ANY($1)",
                    &[&want_groups],
                )
                .await?
            {
                groups.insert(row.try_get("name_key")?, Some(GroupId(row.try_get("id")?)));
            }
            for k in want_groups {
                groups.entry(k).or_insert(None);
            }
        }
        let want_users: Vec<String> = want_users.into_iter().collect();
        let mut users = HashMap::with_capacity(want_users.len());
        if !want_users.is_empty() {
            for row in self
                .tx
                .query(
                    "SELECT username_key, id FROM users WHERE username_key = ANY($1)",
                    &[&want_users],
                )
                .await?
            {
                users.insert(row.try_get("username_key")?, UserId(row.try_get("id")?));
            }
        }
        Ok(users)
    }
}

/// (group, member) id pairs of one insert.
#[derive(Default)]
struct Pairs(Vec<uuid::Uuid>, Vec<uuid::Uuid>);

impl Pairs {
    fn push(&mut self, group: GroupId, member: uuid::Uuid) {
        self.0.push(group.0);
        self.1.push(member);
    }
}

/// A chunk's users as columns, the shape of `UNNEST`'s arrays.
#[derive(Default)]
struct UserRows {
    id: Vec<uuid::Uuid>,
    username: Vec<String>,
    username_key: Vec<String>,
    full_name: Vec<Option<String>>,
    email_key: Vec<Option<String>>,
    email: Vec<Option<String>>,
    uid_number: Vec<i64>,
    gid_number: Vec<i64>,
    disabled: Vec<bool>,
    attrs: Vec<serde_json::Value>,
    created: Vec<i64>,
    modified: Vec<i64>,
    pwd_changed: Vec<Option<i64>>,
    cred_generation: Vec<i64>,
    /// (user id, PHC string) of those with a password hash.
    credentials: (Vec<uuid::Uuid>, Vec<String>),
}

impl UserRows {
    fn push(&mut self, u: &crate::store::User) -> TxResult<()> {
        let attrs = serde_json::to_value(&u.attrs)
            .map_err(|e| StoreError::Backend(format!("encoding attributes: {e}")))?;
        self.id.push(u.id.0);
        self.username.push(u.username.clone());
        self.username_key.push(name_key(&u.username));
        self.full_name.push(u.full_name.clone());
        self.email_key.push(u.email.as_deref().map(email_key));
        self.email.push(u.email.clone());
        self.uid_number.push(i64::from(u.uid_number));
        self.gid_number.push(i64::from(u.gid_number));
        self.disabled.push(u.disabled);
        self.attrs.push(attrs);
        self.created.push(u.created);
        self.modified.push(u.modified);
        self.pwd_changed.push(u.pwd_changed);
        self.cred_generation
            .push(from_u64(u.cred_generation, "credential generation")?);
        Ok(())
    }

    async fn insert(self, tx: &Transaction<'_>) -> TxResult<()> {
        tx.execute(
            INSERT_USERS,
            &[
                &self.id,
                &self.username,
                &self.username_key,
                &self.full_name,
                &self.email,
                &self.email_key,
                &self.uid_number,
                &self.gid_number,
                &self.disabled,
                &self.attrs,
                &self.created,
                &self.modified,
                &self.pwd_changed,
                &self.cred_generation,
            ],
        )
        .await
        .map_err(|e| unexpected_taken(TxError::Db(e)))?;
        if !self.credentials.0.is_empty() {
            tx.execute(
                "INSERT INTO credentials (user_id, phc) SELECT * FROM UNNEST($1::uuid[], $2::text[])",
                &[&self.credentials.0, &self.credentials.1],
            )
            .await?;
        }
        Ok(())
    }
}

/// A unique key the checks found free but the insert did not (another
/// writer took it meanwhile): refused in an import's words.
fn unexpected_taken(e: TxError) -> TxError {
    match unique_violation(&e) {
        Some(key) => conflict(format!(
            "a user of this import holds a value another user took meanwhile ({key})"
        )),
        None => e,
    }
}

/// The `next_uid` allocator of one batch: the counter's row is locked by
/// the batch (`advance_counters`), so the next number is kept here and
/// written back once; the numbers in use are read a window at a time.
struct Numbers {
    next: u32,
    /// Numbers in use (uidNumbers and gidNumbers, as `users::allocate`
    /// avoids both) within `window`, as last read plus those written
    /// since.
    window: Range<u64>,
    used: HashSet<u32>,
    /// The highest fixed uidNumber written.
    max_fixed: Option<u32>,
}

impl Numbers {
    async fn read(tx: &Transaction<'_>) -> TxResult<Numbers> {
        let next = match tx
            .query_opt("SELECT value FROM counters WHERE name = 'next_uid'", &[])
            .await?
        {
            Some(row) => to_u32(row.try_get("value")?, "next_uid")?,
            None => FIRST_UID_NUMBER,
        };
        Ok(Numbers {
            next: next.max(FIRST_UID_NUMBER),
            window: 0..0,
            used: HashSet::new(),
            max_fixed: None,
        })
    }

    /// Fixed numbers a chunk is about to write: taken for allocation.
    fn note_fixed(&mut self, fixed: &HashSet<u32>) {
        for &n in fixed {
            if self.window.contains(&u64::from(n)) {
                self.used.insert(n);
            }
            self.max_fixed = self.max_fixed.max(Some(n));
        }
    }

    /// The next free number (`domain::rules::allocate_number` over the
    /// window); `pending` are numbers of the chunk not written yet.
    async fn take(&mut self, tx: &Transaction<'_>, pending: &HashSet<u32>) -> TxResult<u32> {
        let exhausted = || TxError::Store(StoreError::Invalid("uid numbers are exhausted".into()));
        loop {
            let n = self.next;
            if !self.window.contains(&u64::from(n)) {
                self.read_window(tx, n).await?;
            }
            let free = !self.used.contains(&n) && !pending.contains(&n);
            self.next = n.checked_add(1).ok_or_else(exhausted)?;
            if free {
                return Ok(n);
            }
        }
    }

    async fn read_window(&mut self, tx: &Transaction<'_>, from: u32) -> TxResult<()> {
        let end = u64::from(from) + u64::from(NUMBER_WINDOW);
        let end_sql = i64::try_from(end).unwrap_or(i64::MAX);
        self.used.clear();
        for row in tx
            .query(
                "SELECT uid_number AS n FROM users WHERE uid_number >= $1 AND uid_number < $2 \
                 UNION SELECT gid_number FROM groups WHERE gid_number >= $1 AND gid_number < $2",
                &[&i64::from(from), &end_sql],
            )
            .await?
        {
            self.used.insert(to_u32(row.try_get("n")?, "number")?);
        }
        self.window = u64::from(from)..end;
        Ok(())
    }

    /// Writes the counter back, past every number handed out or written.
    async fn save(self, tx: &Transaction<'_>) -> TxResult<()> {
        let next = self
            .next
            .max(self.max_fixed.map_or(0, |m| m.saturating_add(1)));
        tx.execute(
            "UPDATE counters SET value = greatest(value, $1) WHERE name = 'next_uid'",
            &[&i64::from(next)],
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::USER_CHUNK;
    use crate::store::conformance::{batch_group, bulk_name, bulk_user, BULK_HASH};
    use crate::store::import::{Batch, BatchGroup, BatchMember, BatchUser};
    use crate::store::postgres::testing::Cluster;
    use crate::store::postgres::{PgInstance, PgStore};
    use crate::store::{Backend, Group, Member, NewUser, StoreError, User};

    /// More users than two chunks hold.
    const MANY: usize = 2 * USER_CHUNK + 500;

    /// Two instances on a new database, as the offline CLI and a running
    /// server would have: the import goes through the first.
    fn two_instances() -> (PgInstance, PgInstance) {
        let cluster = Cluster::get();
        let url = cluster.url(&cluster.create_database());
        let start = || PgInstance::start(PgStore::connect(&url, 4, None).expect("connect"));
        (start().expect("instance A"), start().expect("instance B"))
    }

    /// User `i`: every third one with a fixed uidNumber from 100,000 up,
    /// the others allocated.
    fn batch_user(i: usize) -> BatchUser {
        let fixed = i
            .is_multiple_of(3)
            .then(|| 100_000 + u32::try_from(i).expect("small"));
        bulk_user(i, fixed)
    }

    /// A batch of a new group `big` holding every streamed user and the
    /// stored user `old` (whose group `staff` gains the first ten), with
    /// the allocator past the fixed numbers, as the importer makes it.
    fn batch(staff: &Group) -> Batch {
        let mut memberships: Vec<(String, BatchMember)> = (0..MANY)
            .map(|i| ("big".into(), BatchMember::User(bulk_name(i))))
            .collect();
        memberships.push(("big".into(), BatchMember::User("old".into())));
        memberships.extend((0..10).map(|i| ("staff".into(), BatchMember::User(bulk_name(i)))));
        Batch {
            groups: vec![
                batch_group("big"),
                BatchGroup {
                    group: staff.clone(),
                    allocate_gid: false,
                },
            ],
            memberships,
            next_uid: Some(100_000 + u32::try_from(MANY).expect("small")),
            ..Batch::default()
        }
    }

    /// A store holding user `old` in group `staff`.
    fn seed(s: &PgInstance) -> (User, Group) {
        let old = s
            .create_user(NewUser {
                username: "old".into(),
                ..NewUser::default()
            })
            .expect("user");
        let staff = s.create_group("staff", None).expect("group");
        s.add_member(staff.id, Member::User(old.id))
            .expect("member");
        (old, staff)
    }

    /// An import of more users than two chunks lands whole: every user
    /// with its password hash and a distinct uidNumber, every membership,
    /// the stored user merged, and the other instance sees all of it
    /// after the commit.
    #[test]
    fn an_import_larger_than_a_chunk_lands_whole() {
        let (a, b) = two_instances();
        let (old, staff) = seed(&a);
        let epoch = b.membership_epoch().expect("epoch");
        let mut users = (0..MANY)
            .map(batch_user)
            .chain(std::iter::once(BatchUser {
                user: old.clone(),
                allocate_uid: true,
                password_hash: Some("{SSHA}b2xkb2xkb2xk".into()),
            }))
            .map(Ok);
        let report = a
            .apply_batch_streamed(&batch(&staff), &mut users)
            .expect("import");
        assert_eq!(report.users_created.len(), MANY);
        assert_eq!(report.users_updated, vec!["old".to_string()]);
        assert_eq!(report.passwords_set.len(), MANY + 1);
        assert_eq!(report.groups_created, vec!["big".to_string()]);
        assert_eq!(report.memberships_added, MANY + 1 + 10);

        b.refresh().expect("catch-up");
        for s in [&a, &b] {
            assert_eq!(s.user_count().expect("count"), MANY + 1);
            let big = s.group_by_name("big").expect("read").expect("big");
            assert_eq!(s.members(big.id).expect("members").len(), MANY + 1);
            assert_eq!(s.members(staff.id).expect("members").len(), 11);
            let last = s
                .user_by_name(&bulk_name(MANY - 1))
                .expect("read")
                .expect("last user");
            assert_eq!(
                s.password_hash(last.id).expect("hash").as_deref(),
                Some(BULK_HASH)
            );
            assert!(s.membership_epoch().expect("epoch") > epoch);
        }
        let numbers: std::collections::HashSet<u32> = a
            .users()
            .expect("users")
            .iter()
            .map(|u| u.uid_number)
            .collect();
        assert_eq!(numbers.len(), MANY + 1, "every uidNumber once");
        assert!(a.counters().expect("counters").0 > *numbers.iter().max().expect("some"));
        assert_eq!(
            a.password_hash(old.id).expect("hash").as_deref(),
            Some("{SSHA}b2xkb2xkb2xk")
        );
    }

    /// A failure in a later chunk (a name twice, a stream that breaks, a
    /// member that does not exist, after every user was written) leaves
    /// nothing: the users, groups, memberships, counters and epoch are
    /// those of before.
    #[test]
    fn a_failure_in_a_later_chunk_leaves_nothing() {
        let (a, b) = two_instances();
        let (_, staff) = seed(&a);
        let before = |s: &PgInstance| {
            (
                s.user_count().expect("count"),
                s.groups().expect("groups").len(),
                s.members(staff.id).expect("members").len(),
                s.counters().expect("counters"),
                s.membership_epoch().expect("epoch"),
            )
        };
        let was = before(&a);
        let twice = || {
            (0..MANY)
                .map(batch_user)
                .chain(std::iter::once(batch_user(1)))
                .map(Ok)
        };
        let broken = || {
            (0..MANY)
                .map(batch_user)
                .map(Ok)
                .chain(std::iter::once(Err(StoreError::Backend(
                    "reading the import spill: broken".into(),
                ))))
        };
        let mut missing = batch(&staff);
        missing
            .memberships
            .push(("big".into(), BatchMember::User("nobody".into())));

        let e = a
            .apply_batch_streamed(&batch(&staff), &mut twice())
            .expect_err("a name twice");
        assert!(
            matches!(&e, StoreError::AlreadyExists(m) if m.contains(&format!("user {} appears twice", bulk_name(1)))),
            "{e}"
        );
        let e = a
            .apply_batch_streamed(&batch(&staff), &mut broken())
            .expect_err("a broken stream");
        assert!(
            matches!(&e, StoreError::Backend(m) if m.contains("broken")),
            "{e}"
        );
        let e = a
            .apply_batch_streamed(&missing, &mut (0..MANY).map(batch_user).map(Ok))
            .expect_err("a missing member");
        assert!(
            matches!(&e, StoreError::NotFound(m) if m == "user nobody"),
            "{e}"
        );

        b.refresh().expect("catch-up");
        for s in [&a, &b] {
            assert_eq!(before(s), was);
            assert!(s.group_by_name("big").expect("read").is_none());
            assert!(s.user_by_name(&bulk_name(0)).expect("read").is_none());
        }
        // And the same import, whole, still lands afterwards.
        a.apply_batch_streamed(&batch(&staff), &mut (0..MANY).map(batch_user).map(Ok))
            .expect("import");
        assert_eq!(a.user_count().expect("count"), MANY + 1);
    }
}
