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
}
