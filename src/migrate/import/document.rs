//! A JSON backup read as a stream: the top-level object's fields are
//! kept in memory, except the users, which are handed over one at a time
//! as they are parsed. So the document is never held whole, whatever its
//! size, and memory holds one user at a time besides the rest (groups,
//! settings, counters, the server key).
//!
//! The fields may come in any order. Our export writes `format` and
//! `version` before `users`: then a document that is not a backup, or is
//! newer than this build, is refused before its first user is read. In
//! another order they are checked once the document has been read, still
//! before the caller writes anything (the users went to the caller, not
//! to the store). Everything but the users and groups is read as a
//! [`serde_json::Value`] and then as a [`Backup`], so what a field means
//! (its type, its default, whether it is required) is decided once, by
//! [`Backup`]'s own `Deserialize`.
//!
//! Bounds instead of the whole document's [`MAX_JSON_BACKUP`]: each user
//! may take [`MAX_BACKUP_USER`] bytes of the document, and everything
//! outside the users, which stays in memory, [`MAX_JSON_BACKUP`] (both
//! counted as the document is read, up to 64 KiB ahead of the parser).

use super::{ImportError, MAX_JSON_BACKUP};
use crate::migrate::{self, Backup, BackupGroup, BackupUser};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;
use std::io::{self, BufReader, Read};

/// Largest user of a streamed backup (bytes of the document), so one
/// element cannot take the memory the streaming saves.
pub const MAX_BACKUP_USER: u64 = 16 << 20;

/// Bytes read ahead of the parser; the bounds are counted as they are
/// read, so they hold to within this.
const READ_AHEAD: usize = 64 << 10;

/// Refuses a document that is not a backup this build reads (its
/// `format` and `version`).
pub(super) fn check_header(format: &str, version: u32) -> Result<(), ImportError> {
    if format != migrate::BACKUP_FORMAT {
        return Err(ImportError::Json(format!(
            "not a portcullis backup (format {format:?})"
        )));
    }
    if version > migrate::BACKUP_VERSION {
        return Err(ImportError::Json(format!(
            "backup version {version} is newer than the {} this build reads",
            migrate::BACKUP_VERSION
        )));
    }
    Ok(())
}

/// Reads a backup document from `reader`, handing each user to `user` in
/// the document's order; answers the rest ([`Backup::users`] empty),
/// checked with [`check_header`]. An error of `user` stops the reading
/// and is answered as it is.
pub(super) fn read(
    reader: impl Read,
    user: &mut dyn FnMut(BackupUser) -> Result<(), ImportError>,
) -> Result<Backup, ImportError> {
    let budget = Budget {
        left: Cell::new(MAX_JSON_BACKUP),
        what: Cell::new(Part::Outside),
    };
    let mut failed = None;
    // serde_json reads a byte at a time: from a buffer of its own, not
    // through the caller's reader (a `dyn` call a byte).
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(
        READ_AHEAD,
        Metered {
            inner: reader,
            budget: &budget,
        },
    ));
    let read = Document {
        user,
        failed: &mut failed,
        budget: &budget,
    }
    .deserialize(&mut de)
    .and_then(|backup| de.end().map(|()| backup));
    if let Some(e) = failed {
        return Err(e);
    }
    let backup = read.map_err(|e| ImportError::Json(e.to_string()))?;
    check_header(&backup.format, backup.version)?;
    Ok(backup)
}

/// What the bytes being read belong to, for the bound they count against.
#[derive(Clone, Copy)]
enum Part {
    Outside,
    User,
}

/// Bytes the document may still take: of the current user's element
/// while one is read, else of what is kept outside the users.
struct Budget {
    left: Cell<u64>,
    what: Cell<Part>,
}

impl Budget {
    /// Counts the bytes of one user from here.
    fn enter_user(&self) -> u64 {
        self.what.set(Part::User);
        self.left.replace(MAX_BACKUP_USER)
    }

    /// Back outside the users, with `outside` bytes left.
    fn leave_user(&self, outside: u64) {
        self.what.set(Part::Outside);
        self.left.set(outside);
    }
}

/// The reader, counting what it hands on against the [`Budget`].
struct Metered<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.left.get();
        if left == 0 {
            return Err(io::Error::other(match self.budget.what.get() {
                Part::User => {
                    format!("a user of the backup is larger than {MAX_BACKUP_USER} bytes")
                }
                Part::Outside => {
                    format!("the backup without its users is larger than {MAX_JSON_BACKUP} bytes")
                }
            }));
        }
        let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.budget.left.set(left - n as u64);
        Ok(n)
    }
}

/// The top-level object.
struct Document<'a> {
    user: &'a mut dyn FnMut(BackupUser) -> Result<(), ImportError>,
    /// The caller's error that stopped the reading, answered instead of
    /// the parser's.
    failed: &'a mut Option<ImportError>,
    budget: &'a Budget,
}

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!("duplicate field `{key}`"))
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = Backup;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Backup, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = Backup;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a portcullis backup (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Backup, A::Error> {
        let mut rest = Map::new();
        let mut users = false;
        let mut groups: Option<Vec<BackupGroup>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "users" if users => return Err(duplicate(&key)),
                "users" => {
                    // Refused before the first user when the header came
                    // first, as our export writes it.
                    if let (Some(format), Some(version)) = (
                        rest.get("format").and_then(Value::as_str),
                        rest.get("version").and_then(Value::as_u64),
                    ) {
                        let version = u32::try_from(version).unwrap_or(u32::MAX);
                        if let Err(e) = check_header(format, version) {
                            *self.failed = Some(e);
                            return Err(de::Error::custom("refused"));
                        }
                    }
                    map.next_value_seed(Users {
                        user: &mut *self.user,
                        failed: &mut *self.failed,
                        budget: self.budget,
                    })?;
                    users = true;
                }
                "groups" if groups.is_some() => return Err(duplicate(&key)),
                "groups" => groups = Some(map.next_value()?),
                _ => {
                    let value: Value = map.next_value()?;
                    if rest.contains_key(&key) {
                        return Err(duplicate(&key));
                    }
                    rest.insert(key, value);
                }
            }
        }
        // Present but empty, so that a missing one is missing for
        // `Backup` too.
        for (key, present) in [("users", users), ("groups", groups.is_some())] {
            if present {
                rest.insert(key.into(), Value::Array(Vec::new()));
            }
        }
        let mut backup: Backup =
            serde_json::from_value(Value::Object(rest)).map_err(de::Error::custom)?;
        backup.groups = groups.unwrap_or_default();
        Ok(backup)
    }
}

/// The `users` array, each element handed over as it is read.
struct Users<'a> {
    user: &'a mut dyn FnMut(BackupUser) -> Result<(), ImportError>,
    failed: &'a mut Option<ImportError>,
    budget: &'a Budget,
}

impl<'de> DeserializeSeed<'de> for Users<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Users<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let outside = self.budget.enter_user();
            let next = seq.next_element::<BackupUser>();
            self.budget.leave_user(outside);
            let Some(u) = next? else {
                return Ok(());
            };
            if let Err(e) = (self.user)(u) {
                *self.failed = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(doc: &str) -> Result<(Backup, Vec<String>), ImportError> {
        let mut names = Vec::new();
        let backup = read(doc.as_bytes(), &mut |u| {
            names.push(u.user.username);
            Ok(())
        })?;
        Ok((backup, names))
    }

    const USER: &str = r#"{"id":"6f1c7d2e-8a51-4a07-9a3e-0c1b2d3e4f50","username":"old",
        "full_name":null,"email":null,"uid_number":2000,"gid_number":2000,"disabled":false,
        "attrs":{},"created":1,"modified":1,"pwd_changed":null,"cred_generation":0}"#;

    fn doc(fields: &[(&str, &str)]) -> String {
        let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
        format!("{{{}}}", fields.join(", "))
    }

    fn header<'a>() -> Vec<(&'a str, &'a str)> {
        vec![
            ("format", "\"portcullis-backup\""),
            ("version", "2"),
            ("created", "1"),
        ]
    }

    #[test]
    fn fields_in_any_order() {
        let users = format!("[{USER}]");
        let tail = [
            ("groups", "[]"),
            ("settings", r#"{"a": "b"}"#),
            ("counters", r#"{"next_uid": 2001, "next_gid": 4000}"#),
        ];
        let mut ours = header();
        ours.push(("users", &users));
        ours.extend(tail);
        let mut theirs: Vec<_> = tail.to_vec();
        theirs.push(("users", &users));
        theirs.extend(header());
        for fields in [ours, theirs] {
            let (backup, names) = names(&doc(&fields)).expect("read");
            assert_eq!(names, ["old"]);
            assert!(backup.users.is_empty());
            assert_eq!(backup.settings.get("a").map(String::as_str), Some("b"));
            assert_eq!(backup.counters.next_uid, 2001);
        }
    }

    #[test]
    fn refusals() {
        let users = format!("[{USER}]");
        let tail = [
            ("users", users.as_str()),
            ("groups", "[]"),
            ("settings", "{}"),
            ("counters", r#"{"next_uid": 2001, "next_gid": 4000}"#),
        ];
        let with = |first: &[(&str, &str)], last: &[(&str, &str)]| {
            let mut all = first.to_vec();
            all.extend(tail);
            all.extend(last);
            doc(&all)
        };
        let fail = |text: &str| names(text).expect_err(text).to_string();
        // Refused before the first user when the header comes first.
        let newer = [("format", "\"portcullis-backup\""), ("version", "3")];
        let err = read(with(&newer, &[("created", "1")]).as_bytes(), &mut |_| {
            panic!("no user is read")
        })
        .expect_err("newer");
        assert!(err.to_string().contains("version 3 is newer"), "{err}");
        // Else once it is read.
        let late = fail(&with(&[("created", "1")], &newer));
        assert!(late.contains("version 3 is newer"), "{late}");
        let other = fail(&with(
            &[("format", "\"x\""), ("version", "2"), ("created", "1")],
            &[],
        ));
        assert!(other.contains("not a portcullis backup"), "{other}");
        let missing = fail(&with(&header()[..2], &[]));
        assert!(missing.contains("missing field `created`"), "{missing}");
        let twice = fail(&with(&header(), &[("users", "[]")]));
        assert!(twice.contains("duplicate field `users`"), "{twice}");
        let twice = fail(&with(&header(), &[("version", "2")]));
        assert!(twice.contains("duplicate field `version`"), "{twice}");
        let full = with(&header(), &[]);
        for cut in [1, full.len() / 2, full.len() - 1] {
            assert!(names(&full[..cut]).is_err(), "{}", &full[..cut]);
        }
        assert!(fail(&format!("{full} x")).contains("trailing"));
        assert!(names(&format!("{full}\n")).is_ok());
        // The caller's error is answered as it is.
        let err = read(full.as_bytes(), &mut |_| {
            Err(ImportError::Refused("no".into()))
        })
        .expect_err("stopped");
        assert!(matches!(err, ImportError::Refused(_)), "{err:?}");
    }

    #[test]
    fn a_user_larger_than_the_bound_is_refused() {
        let big = USER.replace(
            r#""attrs":{}"#,
            &format!(
                r#""attrs":{{"x":"{}"}}"#,
                "a".repeat(MAX_BACKUP_USER as usize + 2 * READ_AHEAD)
            ),
        );
        let mut fields = header();
        let users = format!("[{USER}, {big}]");
        fields.push(("users", &users));
        let mut seen = 0;
        let err = read(doc(&fields).as_bytes(), &mut |_| {
            seen += 1;
            Ok(())
        })
        .expect_err("too large");
        assert_eq!(seen, 1);
        assert!(
            err.to_string().contains("a user of the backup is larger"),
            "{err}"
        );
    }
}
