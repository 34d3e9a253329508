//! Byte layout of the keys the sled backend writes.
//!
//! Ids are the 16 raw bytes of their UUID. Numbers are big-endian, so the
//! byte order of the index trees is the numeric order. Membership keys put a
//! kind byte between the two ids, so a prefix scan over `group` (or over
//! `kind ++ member`) finds exactly one entity's memberships:
//!
//! ```text
//! members:   group id (16) ++ kind (1) ++ member id (16) → ()
//! member_of: kind (1) ++ member id (16) ++ group id (16) → ()
//! ```

use super::{GroupId, Member, Result, StoreError, UserId};
use uuid::Uuid;

/// Kind byte of a user member. Sorts after [`KIND_GROUP`], so `members`
/// lists child groups first.
pub(super) const KIND_USER: u8 = b'u';
/// Kind byte of a child-group member.
pub(super) const KIND_GROUP: u8 = b'g';

pub(super) const ID_LEN: usize = 16;
const MEMBER_LEN: usize = 1 + ID_LEN;
const MEMBERSHIP_LEN: usize = ID_LEN + MEMBER_LEN;

pub(super) fn user_key(id: UserId) -> [u8; ID_LEN] {
    *id.0.as_bytes()
}

pub(super) fn group_key(id: GroupId) -> [u8; ID_LEN] {
    *id.0.as_bytes()
}

/// `first id ++ second id`: a record that belongs to a user (a device, an
/// app password), so a prefix scan over the user id finds them all.
pub(super) fn pair_key(first: Uuid, second: Uuid) -> [u8; 2 * ID_LEN] {
    let mut key = [0u8; 2 * ID_LEN];
    key[..ID_LEN].copy_from_slice(first.as_bytes());
    key[ID_LEN..].copy_from_slice(second.as_bytes());
    key
}

pub(super) fn number_key(n: u32) -> [u8; 4] {
    n.to_be_bytes()
}

/// `kind ++ member id`: the prefix of a member's `member_of` entries.
pub(super) fn member_key(member: Member) -> [u8; MEMBER_LEN] {
    let (kind, id) = match member {
        Member::User(u) => (KIND_USER, u.0),
        Member::Group(g) => (KIND_GROUP, g.0),
    };
    let mut key = [0u8; MEMBER_LEN];
    key[0] = kind;
    key[1..].copy_from_slice(id.as_bytes());
    key
}

/// Key in the `members` tree (group → member direction).
pub(super) fn members_key(group: GroupId, member: Member) -> Vec<u8> {
    let mut key = Vec::with_capacity(MEMBERSHIP_LEN);
    key.extend_from_slice(group.0.as_bytes());
    key.extend_from_slice(&member_key(member));
    key
}

/// [`members_key`] as an array (for sorting many of them).
pub(super) fn membership(group: GroupId, member: Member) -> [u8; MEMBERSHIP_LEN] {
    let mut key = [0u8; MEMBERSHIP_LEN];
    key[..ID_LEN].copy_from_slice(group.0.as_bytes());
    key[ID_LEN..].copy_from_slice(&member_key(member));
    key
}

/// The [`member_of_key`] of a [`membership`]: the member first.
pub(super) fn reversed(members_key: &[u8; MEMBERSHIP_LEN]) -> [u8; MEMBERSHIP_LEN] {
    let mut key = [0u8; MEMBERSHIP_LEN];
    key[..MEMBER_LEN].copy_from_slice(&members_key[ID_LEN..]);
    key[MEMBER_LEN..].copy_from_slice(&members_key[..ID_LEN]);
    key
}

/// Key in the `member_of` tree (member → group direction).
pub(super) fn member_of_key(member: Member, group: GroupId) -> Vec<u8> {
    let mut key = Vec::with_capacity(MEMBERSHIP_LEN);
    key.extend_from_slice(&member_key(member));
    key.extend_from_slice(group.0.as_bytes());
    key
}

/// Prefix of a group's entries in the `members` tree limited to one kind.
pub(super) fn members_prefix_of_kind(group: GroupId, kind: u8) -> [u8; ID_LEN + 1] {
    let mut key = [0u8; ID_LEN + 1];
    key[..ID_LEN].copy_from_slice(group.0.as_bytes());
    key[ID_LEN] = kind;
    key
}

pub(super) fn uuid(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| {
        StoreError::Backend(format!("corrupt id of {} bytes in an index", bytes.len()))
    })
}

pub(super) fn number(bytes: &[u8]) -> Result<u32> {
    <[u8; 4]>::try_from(bytes)
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::Backend(format!("corrupt number of {} bytes", bytes.len())))
}

pub(super) fn number64(bytes: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Backend(format!("corrupt counter of {} bytes", bytes.len())))
}

fn corrupt_membership(key: &[u8]) -> StoreError {
    StoreError::Backend(format!("corrupt membership key of {} bytes", key.len()))
}

/// The member named by a `members` key.
pub(super) fn parse_members_key(key: &[u8]) -> Result<Member> {
    if key.len() != MEMBERSHIP_LEN {
        return Err(corrupt_membership(key));
    }
    let id = uuid(&key[ID_LEN + 1..])?;
    match key[ID_LEN] {
        KIND_USER => Ok(Member::User(UserId(id))),
        KIND_GROUP => Ok(Member::Group(GroupId(id))),
        _ => Err(corrupt_membership(key)),
    }
}

/// The group named by a `member_of` key.
pub(super) fn parse_member_of_key(key: &[u8]) -> Result<GroupId> {
    if key.len() != MEMBERSHIP_LEN {
        return Err(corrupt_membership(key));
    }
    Ok(GroupId(uuid(&key[MEMBER_LEN..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_keys_round_trip() {
        let g = GroupId(Uuid::new_v4());
        let u = Member::User(UserId(Uuid::new_v4()));
        let c = Member::Group(GroupId(Uuid::new_v4()));
        for m in [u, c] {
            assert_eq!(parse_members_key(&members_key(g, m)).ok(), Some(m));
            assert_eq!(parse_member_of_key(&member_of_key(m, g)).ok(), Some(g));
            assert!(member_of_key(m, g).starts_with(&member_key(m)));
            assert!(members_key(g, m).starts_with(&group_key(g)));
            assert_eq!(membership(g, m)[..], members_key(g, m)[..]);
            assert_eq!(reversed(&membership(g, m))[..], member_of_key(m, g)[..]);
        }
        assert!(members_key(g, c).starts_with(&members_prefix_of_kind(g, KIND_GROUP)));
        assert!(parse_members_key(b"short").is_err());
    }

    #[test]
    fn numbers_sort_numerically() {
        assert!(number_key(255) < number_key(256));
        assert!(number_key(2000) < number_key(65536));
        assert_eq!(number(&number_key(4242)).ok(), Some(4242));
    }
}
