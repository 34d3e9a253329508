//! The data-model rules every backend enforces before it writes a record.

use super::{Result, StoreError};

const MAX_NAME: usize = 64;
const MAX_EMAIL: usize = 254;
const MAX_FULL_NAME: usize = 256;
const MAX_DESCRIPTION: usize = 1024;

/// A user or group name: 1–64 characters of `[A-Za-z0-9._-]`, starting with
/// a letter or digit. Names become RDN values and POSIX account names, so
/// nothing that needs escaping in either is allowed.
pub fn name(what: &str, name: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(StoreError::Invalid(format!(
            "invalid {what} name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.chars().count() > MAX_NAME {
        return invalid("it is longer than 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return invalid("it must start with a letter or a digit");
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(&format!(
            "{c:?} is not allowed (letters, digits, '.', '_' and '-' are)"
        ));
    }
    Ok(())
}

/// An email address: at most 254 characters, exactly one `@` with something
/// on both sides, no whitespace or control characters. Deliverability is the
/// mail system's business, not ours.
pub fn email(email: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(StoreError::Invalid(format!(
            "invalid email {email:?}: {why}"
        )))
    };
    if email.chars().count() > MAX_EMAIL {
        return invalid("it is longer than 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("it contains whitespace or control characters");
    }
    match email.split_once('@') {
        Some((local, domain)) if !domain.contains('@') => {
            if local.is_empty() || domain.is_empty() {
                return invalid("it needs text on both sides of '@'");
            }
        }
        _ => return invalid("it must contain exactly one '@'"),
    }
    Ok(())
}

/// A full name (displayName): 1–256 characters, no control characters.
pub fn full_name(full_name: &str) -> Result<()> {
    text("full name", full_name, MAX_FULL_NAME)
}

/// A group description: 1–1024 characters, no control characters.
pub fn description(description: &str) -> Result<()> {
    text("description", description, MAX_DESCRIPTION)
}

/// Free text served as an LDAP directoryString, which cannot be empty
/// (RFC 4517 section 3.3.6).
fn text(what: &str, value: &str, max: usize) -> Result<()> {
    let invalid = |why: String| Err(StoreError::Invalid(format!("invalid {what}: {why}")));
    if value.is_empty() {
        return invalid("it is empty (leave it unset instead)".into());
    }
    if value.chars().count() > max {
        return invalid(format!("it is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return invalid("it contains control characters".into());
    }
    Ok(())
}

/// Longest path (loginShell, homeDirectory).
const MAX_PATH: usize = 255;
/// Longest telephone number.
const MAX_TELEPHONE: usize = 32;
/// Longest value of another attribute kept in a user's `attrs`.
const MAX_ATTR_TEXT: usize = 1024;

/// One value of an attribute kept in a user's `attrs` (set with
/// `set-attr`, an LDAP add or modify, or imported), checked against its
/// syntax. NSS clients (nslcd, SSSD) copy loginShell, homeDirectory and
/// gecos into passwd lines, so a `:` or a line break there would forge
/// fields: those are paths or text without `:`.
pub fn attribute(name: &str, value: &str) -> Result<()> {
    match name {
        "loginShell" | "homeDirectory" => path(name, value),
        "telephoneNumber" | "mobile" => telephone(name, value),
        "gecos" if value.contains(':') => Err(StoreError::Invalid(format!(
            "invalid {name}: ':' is not allowed (it separates passwd fields)"
        ))),
        _ => text(name, value, MAX_ATTR_TEXT),
    }
}

/// An absolute path: `/` then letters, digits and `._+-/`, at most 255
/// characters (no spaces, `:`, or control characters).
pub fn path(what: &str, value: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(StoreError::Invalid(format!(
            "invalid {what} {value:?}: {why}"
        )))
    };
    if !value.starts_with('/') {
        return invalid("it must be an absolute path");
    }
    if value.len() > MAX_PATH {
        return invalid("it is longer than 255 characters");
    }
    if let Some(c) = value
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '+' | '-')))
    {
        return invalid(&format!(
            "{c:?} is not allowed (letters, digits and '/._+-' are)"
        ));
    }
    Ok(())
}

/// A telephone number (RFC 4517 §3.3.31: a PrintableString, ideally in
/// E.123 form): at most 32 characters of letters, digits, space and
/// `'()+,-./:?`, with at least one digit.
pub fn telephone(what: &str, value: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(StoreError::Invalid(format!(
            "invalid {what} {value:?}: {why}"
        )))
    };
    if value.chars().count() > MAX_TELEPHONE {
        return invalid("it is longer than 32 characters");
    }
    if !value.chars().any(|c| c.is_ascii_digit()) {
        return invalid("it has no digit");
    }
    if let Some(c) = value.chars().find(|&c| {
        !(c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | '\'' | '(' | ')' | '+' | ',' | '-' | '.' | '/' | ':' | '?'
            ))
    }) {
        return invalid(&format!("{c:?} is not allowed in a telephone number"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "alice", "Bob.Smith", "x_y-z", "0day", &"a".repeat(64)] {
            assert!(name("user", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "_x",
            "a b",
            "é",
            "a,b",
            "a=b",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(name("user", bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn emails() {
        for ok in ["a@b", "alice@example.com", "Ünï@例え.jp"] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in ["", "nobody", "a@b@c", "@b", "a@", "a b@c", "a@b\n", &long] {
            assert!(matches!(email(bad), Err(StoreError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn texts() {
        assert!(full_name("Alice Liddell").is_ok());
        assert!(full_name(&"x".repeat(256)).is_ok());
        assert!(full_name(&"x".repeat(257)).is_err());
        assert!(full_name("tab\there").is_err());
        assert!(full_name("").is_err());
        assert!(description("Everyone who may read the tree").is_ok());
    }

    #[test]
    fn attribute_values() {
        for (name, ok) in [
            ("loginShell", "/bin/bash"),
            ("loginShell", "/usr/local/bin/fish"),
            ("homeDirectory", "/home/alice.smith"),
            ("telephoneNumber", "+49 30 1234-567"),
            ("mobile", "(555) 010-9999"),
            ("gecos", "Alice Liddell,Room 1"),
            ("title", "Chief Rabbit-Hole Officer"),
        ] {
            assert!(attribute(name, ok).is_ok(), "{name}: {ok}");
        }
        for (name, bad) in [
            ("loginShell", "x:0:0"),
            ("loginShell", "bash"),
            ("loginShell", "/bin/sh\n/bin/evil"),
            ("loginShell", "/bin/my shell"),
            ("homeDirectory", "/home/a:b"),
            ("telephoneNumber", "call me"),
            ("telephoneNumber", "+1 555 <script>"),
            ("mobile", &"1".repeat(33)),
            ("gecos", "Alice:0:0"),
            ("title", "a\u{7}b"),
            ("title", ""),
        ] {
            assert!(
                matches!(attribute(name, bad), Err(StoreError::Invalid(_))),
                "{name}: {bad:?}"
            );
        }
    }
}
