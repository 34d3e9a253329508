//! Where a DN points in the tree (DESIGN.md section 3).
//!
//! The tree is fixed: the root DSE, `cn=subschema`, the base, `ou=users`
//! and `ou=groups` below it, and one entry per user and group. Pure
//! functions over DNs; whether a named user or group exists is the
//! caller's question for the store.

use super::dn::{Dn, Rdn};

/// What a DN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The root DSE (the empty DN).
    RootDse,
    /// `cn=subschema`.
    Subschema,
    /// The suffix itself.
    Base,
    /// `ou=users,<base>`.
    UsersOu,
    /// `ou=groups,<base>`.
    GroupsOu,
    /// `cn=<name>,ou=users,<base>` or `uid=<name>,ou=users,<base>`; the name
    /// as written in the DN (unescaped, case preserved).
    User(String),
    /// `cn=<name>,ou=groups,<base>`.
    Group(String),
    /// Under the base, but no entry can live there.
    Missing,
    /// Not under the base (nor the root DSE or subschema).
    Outside,
}

/// `ou=users,<base>`.
pub fn users_ou(base: &Dn) -> Dn {
    base.child("ou", "users")
}

/// `ou=groups,<base>`.
pub fn groups_ou(base: &Dn) -> Dn {
    base.child("ou", "groups")
}

/// `cn=<name>,ou=users,<base>`.
pub fn user_dn(base: &Dn, name: &str) -> Dn {
    base.descendant([Rdn::new("cn", name), Rdn::new("ou", "users")])
}

/// `cn=<name>,ou=groups,<base>`.
pub fn group_dn(base: &Dn, name: &str) -> Dn {
    base.descendant([Rdn::new("cn", name), Rdn::new("ou", "groups")])
}

/// `cn=subschema` (RFC 4512 §4.2), the subschema subentry of every entry.
pub fn subschema_dn() -> Dn {
    Dn::root().child("cn", "subschema")
}

/// The normalised RDNs `ou=users` / `ou=groups` (see `Dn::normalized`).
const USERS_RDN: &str = "ou=users";
const GROUPS_RDN: &str = "ou=groups";

/// Classifies `dn` relative to the suffix `base`.
pub fn classify(dn: &Dn, base: &Dn) -> Target {
    if dn.is_root() {
        return Target::RootDse;
    }
    if dn.normalized_str() == "cn=subschema" {
        return Target::Subschema;
    }
    let Some(rel) = dn.relative_to(base) else {
        return Target::Outside;
    };
    // The normalised form of the RDNs below the base, read without
    // copying: `,` separates RDNs there and `=` ends a type, as values
    // escape theirs.
    let (norm, suffix) = (dn.normalized_str(), base.normalized_str().len());
    let below = if base.is_root() {
        norm
    } else {
        norm.get(..norm.len().saturating_sub(suffix + 1))
            .unwrap_or("")
    };
    match rel {
        [] => Target::Base,
        [_] => match below {
            USERS_RDN => Target::UsersOu,
            GROUPS_RDN => Target::GroupsOu,
            _ => Target::Missing,
        },
        [leaf, _] => {
            let [ava] = leaf.avas.as_slice() else {
                return Target::Missing;
            };
            let Some((leaf_norm, ou)) = below.rsplit_once(',') else {
                return Target::Missing;
            };
            let ty = leaf_norm.split_once('=').map_or(leaf_norm, |(ty, _)| ty);
            match (ou, ty) {
                (USERS_RDN, "cn" | "uid") => Target::User(ava.value.to_string()),
                (GROUPS_RDN, "cn") => Target::Group(ava.value.to_string()),
                _ => Target::Missing,
            }
        }
        _ => Target::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    #[test]
    fn classify_everything() {
        let base = dn("dc=example,dc=com");
        let c = |s: &str| classify(&dn(s), &base);
        assert_eq!(c(""), Target::RootDse);
        assert_eq!(c("CN=Subschema"), Target::Subschema);
        assert_eq!(c("dc=Example, dc=COM"), Target::Base);
        assert_eq!(c("ou=Users,dc=example,dc=com"), Target::UsersOu);
        assert_eq!(c("ou=groups,dc=example,dc=com"), Target::GroupsOu);
        assert_eq!(
            c("cn=Alice,ou=users,dc=example,dc=com"),
            Target::User("Alice".into())
        );
        assert_eq!(
            c("UID = bob , ou=users,dc=example,dc=com"),
            Target::User("bob".into())
        );
        assert_eq!(
            c("commonName=bob,ou=users,dc=example,dc=com"),
            Target::User("bob".into())
        );
        assert_eq!(
            c(r"cn=ops\2cteam,ou=groups,dc=example,dc=com"),
            Target::Group("ops,team".into())
        );
        assert_eq!(c("uid=x,ou=groups,dc=example,dc=com"), Target::Missing);
        assert_eq!(c("sn=x,ou=users,dc=example,dc=com"), Target::Missing);
        assert_eq!(c("cn=x+sn=y,ou=users,dc=example,dc=com"), Target::Missing);
        assert_eq!(c("ou=other,dc=example,dc=com"), Target::Missing);
        assert_eq!(c("ou=users+cn=x,dc=example,dc=com"), Target::Missing);
        assert_eq!(c("cn=x,ou=users+cn=y,dc=example,dc=com"), Target::Missing);
        assert_eq!(
            c("uid=x,OU = USERS,dc=example,dc=com"),
            Target::User("x".into())
        );
        assert_eq!(c("cn=a,cn=b,ou=users,dc=example,dc=com"), Target::Missing);
        assert_eq!(c("cn=x,ou=people,dc=example,dc=com"), Target::Missing);
        assert_eq!(c("dc=com"), Target::Outside);
        assert_eq!(c("cn=alice,ou=users,dc=other,dc=com"), Target::Outside);
        assert_eq!(c("cn=subschema,dc=example,dc=com"), Target::Missing);
    }

    #[test]
    fn helpers() {
        let base = dn("dc=example,dc=com");
        assert_eq!(
            user_dn(&base, "alice").to_string(),
            "cn=alice,ou=users,dc=example,dc=com"
        );
        assert_eq!(
            group_dn(&base, "a,b").to_string(),
            r"cn=a\,b,ou=groups,dc=example,dc=com"
        );
        assert_eq!(
            classify(&group_dn(&base, "a,b"), &base),
            Target::Group("a,b".into())
        );
        assert_eq!(users_ou(&base).to_string(), "ou=users,dc=example,dc=com");
        assert_eq!(groups_ou(&base).to_string(), "ou=groups,dc=example,dc=com");
        assert_eq!(subschema_dn().to_string(), "cn=subschema");
    }
}
