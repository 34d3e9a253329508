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
use crate::ldif::{self, Ldif, LdifEntry, SkippedRecord};
use crate::store::import::BatchMember;
use std::collections::HashMap;
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
        self.names
            .get(crate::domain::folded_name(name).as_ref())
            .map(|&(i, _)| i)
    }

    /// Admits entry `e` (its DN parsed as `dn`), planned as `name` with
    /// `number`, at the next plan index: one per entry admitted before.
    /// A name seen before refuses it (an error); a number seen before is
    /// dropped so a new one is allocated (a warning).
    fn admit(
        &mut self,
        kind: &Kind,
        e: &LdifEntry,
        dn: &Dn,
        name: &str,
        number: &mut Option<u32>,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let next = self.names.len();
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
        self.dns.insert(dn.normalized(), next);
        true
    }
}

/// Plans an import of the entries of an LDIF file. Pure: reads nothing
/// but its arguments.
pub fn plan(entries: &[LdifEntry], opts: &ImportOptions) -> ImportPlan {
    let mut planner = Planner::new(opts);
    let mut users = Vec::new();
    for e in entries {
        users.extend(planner.entry(e));
    }
    let mut p = planner.finish();
    p.users = users;
    p
}

/// The planner, one entry at a time: a user is final as soon as it is
/// admitted (duplicates are refused in file order), so the caller may
/// write it away instead of keeping it ([`super::import_streamed`]); groups
/// stay until [`Planner::finish`] resolves their members. What it keeps
/// per user is its name, DN, numbers and mail (for duplicates and member
/// references), not the planned record.
pub struct Planner<'o> {
    opts: &'o ImportOptions,
    p: ImportPlan,
    raw_members: Vec<Vec<RawMember>>,
    users: Admitted,
    groups: Admitted,
    emails: HashMap<String, String>,
    /// Username of each admitted user, by plan index.
    user_names: Vec<String>,
    /// The highest uidNumber kept from the source.
    max_uid: Option<u32>,
    /// Problems already looked at by [`Planner::has_errors`], and whether
    /// one of them was an error.
    problems_seen: usize,
    errors: bool,
    /// Member references from which they are resolved on two threads
    /// ([`PARALLEL_REFS`]; a test lowers it).
    two_threads_from: usize,
}

impl<'o> Planner<'o> {
    pub fn new(opts: &'o ImportOptions) -> Planner<'o> {
        Planner {
            opts,
            p: ImportPlan::default(),
            raw_members: Vec::new(),
            users: Admitted::default(),
            groups: Admitted::default(),
            emails: HashMap::new(),
            user_names: Vec::new(),
            max_uid: None,
            problems_seen: 0,
            errors: false,
            two_threads_from: PARALLEL_REFS,
        }
    }

    /// Whether an error was found so far (the plan will have errors).
    /// Each problem is looked at once.
    pub fn has_errors(&mut self) -> bool {
        let new = &self.p.problems[self.problems_seen..];
        self.errors |= new.iter().any(|p| p.severity == Severity::Error);
        self.problems_seen = self.p.problems.len();
        self.errors
    }

    /// Users admitted so far.
    pub fn users(&self) -> usize {
        self.user_names.len()
    }

    /// The highest uidNumber of an admitted user that keeps its number.
    pub fn max_uid(&self) -> Option<u32> {
        self.max_uid
    }

    /// Plans one entry; an admitted user is returned to the caller.
    pub fn entry(&mut self, e: &LdifEntry) -> Option<PlannedUser> {
        let p = &mut self.p;
        let classes = object_classes(e);
        let is_user = classes.iter().any(|c| USER_CLASSES.contains(&c.as_str()));
        let is_group = classes.iter().any(|c| GROUP_CLASSES.contains(&c.as_str()));
        let Ok(dn) = Dn::parse(&e.dn) else {
            problem(
                &mut p.problems,
                e.line,
                &e.dn,
                Severity::Error,
                "the DN is not a valid RFC 4514 DN; entry skipped".into(),
            );
            return None;
        };
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
            let mut u = plan_user(e, self.opts, &mut p.problems)?;
            let name = u.username.clone();
            if !self.users.admit(
                &USER_KIND,
                e,
                &dn,
                &name,
                &mut u.uid_number,
                &mut p.problems,
            ) {
                return None;
            }
            if let Some(mail) = &u.email {
                let k = mail.to_lowercase();
                if let Some(owner) = self.emails.get(&k) {
                    problem(
                        &mut p.problems,
                        e.line,
                        &e.dn,
                        Severity::Warning,
                        format!("mail {mail} is also {owner}'s; dropped"),
                    );
                    u.email = None;
                } else {
                    self.emails.insert(k, u.username.clone());
                }
            }
            self.max_uid = self.max_uid.max(u.uid_number);
            self.user_names.push(name);
            return Some(u);
        }
        if is_group {
            let (mut g, raw) = plan_group(e, &mut p.problems)?;
            let name = g.name.clone();
            if !self.groups.admit(
                &GROUP_KIND,
                e,
                &dn,
                &name,
                &mut g.gid_number,
                &mut p.problems,
            ) {
                return None;
            }
            p.groups.push(g);
            self.raw_members.push(raw);
            return None;
        }
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
        None
    }

    /// Notes a change record that is not imported.
    pub fn skipped_record(&mut self, s: &SkippedRecord) {
        self.p.problems.push(Problem {
            line: s.line,
            dn: s.dn.clone(),
            severity: Severity::Error,
            message: format!(
                "change record of type {} is not imported (only content and changetype: add are)",
                s.changetype
            ),
        });
    }

    /// The plan: groups with their members resolved and cycles dropped;
    /// `users` is left empty (the caller has them).
    pub fn finish(mut self) -> ImportPlan {
        let raw = std::mem::take(&mut self.raw_members);
        resolve_members(
            &mut self.p,
            raw,
            &self.user_names,
            (&self.users, &self.groups),
            self.two_threads_from,
        );
        drop_cycles(&mut self.p);
        self.p
    }
}

/// Member references from which [`Planner::finish`] resolves the groups
/// on two threads (a million-user file names some two million: 3 s on
/// one core, with the writer idle).
const PARALLEL_REFS: usize = 100_000;

/// Resolves the members of every planned group (`raw_members[i]` are
/// those of `p.groups[i]`), reporting those that match nothing or the
/// group itself. A member named twice (by `member` and `memberUid`, say)
/// is kept once, in the order first named; members are told apart by
/// their index among the admitted users or groups (names are unique in
/// each), and a name is copied only for a member kept. Many references
/// are resolved on two threads, each taking whole groups (the first
/// holding about half the references); the result is the same.
fn resolve_members(
    p: &mut ImportPlan,
    raw_members: Vec<Vec<RawMember>>,
    user_names: &[String],
    (users, groups): (&Admitted, &Admitted),
    two_threads_from: usize,
) {
    let refs: usize = raw_members.iter().map(Vec::len).sum();
    let planned = &p.groups;
    let group = |(gi, raw): (usize, Vec<RawMember>)| {
        resolve_group(gi, raw, planned, user_names, users, groups)
    };
    let resolved: Vec<_> = if refs < two_threads_from {
        raw_members.into_iter().enumerate().map(group).collect()
    } else {
        let mut first = Vec::new();
        let mut rest = raw_members.into_iter().enumerate();
        let mut taken = 0;
        while taken < refs / 2 {
            let Some(g) = rest.next() else { break };
            taken += g.1.len();
            first.push(g);
        }
        let rest: Vec<_> = rest.collect();
        std::thread::scope(|s| {
            let later = s.spawn(|| rest.into_iter().map(group).collect::<Vec<_>>());
            let mut resolved: Vec<_> = first.into_iter().map(group).collect();
            resolved.extend(
                later
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
            resolved
        })
    };
    for (g, (members, mut problems)) in p.groups.iter_mut().zip(resolved) {
        g.members = members;
        p.problems.append(&mut problems);
    }
}

/// The members of planned group `gi` (see [`resolve_members`]) and the
/// problems its references have.
fn resolve_group(
    gi: usize,
    raw: Vec<RawMember>,
    planned: &[PlannedGroup],
    user_names: &[String],
    users: &Admitted,
    groups: &Admitted,
) -> (Vec<BatchMember>, Vec<Problem>) {
    let mut seen = rustc_hash::FxHashSet::default();
    let mut members = Vec::new();
    let mut problems = Vec::new();
    for r in raw {
        let bad = match resolve(&r, users, groups) {
            Some(Resolved::Group(i)) if i == gi => "is the group itself",
            Some(m) => {
                if seen.insert(m) {
                    members.push(match m {
                        Resolved::User(i) => BatchMember::User(user_names[i].clone()),
                        Resolved::Group(i) => BatchMember::Group(planned[i].name.clone()),
                    });
                }
                continue;
            }
            None => "matches no imported user or group",
        };
        let (shown, line, kind) = match &r {
            RawMember::Dn(d, l) => (d, *l, "member"),
            RawMember::Uid(u, l) => (u, *l, "memberUid"),
        };
        problem(
            &mut problems,
            line,
            &planned[gi].source_dn,
            Severity::Error,
            format!("{kind} {shown:?} {bad}; dropped"),
        );
    }
    (members, problems)
}

/// A member reference resolved: the index of an admitted user or group.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Resolved {
    User(usize),
    Group(usize),
}

/// A member reference as an imported user or group: full DN first, then
/// the first RDN's value as a username or group name (the source tree's
/// layout does not matter).
fn resolve(r: &RawMember, users: &Admitted, groups: &Admitted) -> Option<Resolved> {
    match r {
        RawMember::Uid(uid, _) => users.index(uid).map(Resolved::User),
        RawMember::Dn(dn, _) => match Dn::parse(dn) {
            Err(_) => None,
            Ok(parsed) => {
                let n = parsed.normalized_str();
                if let Some(&i) = users.dns.get(n) {
                    Some(Resolved::User(i))
                } else if let Some(&i) = groups.dns.get(n) {
                    Some(Resolved::Group(i))
                } else {
                    // The first RDN's value as a name; `uid=` means
                    // a user when both kinds have that name.
                    parsed.rdn().and_then(|r| r.avas.first()).and_then(|a| {
                        match (users.index(&a.value), groups.index(&a.value)) {
                            (Some(i), None) => Some(Resolved::User(i)),
                            (None, Some(i)) => Some(Resolved::Group(i)),
                            (Some(i), Some(_)) if a.attr.eq_ignore_ascii_case("uid") => {
                                Some(Resolved::User(i))
                            }
                            (Some(_), Some(i)) => Some(Resolved::Group(i)),
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
    plan_ldif_with(ldif, opts, PARALLEL_REFS)
}

/// [`plan_ldif`] resolving the members on two threads however few there
/// are (it must find the same).
#[cfg(test)]
pub fn plan_ldif_on_two_threads(ldif: &Ldif, opts: &ImportOptions) -> ImportPlan {
    plan_ldif_with(ldif, opts, 0)
}

fn plan_ldif_with(ldif: &Ldif, opts: &ImportOptions, two_threads_from: usize) -> ImportPlan {
    let mut planner = Planner::new(opts);
    planner.two_threads_from = two_threads_from;
    let mut users = Vec::new();
    for e in &ldif.entries {
        users.extend(planner.entry(e));
    }
    for s in &ldif.skipped {
        planner.skipped_record(s);
    }
    let mut p = planner.finish();
    p.users = users;
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
