//! The whole file → an [`ImportPlan`]: entries classified and mapped
//! (see `entry`), duplicate names and numbers found, member references
//! resolved whatever the source tree's DNs were, and member edges that
//! would close a cycle of nested groups dropped.

use super::entry::{object_classes, plan_group, plan_user, RawMember, GROUP_CLASSES, USER_CLASSES};
use super::{
    problem, ImportError, ImportOptions, ImportPlan, PlannedGroup, PlannedUser, Problem, Progress,
    Severity, SkippedEntry, PROGRESS_EVERY,
};
use crate::directory::dn::Dn;
use crate::ldif::{self, Ldif, LdifEntry};
use crate::store::import::BatchMember;
use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;

/// What the two kinds of planned entries call their name and number, for
/// the problems [`Admitted::admit`] reports.
struct Kind {
    name: &'static str,
    number: &'static str,
    owner: &'static str,
}

const USER_KIND: Kind = Kind {
    name: "username",
    number: "uidNumber",
    owner: "",
};
const GROUP_KIND: Kind = Kind {
    name: "group name",
    number: "gidNumber",
    owner: "group ",
};

/// The planned entries of one kind (users or groups) by name, number and
/// DN: finds duplicates while planning, then resolves member references.
#[derive(Default)]
struct Admitted {
    /// Lowercase name → (index in the plan, line of the entry).
    names: HashMap<String, (usize, usize)>,
    /// uidNumber or gidNumber → name of its holder.
    numbers: HashMap<u32, String>,
    /// Normalised DN → index in the plan.
    dns: HashMap<String, usize>,
}

impl Admitted {
    fn index(&self, name: &str) -> Option<usize> {
        self.names.get(&name.to_ascii_lowercase()).map(|&(i, _)| i)
    }

    /// Admits entry `e`, planned as `name` with `number`, at plan index
    /// `next`. A name seen before refuses it (an error); a number seen
    /// before is dropped so a new one is allocated (a warning).
    fn admit(
        &mut self,
        kind: &Kind,
        e: &LdifEntry,
        name: &str,
        number: &mut Option<u32>,
        next: usize,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let key = name.to_ascii_lowercase();
        if let Some(&(_, first)) = self.names.get(&key) {
            problem(
                problems,
                e.line,
                &e.dn,
                Severity::Error,
                format!(
                    "duplicate {} {name} (first at line {first}); entry skipped",
                    kind.name
                ),
            );
            return false;
        }
        if let Some(n) = *number {
            if let Some(owner) = self.numbers.get(&n) {
                problem(
                    problems,
                    e.line,
                    &e.dn,
                    Severity::Warning,
                    format!(
                        "{} {n} is also {}{owner}'s; a new one is allocated",
                        kind.number, kind.owner
                    ),
                );
                *number = None;
            } else {
                self.numbers.insert(n, name.to_string());
            }
        }
        self.names.insert(key, (next, e.line));
        if let Ok(dn) = Dn::parse(&e.dn) {
            self.dns.insert(dn.normalized(), next);
        }
        true
    }
}

/// Plans an import of the entries of an LDIF file. Pure: reads nothing
/// but its arguments.
pub fn plan(entries: &[LdifEntry], opts: &ImportOptions) -> ImportPlan {
    let mut p = ImportPlan::default();
    let mut raw_members: Vec<Vec<RawMember>> = Vec::new();
    let mut users = Admitted::default();
    let mut groups = Admitted::default();
    let mut emails: HashMap<String, String> = HashMap::new();

    for e in entries {
        let classes = object_classes(e);
        let is_user = classes.iter().any(|c| USER_CLASSES.contains(&c.as_str()));
        let is_group = classes.iter().any(|c| GROUP_CLASSES.contains(&c.as_str()));
        if Dn::parse(&e.dn).is_err() {
            problem(
                &mut p.problems,
                e.line,
                &e.dn,
                Severity::Error,
                "the DN is not a valid RFC 4514 DN; entry skipped".into(),
            );
            continue;
        }
        if is_user {
            if is_group {
                problem(
                    &mut p.problems,
                    e.line,
                    &e.dn,
                    Severity::Warning,
                    "entry has both user and group object classes; imported as a user".into(),
                );
            }
            let Some(mut u) = plan_user(e, opts, &mut p.problems) else {
                continue;
            };
            let name = u.username.clone();
            if !users.admit(
                &USER_KIND,
                e,
                &name,
                &mut u.uid_number,
                p.users.len(),
                &mut p.problems,
            ) {
                continue;
            }
            if let Some(mail) = &u.email {
                let k = mail.to_lowercase();
                if let Some(owner) = emails.get(&k) {
                    problem(
                        &mut p.problems,
                        e.line,
                        &e.dn,
                        Severity::Warning,
                        format!("mail {mail} is also {owner}'s; dropped"),
                    );
                    u.email = None;
                } else {
                    emails.insert(k, u.username.clone());
                }
            }
            p.users.push(u);
        } else if is_group {
            let Some((mut g, raw)) = plan_group(e, &mut p.problems) else {
                continue;
            };
            let name = g.name.clone();
            if !groups.admit(
                &GROUP_KIND,
                e,
                &name,
                &mut g.gid_number,
                p.groups.len(),
                &mut p.problems,
            ) {
                continue;
            }
            p.groups.push(g);
            raw_members.push(raw);
        } else {
            let shown = if classes.is_empty() {
                "no objectClass".to_string()
            } else {
                format!("objectClass {}", classes.join(", "))
            };
            p.skipped.push(SkippedEntry {
                line: e.line,
                dn: e.dn.clone(),
                reason: format!("not a user or group ({shown})"),
            });
        }
    }

    resolve_members(&mut p, raw_members, &users, &groups);
    drop_cycles(&mut p);
    p
}

/// Resolves the members of every planned group (`raw_members[i]` are
/// those of `p.groups[i]`), reporting those that match nothing or the
/// group itself.
fn resolve_members(
    p: &mut ImportPlan,
    raw_members: Vec<Vec<RawMember>>,
    users: &Admitted,
    groups: &Admitted,
) {
    for (gi, raw) in raw_members.into_iter().enumerate() {
        let (group_dn, group_name) = (p.groups[gi].source_dn.clone(), p.groups[gi].name.clone());
        let mut seen = BTreeSet::new();
        let mut members = Vec::new();
        for r in raw {
            let resolved = resolve(&r, &p.users, &p.groups, users, groups);
            let (shown, line, kind) = match &r {
                RawMember::Dn(d, l) => (d.clone(), *l, "member"),
                RawMember::Uid(u, l) => (u.clone(), *l, "memberUid"),
            };
            match resolved {
                Some(BatchMember::Group(ref g)) if g.eq_ignore_ascii_case(&group_name) => {
                    problem(
                        &mut p.problems,
                        line,
                        &group_dn,
                        Severity::Error,
                        format!("{kind} {shown:?} is the group itself; dropped"),
                    );
                }
                Some(m) => {
                    if seen.insert(m.clone()) {
                        members.push(m);
                    }
                }
                None => problem(
                    &mut p.problems,
                    line,
                    &group_dn,
                    Severity::Error,
                    format!("{kind} {shown:?} matches no imported user or group; dropped"),
                ),
            }
        }
        p.groups[gi].members = members;
    }
}

/// A member reference as an imported user or group: full DN first, then
/// the first RDN's value as a username or group name (the source tree's
/// layout does not matter).
fn resolve(
    r: &RawMember,
    planned_users: &[PlannedUser],
    planned_groups: &[PlannedGroup],
    users: &Admitted,
    groups: &Admitted,
) -> Option<BatchMember> {
    let user = |i: usize| BatchMember::User(planned_users[i].username.clone());
    let group = |i: usize| BatchMember::Group(planned_groups[i].name.clone());
    match r {
        RawMember::Uid(uid, _) => users.index(uid).map(user),
        RawMember::Dn(dn, _) => match Dn::parse(dn) {
            Err(_) => None,
            Ok(parsed) => {
                let n = parsed.normalized();
                if let Some(&i) = users.dns.get(&n) {
                    Some(user(i))
                } else if let Some(&i) = groups.dns.get(&n) {
                    Some(group(i))
                } else {
                    // The first RDN's value as a name; `uid=` means
                    // a user when both kinds have that name.
                    parsed.rdn().and_then(|r| r.avas.first()).and_then(|a| {
                        match (users.index(&a.value), groups.index(&a.value)) {
                            (Some(i), None) => Some(user(i)),
                            (None, Some(i)) => Some(group(i)),
                            (Some(i), Some(_)) if a.attr.eq_ignore_ascii_case("uid") => {
                                Some(user(i))
                            }
                            (Some(_), Some(i)) => Some(group(i)),
                            (None, None) => None,
                        }
                    })
                }
            }
        },
    }
}

/// Drops member edges between imported groups that close a cycle,
/// reporting each.
fn drop_cycles(p: &mut ImportPlan) {
    let index: HashMap<String, usize> = p
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.to_ascii_lowercase(), i))
        .collect();
    // state: 0 unvisited, 1 on the path, 2 done.
    let mut state = vec![0u8; p.groups.len()];
    for start in 0..p.groups.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (g, ref mut next)) = stack.last_mut() {
            let members = &p.groups[g].members;
            if *next >= members.len() {
                state[g] = 2;
                stack.pop();
                continue;
            }
            let m = *next;
            *next += 1;
            let BatchMember::Group(child) = &members[m] else {
                continue;
            };
            let Some(&c) = index.get(&child.to_ascii_lowercase()) else {
                continue;
            };
            match state[c] {
                1 => {
                    let child = child.clone();
                    let (line, dn) = (p.groups[g].line, p.groups[g].source_dn.clone());
                    p.groups[g].members.remove(m);
                    if let Some(top) = stack.last_mut() {
                        top.1 -= 1;
                    }
                    problem(
                        &mut p.problems,
                        line,
                        &dn,
                        Severity::Error,
                        format!(
                            "member group {child} would close a cycle of nested groups; dropped"
                        ),
                    );
                }
                0 => {
                    state[c] = 1;
                    stack.push((c, 0));
                }
                _ => {}
            }
        }
    }
}

/// [`plan`] for a whole file, with its skipped change records reported.
pub fn plan_ldif(ldif: &Ldif, opts: &ImportOptions) -> ImportPlan {
    let mut p = plan(&ldif.entries, opts);
    for s in &ldif.skipped {
        p.problems.push(Problem {
            line: s.line,
            dn: s.dn.clone(),
            severity: Severity::Error,
            message: format!(
                "change record of type {} is not imported (only content and changetype: add are)",
                s.changetype
            ),
        });
    }
    p.problems.sort_by_key(|pr| pr.line);
    p
}

/// Reads an LDIF stream and plans its import, reporting progress every
/// [`PROGRESS_EVERY`] entries.
pub fn read_and_plan(
    input: impl BufRead,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportPlan, ImportError> {
    let ldif = ldif::read_with_progress(input, &mut |n| {
        if n % PROGRESS_EVERY == 0 {
            progress(Progress {
                stage: "reading",
                done: n,
                total: None,
            });
        }
    })?;
    Ok(plan_ldif(&ldif, opts))
}
