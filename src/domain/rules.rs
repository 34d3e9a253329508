//! The rules of the data model that every backend enforces, written once
//! here: how numbers are allocated, when nesting groups closes a cycle,
//! what a merge import may change on an existing user. A backend calls
//! them inside its own transaction (so the check and the write are one
//! atomic step); the rules themselves know no backend.

use std::collections::{HashMap, HashSet};

use super::{validate, Group, GroupId, Result, StoreError, Timestamp, User};

/// The next uidNumber or gidNumber: the counter's value (never below
/// `first`), moved past every number `taken` reports as used by a user or
/// a group. Numbers only go up and are never handed out twice, even after
/// deletes. Answers the number and the counter's next value; `exhausted`
/// is the error past `u32::MAX`.
pub fn allocate_number<E>(
    counter: u32,
    first: u32,
    mut taken: impl FnMut(u32) -> Result<bool, E>,
    exhausted: impl Fn() -> E,
) -> Result<(u32, u32), E> {
    let mut n = counter.max(first);
    while taken(n)? {
        n = n.checked_add(1).ok_or_else(&exhausted)?;
    }
    let next = n.checked_add(1).ok_or_else(&exhausted)?;
    Ok((n, next))
}

/// Breadth-first walk from `start` over `next`, visiting each node once
/// (so a cycle ends the walk); the nodes in visiting order, `start` first.
/// Adding group `child` to `parent` closes a cycle exactly when `parent`
/// is among the walk from `child` over child groups.
pub fn walk<E>(
    start: GroupId,
    mut next: impl FnMut(GroupId) -> Result<Vec<GroupId>, E>,
) -> Result<Vec<GroupId>, E> {
    let mut seen = HashSet::from([start]);
    let mut out = vec![start];
    let mut i = 0;
    while let Some(&g) = out.get(i) {
        i += 1;
        for n in next(g)? {
            if seen.insert(n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// A cycle among group → child-group edges (by lowercase name): the edge
/// `(parent, child)` that closes one, or `None`. Depth-first with colours,
/// iterative to bound the stack.
pub fn nesting_cycle(edges: &HashMap<String, HashSet<String>>) -> Option<(String, String)> {
    let children = |n: &str| -> Vec<&str> {
        edges
            .get(n)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    };
    let mut state: HashMap<&str, u8> = HashMap::new();
    for start in edges.keys() {
        if state.contains_key(start.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start.as_str(), children(start))];
        state.insert(start.as_str(), 1);
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            match next.pop() {
                Some(c) => match state.get(c) {
                    Some(1) => return Some((node.to_string(), c.to_string())),
                    Some(_) => {}
                    None => {
                        state.insert(c, 1);
                        stack.push((c, children(c)));
                    }
                },
                None => {
                    state.insert(node, 2);
                    stack.pop();
                }
            }
        }
    }
    None
}

/// The checks of a user update (`Backend::update_user`): the id, name,
/// uidNumber and credential generation never change through it, and the
/// email and full name keep their rules. Then the bookkeeping every backend
/// does: a changed `disabled` moves the credential generation (so caches
/// keyed on it drop the old status), and `modified` becomes `now`.
pub fn checked_user_update(before: &User, after: &mut User, now: Timestamp) -> Result<()> {
    let immutable = |what: &str| {
        Err(StoreError::Invalid(format!(
            "the {what} of user {} cannot be changed",
            before.username
        )))
    };
    if after.id != before.id {
        return immutable("id");
    }
    if after.username != before.username {
        return immutable("username");
    }
    if after.uid_number != before.uid_number {
        return immutable("uidNumber");
    }
    if after.cred_generation != before.cred_generation {
        return immutable("credential generation");
    }
    if let Some(email) = &after.email {
        validate::email(email)?;
    }
    if let Some(full_name) = &after.full_name {
        validate::full_name(full_name)?;
    }
    if after.disabled != before.disabled {
        after.cred_generation = before.cred_generation.wrapping_add(1);
    }
    after.modified = now;
    Ok(())
}

/// A batch group whose name exists already (`Backend::apply_batch`): a
/// restore overwrites it (same id only), an import merges its description;
/// a given gidNumber must match. `Ok(None)` when nothing changes.
pub fn merged_group(
    existing: &Group,
    incoming: &Group,
    allocate_gid: bool,
    restore: bool,
    now: Timestamp,
) -> Result<Option<Group>> {
    let conflict = |msg: String| Err(StoreError::AlreadyExists(format!("import conflict: {msg}")));
    if restore && existing.id != incoming.id {
        return conflict(format!(
            "group {} already exists with another id; restore into a fresh data directory",
            incoming.name
        ));
    }
    if !allocate_gid && existing.gid_number != incoming.gid_number {
        return conflict(format!(
            "group {} exists with gidNumber {}, the import has {}",
            incoming.name, existing.gid_number, incoming.gid_number
        ));
    }
    let mut after = if restore {
        incoming.clone()
    } else {
        existing.clone()
    };
    if !restore && incoming.description.is_some() {
        after.description.clone_from(&incoming.description);
    }
    if after == *existing {
        return Ok(None);
    }
    if !restore {
        after.modified = now;
    }
    Ok(Some(after))
}

/// An existing user after a merge import: the import's name, email,
/// primary group and extra attributes where it gives them; everything
/// else (id, uidNumber, status, password, timestamps) as it was.
pub fn merged_user(existing: &User, incoming: &User) -> User {
    let mut u = existing.clone();
    if incoming.full_name.is_some() {
        u.full_name.clone_from(&incoming.full_name);
    }
    if incoming.email.is_some() {
        u.email.clone_from(&incoming.email);
    }
    if incoming.gid_number != 0 {
        u.gid_number = incoming.gid_number;
    }
    u.attrs.extend(
        incoming
            .attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn numbers_skip_what_is_taken_and_never_go_below_the_floor() {
        let taken = [2000u32, 2001, 2003];
        let alloc =
            |counter| allocate_number(counter, 2000, |n| Ok::<_, ()>(taken.contains(&n)), || ());
        assert_eq!(alloc(0), Ok((2002, 2003)));
        assert_eq!(alloc(2003), Ok((2004, 2005)));
        assert_eq!(
            allocate_number(u32::MAX, 2000, |_| Ok::<_, &str>(false), || "exhausted"),
            Err("exhausted")
        );
    }

    #[test]
    fn cycles_among_named_edges_are_found() {
        let edges = |list: &[(&str, &str)]| {
            let mut m: HashMap<String, HashSet<String>> = HashMap::new();
            for (p, c) in list {
                m.entry(p.to_string()).or_default().insert(c.to_string());
            }
            m
        };
        assert_eq!(nesting_cycle(&edges(&[("a", "b"), ("b", "c")])), None);
        assert!(nesting_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])).is_some());
        assert!(nesting_cycle(&edges(&[("a", "a")])).is_some());
    }

    #[test]
    fn a_walk_visits_each_group_once_even_around_a_cycle() {
        let (a, b, c) = (
            GroupId(Uuid::new_v4()),
            GroupId(Uuid::new_v4()),
            GroupId(Uuid::new_v4()),
        );
        let next = |g: GroupId| -> Result<Vec<GroupId>, ()> {
            Ok(if g == a {
                vec![b]
            } else if g == b {
                vec![c, a]
            } else {
                vec![a]
            })
        };
        assert_eq!(walk(a, next), Ok(vec![a, b, c]));
    }
}
