//! The benchmark dataset, defined once and written two ways: into a running
//! Portcullis through its admin socket (`seed`), and as an LDIF for
//! OpenLDAP's `slapadd` (`ldif`), so both servers hold the same directory.
//!
//! Users `<prefix>00001…` (inetOrgPerson + posixAccount, a display name,
//! mail); groups `group001…`, of which `group001` holds the first
//! `big_group_size` users and every other group `small_group_size` users
//! spread round-robin; the first `passwords` users and two service
//! accounts in the search group, `bench-search` and `bench-service`, have
//! the bench password (bench-service's is `{SSHA}` in the LDIF, see
//! SERVICE_USER).
//! In the LDIF, users `passwords+1 … passwords+ssha_passwords` carry an
//! `{SSHA}` hash of the same password, a cheap-hash reference point that
//! Portcullis (which stores only argon2id) has no equivalent of: in
//! Portcullis those users get the argon2id password like the others.
//!
//! `seed --totp-users N --totp-seed FILE` also gives the N users after those
//! (Portcullis only; they have no password in the LDIF) the bench password
//! and a TOTP device, and writes their secrets to FILE for `run --workload
//! bind-totp`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine;
use clap::Args;
use portcullis::admin::socket::{socket_path, AdminClient};
use portcullis::admin::{AdminError, AdminRequest, Password};
use sha1::{Digest, Sha1};

/// The service account the search workloads bind as.
pub const SEARCH_USER: &str = "bench-search";
/// The service account web-service binds as on every new connection. It
/// reads like bench-search (the search group), but its LDIF hash is
/// `{SSHA}`, so slapd is not charged an argon2 verification per bind (with
/// an argon2 service account it would be slower still); Portcullis, which
/// stores nothing else, holds argon2id for it.
pub const SERVICE_USER: &str = "bench-service";

#[derive(Args, Debug, Clone)]
pub struct Dataset {
    /// Number of users.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Users are `<prefix><5-digit number from 1>`.
    #[arg(long, default_value = "user")]
    pub user_prefix: String,
    /// Number of groups (`group001` …), the big one included.
    #[arg(long, default_value_t = 50)]
    pub groups: usize,
    /// Members of `group001`: the first N users.
    #[arg(long, default_value_t = 500)]
    pub big_group_size: usize,
    /// Members of each other group.
    #[arg(long, default_value_t = 20)]
    pub small_group_size: usize,
    /// Users (from the first) that get the bench password.
    #[arg(long, default_value_t = 200)]
    pub passwords: usize,
    /// LDIF only: the next N users get an {SSHA} hash (Portcullis: argon2id).
    #[arg(long, default_value_t = 200)]
    pub ssha_passwords: usize,
    /// The password of every bench user.
    #[arg(long, default_value = "Bench-Passw0rd")]
    pub password: String,
    /// Base DN (Portcullis serves `dc=example,dc=com` unless configured).
    #[arg(long, default_value = "dc=example,dc=com")]
    pub base_dn: String,
    /// The group whose members may search the whole tree in Portcullis.
    #[arg(long, default_value = "ldap-search")]
    pub search_group: String,
}

/// The TOTP users of `seed` (Portcullis only).
#[derive(Args, Debug, Clone, Default)]
pub struct TotpSeed {
    /// Users after the password users (`--passwords` + `--ssha-passwords`)
    /// that get the bench password and a TOTP device, for bind-totp.
    #[arg(long, default_value_t = 0)]
    pub totp_users: usize,
    /// Where their secrets go, one JSON line per user:
    /// `{"username","password","totp_secret_base32"}` (mode 0600; the
    /// secrets are real). Required with --totp-users.
    #[arg(long)]
    pub totp_seed: Option<PathBuf>,
}

/// One line of the TOTP seed file, as `run --workload bind-totp` reads it.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TotpSeedLine {
    pub username: String,
    pub password: String,
    pub totp_secret_base32: String,
}

impl Dataset {
    pub fn username(&self, i: usize) -> String {
        format!("{}{:05}", self.user_prefix, i)
    }

    pub fn group_name(&self, j: usize) -> String {
        format!("group{j:03}")
    }

    fn full_name(&self, i: usize) -> String {
        format!("Bench {}", self.username(i))
    }

    fn email(&self, i: usize) -> String {
        format!("{}@example.com", self.username(i))
    }

    /// Whether user `i` (from 1) has a password in Portcullis.
    fn has_password(&self, i: usize, totp: &TotpSeed) -> bool {
        i <= self.passwords + self.ssha_passwords + totp.totp_users
    }

    /// The users that get a TOTP device in Portcullis (numbers from 1).
    fn totp_range(&self, totp: &TotpSeed) -> std::ops::RangeInclusive<usize> {
        let first = self.passwords + self.ssha_passwords + 1;
        first..=first + totp.totp_users - 1
    }

    /// Members of group `j` (from 1), as user numbers.
    pub fn members(&self, j: usize) -> Vec<usize> {
        if j == 1 {
            return (1..=self.big_group_size.min(self.users)).collect();
        }
        let small = self.groups.saturating_sub(1).max(1);
        let span = (small * self.small_group_size).min(self.users);
        (1..=span).filter(|i| (i - 1) % small == j - 2).collect()
    }

    /// Groups of user `i`, as group numbers.
    fn groups_of(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        if i <= self.big_group_size && self.groups >= 1 {
            out.push(1);
        }
        let small = self.groups.saturating_sub(1);
        if small > 0 && i <= small * self.small_group_size {
            out.push(2 + (i - 1) % small);
        }
        out
    }

    fn user_dn(&self, name: &str) -> String {
        format!("cn={name},ou=users,{}", self.base_dn)
    }

    fn group_dn(&self, name: &str) -> String {
        format!("cn={name},ou=groups,{}", self.base_dn)
    }
}

/// Loads the dataset into a running Portcullis through one admin socket
/// connection. Users and groups that already exist are left as they are,
/// so an interrupted seed can be resumed (TOTP users get a new device each
/// time; the seed file holds the newest secrets, and any device's code
/// binds).
pub fn seed(data_dir: &Path, d: &Dataset, totp: &TotpSeed) -> Result<(), String> {
    let totp_file = match (totp.totp_users, &totp.totp_seed) {
        (0, _) => None,
        (_, None) => return Err("--totp-users needs --totp-seed FILE".into()),
        (n, Some(path)) => {
            if *d.totp_range(totp).end() > d.users {
                return Err(format!(
                    "--totp-users {n}: users {}..={} do not exist with --users {}",
                    d.totp_range(totp).start(),
                    d.totp_range(totp).end(),
                    d.users
                ));
            }
            Some(path)
        }
    };
    let socket = socket_path(data_dir);
    let mut client = AdminClient::connect(&socket)
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    let started = Instant::now();
    let mut request = |req: AdminRequest| -> Result<serde_json::Value, String> {
        let op = req.op();
        match client.call(&req) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(AdminError::AlreadyExists(_))) => Ok(serde_json::Value::Null),
            Ok(Err(e)) => Err(format!("{op}: {e}")),
            Err(e) => Err(format!("{op}: admin socket: {e}")),
        }
    };
    let mut call = |req: AdminRequest| request(req).map(|_| ());
    let password = || Some(Password::new(d.password.clone()));

    call(AdminRequest::UserAdd {
        username: SEARCH_USER.into(),
        full_name: Some("Bench search account".into()),
        email: None,
        password: password(),
    })?;
    call(AdminRequest::GroupAddMember {
        group: d.search_group.clone(),
        user: SEARCH_USER.into(),
    })?;
    call(AdminRequest::UserAdd {
        username: SERVICE_USER.into(),
        full_name: Some("Bench service account".into()),
        email: None,
        password: password(),
    })?;
    call(AdminRequest::GroupAddMember {
        group: d.search_group.clone(),
        user: SERVICE_USER.into(),
    })?;
    for i in 1..=d.users {
        call(AdminRequest::UserAdd {
            username: d.username(i),
            full_name: Some(d.full_name(i)),
            email: Some(d.email(i)),
            password: if d.has_password(i, totp) {
                password()
            } else {
                None
            },
        })?;
        if i % 5000 == 0 {
            eprintln!(
                "seed: {i} users after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    for j in 1..=d.groups {
        call(AdminRequest::GroupAdd {
            name: d.group_name(j),
            description: Some(format!("Bench group {j}")),
        })?;
        for i in d.members(j) {
            call(AdminRequest::GroupAddMember {
                group: d.group_name(j),
                user: d.username(i),
            })?;
        }
    }
    if let Some(path) = totp_file {
        let mut lines = String::new();
        for i in d.totp_range(totp) {
            let username = d.username(i);
            let device = request(AdminRequest::MfaTotpAdd {
                username: username.clone(),
                digits: 6,
                label: Some("bench".into()),
            })?;
            let secret = device["secret"]
                .as_str()
                .ok_or("mfa_totp_add: no secret in the answer")?;
            let line = TotpSeedLine {
                username,
                password: d.password.clone(),
                totp_secret_base32: secret.to_string(),
            };
            lines.push_str(&serde_json::to_string(&line).map_err(|e| e.to_string())?);
            lines.push('\n');
        }
        write_private(path, lines.as_bytes())?;
        eprintln!(
            "seed: TOTP devices for {} users, secrets in {}",
            totp.totp_users,
            path.display()
        );
    }
    eprintln!(
        "seed: {} users, {} groups in {:.1} s",
        d.users,
        d.groups,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// An argon2id PHC string of `password` with the server's default costs
/// (m=19456 KiB, t=2, p=1) and a random salt.
pub fn argon2id_phc(password: &str) -> Result<String, String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let params = argon2::Params::new(19456, 2, 1, None).map_err(|e| e.to_string())?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    hasher
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// `{SSHA}` of `password`: base64(SHA1(password ‖ salt) ‖ salt).
pub fn ssha(password: &str) -> String {
    use rand::RngCore;
    let mut salt = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut h = Sha1::new();
    h.update(password.as_bytes());
    h.update(salt);
    let mut bytes = h.finalize().to_vec();
    bytes.extend_from_slice(&salt);
    format!(
        "{{SSHA}}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Writes the dataset as LDIF for slapadd. One argon2id hash (one salt) is
/// computed and reused for every user with a password: the cost of a
/// verification is the same, and hashing 400 times would only slow the
/// generation down.
pub fn write_ldif(out: &mut impl Write, d: &Dataset) -> Result<(), String> {
    let argon2 = format!("{{ARGON2}}{}", argon2id_phc(&d.password)?);
    let ssha = ssha(&d.password);
    let w = |out: &mut dyn Write, s: String| out.write_all(s.as_bytes()).map_err(|e| e.to_string());
    let base = &d.base_dn;
    let dc = base
        .split(',')
        .next()
        .and_then(|rdn| rdn.strip_prefix("dc="))
        .ok_or("the base DN must start with dc=")?;
    w(
        out,
        format!(
            "dn: {base}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
             o: {dc}\ndc: {dc}\n\n\
             dn: ou=users,{base}\nobjectClass: top\nobjectClass: organizationalUnit\nou: users\n\n\
             dn: ou=groups,{base}\nobjectClass: top\nobjectClass: organizationalUnit\nou: groups\n\n"
        ),
    )?;
    // The search account, as in Portcullis.
    let search_dn = d.user_dn(SEARCH_USER);
    w(
        out,
        user_ldif(
            &search_dn,
            SEARCH_USER,
            "Bench search account",
            None,
            1999,
            &[d.group_dn(&d.search_group)],
            Some(&argon2),
        ),
    )?;
    let service_dn = d.user_dn(SERVICE_USER);
    w(
        out,
        user_ldif(
            &service_dn,
            SERVICE_USER,
            "Bench service account",
            None,
            1998,
            &[d.group_dn(&d.search_group)],
            Some(&ssha),
        ),
    )?;
    for i in 1..=d.users {
        let name = d.username(i);
        let member_of: Vec<String> = d
            .groups_of(i)
            .into_iter()
            .map(|j| d.group_dn(&d.group_name(j)))
            .collect();
        let hash = if i <= d.passwords {
            Some(argon2.as_str())
        } else if i <= d.passwords + d.ssha_passwords {
            Some(ssha.as_str())
        } else {
            None
        };
        w(
            out,
            user_ldif(
                &d.user_dn(&name),
                &name,
                &d.full_name(i),
                Some(&d.email(i)),
                // Portcullis allocates from 2000 (admin) and bench-search;
                // the numbers only need to be unique here.
                2001 + i as u32,
                &member_of,
                hash,
            ),
        )?;
    }
    let mut groups: Vec<(String, Vec<String>, Vec<String>, u32)> = Vec::new();
    groups.push((
        d.search_group.clone(),
        vec![search_dn, service_dn],
        vec![SEARCH_USER.to_string(), SERVICE_USER.to_string()],
        3999,
    ));
    for j in 1..=d.groups {
        let members = d.members(j);
        groups.push((
            d.group_name(j),
            members.iter().map(|&i| d.user_dn(&d.username(i))).collect(),
            members.iter().map(|&i| d.username(i)).collect(),
            4000 + j as u32,
        ));
    }
    for (name, member_dns, uids, gid) in groups {
        let mut s = format!(
            "dn: {dn}\nobjectClass: top\nobjectClass: groupOfNames\nobjectClass: posixGroup\n\
             cn: {name}\ngidNumber: {gid}\ndescription: Bench group {name}\n",
            dn = d.group_dn(&name)
        );
        for m in member_dns {
            s.push_str(&format!("member: {m}\n"));
        }
        for u in uids {
            s.push_str(&format!("memberUid: {u}\n"));
        }
        s.push('\n');
        w(out, s)?;
    }
    Ok(())
}

fn user_ldif(
    dn: &str,
    name: &str,
    full_name: &str,
    mail: Option<&str>,
    number: u32,
    member_of: &[String],
    hash: Option<&str>,
) -> String {
    let sn = full_name.split_whitespace().last().unwrap_or(name);
    let mut s = format!(
        "dn: {dn}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
         objectClass: inetOrgPerson\nobjectClass: posixAccount\ncn: {name}\nuid: {name}\n\
         sn: {sn}\ndisplayName: {full_name}\n"
    );
    if let Some(mail) = mail {
        s.push_str(&format!("mail: {mail}\n"));
    }
    for g in member_of {
        s.push_str(&format!("memberOf: {g}\n"));
    }
    s.push_str(&format!(
        "uidNumber: {number}\ngidNumber: {number}\nhomeDirectory: /home/{name}\n\
         loginShell: /bin/bash\n"
    ));
    if let Some(h) = hash {
        s.push_str(&format!("userPassword: {h}\n"));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        d: Dataset,
    }

    fn dataset(args: &[&str]) -> Dataset {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        Wrap::parse_from(all).d
    }

    #[test]
    fn memberships_agree_both_ways() {
        let d = dataset(&[
            "--users",
            "1000",
            "--groups",
            "5",
            "--small-group-size",
            "3",
        ]);
        assert_eq!(d.members(1).len(), 500);
        for j in 2..=5 {
            assert_eq!(d.members(j).len(), 3, "group {j}");
        }
        for i in 1..=1000 {
            for j in d.groups_of(i) {
                assert!(d.members(j).contains(&i), "user {i} group {j}");
            }
        }
        let total: usize = (1..=5).map(|j| d.members(j).len()).sum();
        let back: usize = (1..=1000).map(|i| d.groups_of(i).len()).sum();
        assert_eq!(total, back);
    }

    #[test]
    fn totp_users_follow_the_password_users_and_have_a_password() {
        let d = dataset(&["--passwords", "10", "--ssha-passwords", "5"]);
        let totp = TotpSeed {
            totp_users: 3,
            totp_seed: None,
        };
        assert_eq!(d.totp_range(&totp), 16..=18);
        assert!(d.has_password(18, &totp));
        assert!(!d.has_password(19, &totp));
        assert!(!d.has_password(16, &TotpSeed::default()));
        // the seed refuses TOTP users without a file, before connecting
        let e = seed(Path::new("/nonexistent"), &d, &totp).expect_err("no file");
        assert!(e.contains("--totp-seed"), "{e}");
    }

    #[test]
    fn ssha_has_salt_and_prefix() {
        let h = ssha("pw");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.strip_prefix("{SSHA}").expect("prefix"))
            .expect("base64");
        assert_eq!(raw.len(), 28);
    }
}
