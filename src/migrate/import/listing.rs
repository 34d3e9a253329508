//! The dry run's listing: the plan as text or as one JSON document.
//!
//! The same renderers serve a plan held whole ([`ImportPlan::report`],
//! [`ImportPlan::to_json`]: a refused import, a dry run through the
//! running server) and [`dry_run`], which holds no user: each planned user
//! is rendered as soon as the planner admits it and spilled to a file,
//! because the listing opens with the counts, known only at the end. Only
//! the format that will be printed is made, and it is written to the
//! output as it is read back. So a dry run of a million users takes about
//! what the streamed import's planning takes (the groups, the names and
//! numbers the duplicate checks need), not the plan of every user and two
//! renderings of it (4.3 GiB at a million users).
//!
//! Both ways print the same bytes: the text line by line, and the JSON
//! document with its keys in name order at every level, as `serde_json`
//! printed the one `Value` (a sorted map) the listing used to be built as.

use super::stream::{read_planned, Planned, Spill};
use super::{
    ImportError, ImportOptions, ImportPlan, PlannedGroup, PlannedUser, Problem, Progress, Severity,
    SkippedEntry,
};
use crate::auth::legacy::StoredPassword;
use crate::store::import::BatchMember;
use serde::ser::{Error as _, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// Which rendering of the plan a dry run prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Listing {
    /// The report, one line per entry and problem.
    Text,
    /// One JSON document (`--json`).
    Json,
}

/// The text report's first lines: the counts, and the heading of the
/// users when some are `listed` (a streamed import lists none and says so).
fn head(w: &mut impl fmt::Write, plan: &ImportPlan, listed: usize, streamed: usize) -> fmt::Result {
    writeln!(
        w,
        "import plan: {} users, {} groups, {} entries skipped, {} problems",
        listed + streamed,
        plan.groups.len(),
        plan.skipped.len(),
        plan.problems.len()
    )?;
    if listed > 0 {
        writeln!(w, "\nusers:")?;
    }
    if streamed > 0 {
        writeln!(
            w,
            "\n{streamed} users not listed (a streamed import; --dry-run lists them)"
        )?;
    }
    Ok(())
}

/// One user's line of the text report. No secrets: a password shows its
/// scheme only.
fn user_line(w: &mut impl fmt::Write, u: &PlannedUser) -> fmt::Result {
    let num = |n: Option<u32>| n.map_or_else(|| "new".to_string(), |n| n.to_string());
    writeln!(
        w,
        "  line {:>6}  {}  uidNumber {} gidNumber {}  password {}{}  ({})",
        u.line,
        u.username,
        num(u.uid_number),
        u.gid_number
            .map_or_else(|| "= uidNumber".to_string(), |n| n.to_string()),
        u.password
            .as_ref()
            .map_or_else(|| "none".to_string(), StoredPassword::kind),
        if u.disabled { "  disabled" } else { "" },
        u.source_dn
    )
}

/// The text report after the users: groups, skipped entries, problems.
fn tail(w: &mut impl fmt::Write, plan: &ImportPlan) -> fmt::Result {
    if !plan.groups.is_empty() {
        writeln!(w, "\ngroups:")?;
    }
    for g in &plan.groups {
        write!(w, "  line {:>6}  {}  gidNumber ", g.line, g.name)?;
        match g.gid_number {
            Some(n) => write!(w, "{n}")?,
            None => w.write_str("new")?,
        }
        w.write_str("  members: ")?;
        if g.members.is_empty() {
            w.write_str("none")?;
        }
        for (i, m) in g.members.iter().enumerate() {
            if i > 0 {
                w.write_str(", ")?;
            }
            match m {
                BatchMember::User(u) => w.write_str(u)?,
                BatchMember::Group(g) => write!(w, "group {g}")?,
            }
        }
        writeln!(w, "  ({})", g.source_dn)?;
    }
    if !plan.skipped.is_empty() {
        writeln!(w, "\nskipped:")?;
    }
    for k in &plan.skipped {
        writeln!(w, "  line {:>6}  {}: {}", k.line, k.dn, k.reason)?;
    }
    if !plan.problems.is_empty() {
        writeln!(w, "\nproblems:")?;
    }
    for p in &plan.problems {
        let sev = match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(w, "  line {:>6}  {sev:<7}  {}: {}", p.line, p.dn, p.message)?;
    }
    Ok(())
}

/// The text report of a plan held whole (see [`ImportPlan::report`]).
pub(super) fn report(plan: &ImportPlan) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = head(&mut s, plan, plan.users.len(), plan.users_streamed);
    for u in &plan.users {
        let _ = user_line(&mut s, u);
    }
    let _ = tail(&mut s, plan);
    s
}

fn user_json(u: &PlannedUser) -> Value {
    serde_json::json!({
        "line": u.line, "dn": u.source_dn, "username": u.username,
        "full_name": u.full_name, "email": u.email,
        "uid_number": u.uid_number, "gid_number": u.gid_number,
        "disabled": u.disabled, "attrs": u.attrs,
        "password": u.password.as_ref().map(StoredPassword::kind),
    })
}

fn group_json(g: &PlannedGroup) -> Value {
    serde_json::json!({
        "line": g.line, "dn": g.source_dn, "name": g.name,
        "gid_number": g.gid_number, "description": g.description,
        "members": g.members.iter().map(|m| match m {
            BatchMember::User(u) => serde_json::json!({"user": u}),
            BatchMember::Group(g) => serde_json::json!({"group": g}),
        }).collect::<Vec<_>>(),
    })
}

/// A list rendered one element at a time, each as a `Value` (keys in
/// name order), so no list is held rendered whole.
struct Each<'a, T> {
    items: &'a [T],
    json: fn(&T) -> serde_json::Result<Value>,
}

impl<T> Serialize for Each<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for item in self.items {
            seq.serialize_element(&(self.json)(item).map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

/// The JSON document; its fields are declared in name order, the order
/// the document has always had.
#[derive(Serialize)]
struct Document<'a, U> {
    groups: Each<'a, PlannedGroup>,
    problems: Each<'a, Problem>,
    skipped: Each<'a, SkippedEntry>,
    users: U,
}

impl<'a, U> Document<'a, U> {
    fn new(plan: &'a ImportPlan, users: U) -> Document<'a, U> {
        Document {
            groups: Each {
                items: &plan.groups,
                json: |g| Ok(group_json(g)),
            },
            problems: Each {
                items: &plan.problems,
                json: |p| serde_json::to_value(p),
            },
            skipped: Each {
                items: &plan.skipped,
                json: |k| serde_json::to_value(k),
            },
            users,
        }
    }
}

/// The JSON document of a plan held whole (see [`ImportPlan::to_json`]).
pub(super) fn to_json(plan: &ImportPlan) -> serde_json::Result<Value> {
    let users = Each {
        items: &plan.users,
        json: |u| Ok(user_json(u)),
    };
    serde_json::to_value(Document::new(plan, users))
}

/// The users of a dry run's JSON document, read back from the spill (one
/// compact `Value` a line) as they are written out.
struct Spilled<R> {
    count: usize,
    lines: RefCell<R>,
}

impl<R: BufRead> Serialize for Spilled<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut lines = self.lines.borrow_mut();
        let mut seq = s.serialize_seq(Some(self.count))?;
        let mut line = String::new();
        for _ in 0..self.count {
            line.clear();
            lines
                .read_line(&mut line)
                .map_err(|e| S::Error::custom(format!("reading the dry run's spill: {e}")))?;
            let user: Value = serde_json::from_str(&line)
                .map_err(|e| S::Error::custom(format!("reading the dry run's spill: {e}")))?;
            seq.serialize_element(&user)?;
        }
        seq.end()
    }
}

/// Plans the LDIF read from `input` and writes the listing to `out`,
/// changing nothing anywhere. Users are rendered in `listing`'s format as
/// they are planned and spilled to a file in `spill_dir` (private to the
/// server's user: it holds names and attributes, no password hashes; mode
/// 0600, removed afterwards). Nothing is written to `out` before the
/// whole input is planned, so an input that cannot be read prints nothing.
pub fn dry_run(
    input: impl BufRead,
    opts: &ImportOptions,
    listing: Listing,
    spill_dir: &Path,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ImportError> {
    let (spill, file) = Spill::create(spill_dir)?;
    let mut spilled = BufWriter::with_capacity(1 << 20, file);
    let mut line = String::new();
    let Planned { plan, users, .. } = read_planned(input, opts, progress, &mut |u, _| {
        line.clear();
        match listing {
            Listing::Text => {
                let _ = user_line(&mut line, &u);
            }
            Listing::Json => {
                line = user_json(&u).to_string();
                line.push('\n');
            }
        }
        spilled
            .write_all(line.as_bytes())
            .map_err(|e| spill.error(e))
    })?;
    spilled.flush().map_err(|e| spill.error(e))?;
    drop(spilled);

    let read = File::open(spill.path()).map_err(|e| spill.error(e))?;
    let mut read = BufReader::with_capacity(1 << 20, read);
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let written = match listing {
        Listing::Text => {
            let mut text = String::new();
            let _ = head(&mut text, &plan, users, 0);
            out.write_all(text.as_bytes())
                .and_then(|()| io::copy(&mut read, &mut out).map(drop))
                .map_err(ImportError::Output)?;
            text.clear();
            let _ = tail(&mut text, &plan);
            out.write_all(text.as_bytes())
        }
        Listing::Json => {
            let users = Spilled {
                count: users,
                lines: RefCell::new(read),
            };
            serde_json::to_writer_pretty(&mut out, &Document::new(&plan, users))
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        }
    };
    written
        .and_then(|()| out.flush())
        .map_err(ImportError::Output)
}
