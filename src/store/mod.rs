//! The store: the only module that knows sled.
//!
//! Users, groups, memberships, password hashes and settings live in sled
//! trees; secondary indexes (username, email, uidNumber, group name,
//! gidNumber, membership in both directions) keep lookups off full scans.
//! Every change that touches more than one key runs in a sled transaction.
//! sled's types never appear in this interface, so a second backend can
//! implement the same operations later.

pub mod model;

pub use model::{now, Group, GroupId, Member, NewUser, Timestamp, User, UserId};

use std::path::Path;

/// Current on-disk schema version, kept under the `schema_version` key.
pub const SCHEMA_VERSION: u32 = 1;
/// First uidNumber handed out (DESIGN.md section 3).
pub const FIRST_UID_NUMBER: u32 = 2000;
/// First gidNumber handed out (DESIGN.md section 3).
pub const FIRST_GID_NUMBER: u32 = 4000;

/// Errors of the store, in terms its callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request breaks a rule of the data model (bad name, cycle, …).
    #[error("{0}")]
    Invalid(String),
    /// The database itself failed; the detail is for the log, not for clients.
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle on the database; cheap to clone, shared by all tasks.
#[derive(Clone)]
pub struct Store {
    _todo: (),
}

#[allow(unused_variables, clippy::todo)]
impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        todo!()
    }
    /// A throw-away in-memory database, for tests and fuzzing.
    pub fn temporary() -> Result<Store> {
        todo!()
    }
    /// Writes everything to disk before returning.
    pub fn flush(&self) -> Result<()> {
        todo!()
    }

    // --- users ---
    /// Creates a user, allocating id, uidNumber (= gidNumber) and timestamps.
    pub fn create_user(&self, new: NewUser) -> Result<User> {
        todo!()
    }
    pub fn user(&self, id: UserId) -> Result<Option<User>> {
        todo!()
    }
    /// Case-insensitive.
    pub fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        todo!()
    }
    /// Case-insensitive.
    pub fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        todo!()
    }
    pub fn user_by_uid_number(&self, uid_number: u32) -> Result<Option<User>> {
        todo!()
    }
    /// All users, ordered by lowercase username.
    pub fn users(&self) -> Result<Vec<User>> {
        todo!()
    }
    pub fn user_count(&self) -> Result<usize> {
        todo!()
    }
    /// Applies `change` to the user atomically, keeping the email index right
    /// and setting `modified`. `change` may run more than once (retries).
    pub fn update_user(&self, id: UserId, change: &dyn Fn(&mut User) -> Result<()>) -> Result<User> {
        todo!()
    }
    /// Removes the user, its credentials and its memberships.
    pub fn delete_user(&self, id: UserId) -> Result<()> {
        todo!()
    }
    /// The PHC string of the user's password hash, if a password is set.
    pub fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        todo!()
    }
    /// Stores a new password hash; sets `pwd_changed`, bumps `cred_generation`.
    pub fn set_password_hash(&self, id: UserId, phc: &str) -> Result<()> {
        todo!()
    }

    // --- groups ---
    /// Creates a group, allocating id, gidNumber and timestamps.
    pub fn create_group(&self, name: &str, description: Option<String>) -> Result<Group> {
        todo!()
    }
    pub fn group(&self, id: GroupId) -> Result<Option<Group>> {
        todo!()
    }
    /// Case-insensitive.
    pub fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        todo!()
    }
    pub fn group_by_gid_number(&self, gid_number: u32) -> Result<Option<Group>> {
        todo!()
    }
    /// All groups, ordered by lowercase name.
    pub fn groups(&self) -> Result<Vec<Group>> {
        todo!()
    }
    /// Removes the group and every membership to and from it.
    pub fn delete_group(&self, id: GroupId) -> Result<()> {
        todo!()
    }
    /// Adds a direct member. `Ok(false)` if it already was one. Refuses a
    /// child group that would create a cycle with `StoreError::Invalid`.
    pub fn add_member(&self, group: GroupId, member: Member) -> Result<bool> {
        todo!()
    }
    /// `Ok(false)` if it was not a member.
    pub fn remove_member(&self, group: GroupId, member: Member) -> Result<bool> {
        todo!()
    }
    /// Direct members of a group (users and child groups).
    pub fn members(&self, group: GroupId) -> Result<Vec<Member>> {
        todo!()
    }
    /// Groups of which `member` is a direct member.
    pub fn groups_of(&self, member: Member) -> Result<Vec<GroupId>> {
        todo!()
    }

    // --- settings ---
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        todo!()
    }
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        todo!()
    }
}
