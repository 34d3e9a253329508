//! Human output of admin answers: short lines for changes, `key: value`
//! blocks for `show`, tables for `list`. Rendered from the typed views of
//! an [`AdminAnswer`]; the request adds what the operator typed (a key, a
//! member's name). `mfa` and `app-password` answers are rendered in
//! `cli::mfa`.
//!
//! Stored text goes through [`safe`], so a value cannot drive the terminal.

use super::mfa;
use crate::admin::view::{GroupChanged, GroupView, UserChanged, UserView};
use crate::admin::{AdminAnswer, AdminRequest};

/// The text `req`'s answer is shown as without `--json`.
pub(super) fn render(req: &AdminRequest, answer: &AdminAnswer) -> String {
    let text = match answer {
        AdminAnswer::User(user) => Some(render_user(user)),
        AdminAnswer::Users(users) => Some(render_users(users)),
        AdminAnswer::Group(group) => Some(render_group(group)),
        AdminAnswer::Groups(groups) => Some(render_groups(groups)),
        AdminAnswer::UserChanged(c) => user_changed(req, c).map(|line| format!("{line}\n")),
        AdminAnswer::GroupChanged(c) => group_changed(req, c).map(|line| format!("{line}\n")),
        AdminAnswer::TotpAdded(_)
        | AdminAnswer::StaticAdded(_)
        | AdminAnswer::Devices(_)
        | AdminAnswer::Removed(_)
        | AdminAnswer::AppPasswordAdded(_)
        | AdminAnswer::AppPasswords(_)
        | AdminAnswer::Policy(_) => mfa::render(req, answer),
        AdminAnswer::Sessions(list) => Some(render_sessions(list)),
    };
    text.unwrap_or_else(|| unexpected(answer))
}

fn render_sessions(list: &[crate::admin::view::SessionView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                text(&s.id),
                text(&s.kind),
                text(&s.username),
                text(&s.address),
                opt(s.created.as_deref()),
                opt(s.last_seen.as_deref()),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "USER", "ADDRESS", "SINCE", "LAST SEEN"],
        &rows,
    )
}

/// An answer that does not fit the request (which `AdminAnswer::from_json`
/// and `execute` never give): shown as its JSON document rather than as a
/// sentence that might not be true.
fn unexpected(answer: &AdminAnswer) -> String {
    let document = answer
        .to_json()
        .and_then(|doc| serde_json::to_string_pretty(&doc))
        .unwrap_or_default();
    document.lines().map(|line| safe(line) + "\n").collect()
}

/// Stored text for the terminal: control characters escaped, empty as `-`.
pub(super) fn text(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        safe(s)
    }
}

/// [`text`] of an optional value; `None` as `-`.
pub(super) fn opt(s: Option<&str>) -> String {
    s.map_or_else(|| "-".into(), text)
}

/// Escapes control characters, so a stored value cannot drive the terminal.
pub(super) fn safe(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Names joined by `, `; none as `-`.
fn names(list: &[String]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.iter().map(|n| safe(n)).collect::<Vec<_>>().join(", ")
    }
}

fn status(user: &UserView) -> &'static str {
    if user.disabled {
        "disabled"
    } else {
        "enabled"
    }
}

/// The line for a change of a user; `None` when `req` is not a user command.
fn user_changed(req: &AdminRequest, c: &UserChanged) -> Option<String> {
    let user = &c.user;
    let name = text(&user.username);
    Some(match req {
        AdminRequest::UserAdd { password, .. } => {
            let mut line = format!(
                "created user {name} (uidNumber {}, {})",
                user.uid_number,
                text(&user.dn)
            );
            if password.is_none() {
                line.push_str("; it has no password and cannot bind until `user passwd` sets one");
            }
            line
        }
        AdminRequest::UserPasswd { .. } => format!("changed the password of {name}"),
        AdminRequest::UserEnable { .. } | AdminRequest::UserDisable { .. } => {
            let was = if c.changed { "is now" } else { "was already" };
            format!("user {name} {was} {}", status(user))
        }
        AdminRequest::UserDelete { .. } => format!("deleted user {name}"),
        AdminRequest::UserSetAttr { key, .. } if c.changed => {
            format!("set {} of {name}", safe(key))
        }
        AdminRequest::UserSetAttr { key, .. } => {
            format!("{} of {name} already had that value", safe(key))
        }
        AdminRequest::UserUnsetAttr { key, .. } if c.changed => {
            format!("removed {} from {name}", safe(key))
        }
        AdminRequest::UserUnsetAttr { key, .. } => format!("{name} has no {}", safe(key)),
        _ => return None,
    })
}

/// The line for a change of a group; `None` when `req` is not a group
/// command.
fn group_changed(req: &AdminRequest, c: &GroupChanged) -> Option<String> {
    let group = &c.group;
    let name = text(&group.name);
    Some(match req {
        AdminRequest::GroupAdd { .. } => format!(
            "created group {name} (gidNumber {}, {})",
            group.gid_number,
            text(&group.dn)
        ),
        AdminRequest::GroupDelete { .. } => format!("deleted group {name}"),
        AdminRequest::GroupSetAttr { key, .. } if c.changed => {
            format!("set {} of group {name}", safe(key))
        }
        AdminRequest::GroupSetAttr { key, .. } => {
            format!("{} of group {name} already had that value", safe(key))
        }
        AdminRequest::GroupUnsetAttr { key, .. } if c.changed => {
            format!("removed {} from group {name}", safe(key))
        }
        AdminRequest::GroupUnsetAttr { key, .. } => {
            format!("group {name} has no {}", safe(key))
        }
        AdminRequest::GroupAddMember { user, .. } if c.changed => {
            format!("added {} to {name}", safe(user))
        }
        AdminRequest::GroupAddMember { user, .. } => {
            format!("{} already is a member of {name}", safe(user))
        }
        AdminRequest::GroupRemoveMember { user, .. } if c.changed => {
            format!("removed {} from {name}", safe(user))
        }
        AdminRequest::GroupRemoveMember { user, .. } => {
            format!("{} is not a member of {name}", safe(user))
        }
        AdminRequest::GroupAddChild { child, .. } if c.changed => {
            format!("group {} is now a member of {name}", safe(child))
        }
        AdminRequest::GroupAddChild { child, .. } => {
            format!("group {} already is a member of {name}", safe(child))
        }
        AdminRequest::GroupRemoveChild { child, .. } if c.changed => {
            format!("removed group {} from {name}", safe(child))
        }
        AdminRequest::GroupRemoveChild { child, .. } => {
            format!("group {} is not a member of {name}", safe(child))
        }
        _ => return None,
    })
}

fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{:<width$}  {v}\n", format!("{k}:")))
        .collect()
}

fn render_user(u: &UserView) -> String {
    let pwd_changed = match &u.pwd_changed {
        Some(t) => safe(t),
        None => "never (cannot bind)".into(),
    };
    let rows = [
        ("username", text(&u.username)),
        ("dn", text(&u.dn)),
        ("full name", opt(u.full_name.as_deref())),
        ("email", opt(u.email.as_deref())),
        ("uidNumber", u.uid_number.to_string()),
        ("gidNumber", u.gid_number.to_string()),
        ("status", status(u).to_string()),
        ("groups", names(&u.groups)),
        ("password set", pwd_changed),
        ("created", opt(u.created.as_deref())),
        ("modified", opt(u.modified.as_deref())),
        ("id", text(&u.id)),
    ];
    let mut out = fields(&rows);
    if !u.attrs.is_empty() {
        out.push_str("attributes:\n");
        let attrs: Vec<(String, String)> =
            u.attrs.iter().map(|(k, v)| (safe(k), safe(v))).collect();
        let width = attrs
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (k, v) in attrs {
            out.push_str(&format!(
                "  {:<width$}  {v}\n",
                format!("{k}:"),
                width = width + 1
            ));
        }
    }
    out
}

fn render_group(g: &GroupView) -> String {
    fields(&[
        ("name", text(&g.name)),
        ("dn", text(&g.dn)),
        ("gidNumber", g.gid_number.to_string()),
        ("description", opt(g.description.as_deref())),
        ("members", names(&g.members)),
        ("child groups", names(&g.child_groups)),
        ("parent groups", names(&g.parent_groups)),
        ("created", opt(g.created.as_deref())),
        ("modified", opt(g.modified.as_deref())),
        ("id", text(&g.id)),
    ])
}

fn render_users(users: &[UserView]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                text(&u.username),
                u.uid_number.to_string(),
                opt(u.full_name.as_deref()),
                opt(u.email.as_deref()),
                status(u).to_string(),
            ]
        })
        .collect();
    table(&["USERNAME", "UID", "NAME", "EMAIL", "STATUS"], &rows)
}

fn render_groups(groups: &[GroupView]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                text(&g.name),
                g.gid_number.to_string(),
                g.members.len().to_string(),
                g.child_groups.len().to_string(),
                opt(g.description.as_deref()),
            ]
        })
        .collect();
    table(
        &["NAME", "GID", "MEMBERS", "CHILDREN", "DESCRIPTION"],
        &rows,
    )
}

/// Columns padded to their widest cell; the last column is not padded.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::view::Removed;

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn sample_user() -> UserView {
        UserView {
            id: s("00000000-0000-0000-0000-000000000001"),
            username: s("alice"),
            dn: s("cn=alice,ou=users,dc=example,dc=com"),
            full_name: Some(s("Alice Liddell")),
            email: None,
            uid_number: 2001,
            gid_number: 2001,
            disabled: false,
            groups: vec![s("admins"), s("staff")],
            attrs: [(s("loginShell"), s("/bin/zsh"))].into(),
            created: Some(s("2025-01-01T00:00:00Z")),
            modified: Some(s("2025-01-02T00:00:00Z")),
            pwd_changed: None,
        }
    }

    fn sample_group(name: &str) -> GroupView {
        GroupView {
            id: s("00000000-0000-0000-0000-000000000002"),
            name: s(name),
            dn: format!("cn={name},ou=groups,dc=example,dc=com"),
            gid_number: 4001,
            description: None,
            members: vec![],
            child_groups: vec![],
            parent_groups: vec![],
            created: None,
            modified: None,
        }
    }

    #[test]
    fn human_output() {
        let bobby = UserView {
            username: s("bobby-tables"),
            uid_number: 2002,
            full_name: None,
            email: Some(s("b@x.org")),
            disabled: true,
            ..sample_user()
        };
        let list = AdminAnswer::Users(vec![sample_user(), bobby]);
        let out = render(&AdminRequest::UserList, &list);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("USERNAME      UID   NAME"), "{out}");
        assert!(
            lines[1].starts_with("alice         2001  Alice Liddell"),
            "{out}"
        );
        assert!(
            lines[2].contains("b@x.org") && lines[2].ends_with("disabled"),
            "{out}"
        );

        let show = render(
            &AdminRequest::UserShow {
                username: s("alice"),
            },
            &AdminAnswer::User(sample_user()),
        );
        assert!(show.contains("groups:        admins, staff"), "{show}");
        assert!(show.contains("email:         -"), "{show}");
        assert!(show.contains("never"), "{show}");
        assert!(show.contains("loginShell:  /bin/zsh"), "{show}");

        let disabled = AdminAnswer::UserChanged(UserChanged::new(
            true,
            UserView {
                disabled: true,
                ..sample_user()
            },
        ));
        assert_eq!(
            render(
                &AdminRequest::UserDisable {
                    username: s("alice")
                },
                &disabled
            ),
            "user alice is now disabled\n"
        );
        let same = AdminAnswer::GroupChanged(GroupChanged::new(false, sample_group("staff")));
        assert_eq!(
            render(
                &AdminRequest::GroupAddMember {
                    group: s("staff"),
                    user: s("alice")
                },
                &same
            ),
            "alice already is a member of staff\n"
        );
        // Stored text cannot drive the terminal.
        let evil = AdminAnswer::GroupChanged(GroupChanged::new(true, sample_group("x\u{1b}[2Jy")));
        let out = render(
            &AdminRequest::GroupAdd {
                name: s("x"),
                description: None,
            },
            &evil,
        );
        assert!(!out.contains('\u{1b}'), "{out}");
    }

    #[test]
    fn an_answer_that_does_not_fit_is_shown_as_json() {
        let answer = AdminAnswer::Removed(Removed::new(s("x\u{9b}y")));
        let out = render(&AdminRequest::UserList, &answer);
        assert!(out.starts_with("{\n"), "{out}");
        assert!(out.contains(r#""id": "x\u{9b}y""#), "{out}");
        assert!(!out.contains('\u{9b}'), "{out}");
    }
}
