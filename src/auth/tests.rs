//! The bind decision against a temporary store: splitting, TOTP replay,
//! static tokens, app passwords, policies and throttling, with a fake clock.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::*;
use crate::store::{GroupPolicy, MfaPolicy, NewUser, TotpSecret};

const PEER: [u8; 4] = [192, 0, 2, 7];

struct Fx {
    auth: Authenticator,
    store: Store,
    key: ServerKey,
}

fn fx() -> Fx {
    fx_with(AuthSettings {
        throttle: ThrottleConfig {
            // out of the way unless a test is about throttling
            account_failures: 1000,
            code_failures: 1000,
            ..ThrottleConfig::default()
        },
        ..AuthSettings::default()
    })
}

fn fx_with(settings: AuthSettings) -> Fx {
    let store = Store::temporary().expect("store");
    let hasher = Hasher::for_tests();
    let key = ServerKey::generate();
    let auth = Authenticator::configured(store.clone(), hasher, key.clone(), settings);
    Fx { auth, store, key }
}

impl Fx {
    fn user(&self, name: &str, password: &str) -> UserId {
        let u = self
            .store
            .create_user(NewUser {
                username: name.into(),
                ..NewUser::default()
            })
            .expect("user");
        let phc = self.auth.hasher.hash_blocking(password).expect("hash");
        self.store.set_password_hash(u.id, &phc).expect("set");
        u.id
    }

    fn totp(&self, user: UserId) -> Vec<u8> {
        let secret = totp::generate_secret();
        self.store
            .add_totp_device(user, "phone", 6, &TotpSecret(secret.clone()))
            .expect("device");
        secret
    }

    fn static_tokens(&self, user: UserId, n: usize) -> Vec<String> {
        let tokens: Vec<String> = (0..n).map(|_| static_tokens::generate()).collect();
        let hashes: Vec<_> = tokens
            .iter()
            .map(|t| static_tokens::hash(&self.key, t))
            .collect();
        self.store
            .add_static_device(user, "paper", &hashes)
            .expect("device");
        tokens
    }

    fn app_password(&self, user: UserId, expires: Option<Timestamp>) -> String {
        let secret = app_password::generate();
        self.store
            .add_app_password(
                user,
                crate::store::CredentialKind::AppPassword,
                "mail",
                expires,
                &app_password::hash(&self.key, &secret),
            )
            .expect("app password");
        secret
    }

    async fn bind(&self, name: &str, pw: &str, now: SystemTime) -> Result<Method, Refusal> {
        let peer = IpAddr::from(PEER);
        match self
            .auth
            .authenticate(name, &Secret(pw.to_string()), peer, now)
            .await
        {
            BindOutcome::Success { method, .. } => Ok(method),
            BindOutcome::Refused { reason, .. } => Err(reason),
        }
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

const T0: u64 = 1_700_000_010; // mid-step

fn code(secret: &[u8], secs: u64) -> String {
    totp::code_at_step(secret, 6, totp::step_of(secs))
}

#[test]
fn splitting_rules() {
    assert_eq!(split_code("pa;ss;123456"), Some(("pa;ss", "123456")));
    assert_eq!(split_code("pa;ss;"), Some(("pa;ss", "")));
    assert_eq!(split_code(";123456"), Some(("", "123456")));
    assert_eq!(split_code("password"), None);
}

#[tokio::test]
async fn semicolons_are_ordinary_without_mfa() {
    let f = fx();
    f.user("bob", "se;cret");
    assert_eq!(f.bind("bob", "se;cret", at(T0)).await, Ok(Method::Password));
    assert_eq!(
        f.bind("bob", "se", at(T0)).await,
        Err(Refusal::WrongPassword)
    );
}

#[tokio::test]
async fn password_and_totp() {
    let f = fx();
    let u = f.user("alice", "pa;ss");
    let secret = f.totp(u);
    let c = code(&secret, T0);
    // the password alone is no longer enough, nor a trailing `;`
    assert_eq!(
        f.bind("alice", "pa;ss", at(T0)).await,
        Err(Refusal::WrongPassword)
    );
    assert_eq!(
        f.bind("alice", "pa;ss;", at(T0)).await,
        Err(Refusal::CodeMissing)
    );
    assert_eq!(
        f.bind("alice", "pa;ss;000000", at(T0)).await.err(),
        Some(if c == "000000" {
            Refusal::CodeReplayed
        } else {
            Refusal::WrongCode
        })
    );
    // wrong password with a right code: refused, code not consumed
    assert_eq!(
        f.bind("alice", &format!("pa;sx;{c}"), at(T0)).await,
        Err(Refusal::WrongPassword)
    );
    assert_eq!(
        f.bind("alice", &format!("pa;ss;{c}"), at(T0)).await,
        Ok(Method::PasswordTotp)
    );
    // replay of the same step
    assert_eq!(
        f.bind("alice", &format!("pa;ss;{c}"), at(T0 + 5)).await,
        Err(Refusal::CodeReplayed)
    );
    // the next step works; then the older one is refused even inside the window
    let next = code(&secret, T0 + 30);
    assert_eq!(
        f.bind("alice", &format!("pa;ss;{next}"), at(T0 + 30)).await,
        Ok(Method::PasswordTotp)
    );
    let prev = code(&secret, T0);
    assert_eq!(
        f.bind("alice", &format!("pa;ss;{prev}"), at(T0 + 30)).await,
        Err(Refusal::CodeReplayed)
    );
    // drift of one step ahead is accepted, two are not
    let ahead = code(&secret, T0 + 90);
    assert_eq!(
        f.bind("alice", &format!("pa;ss;{ahead}"), at(T0 + 60))
            .await,
        Ok(Method::PasswordTotp)
    );
    let far = code(&secret, T0 + 180);
    assert!(f
        .bind("alice", &format!("pa;ss;{far}"), at(T0 + 120))
        .await
        .is_err());
}

#[tokio::test]
async fn static_tokens_work_once() {
    let f = fx();
    let u = f.user("carol", "pw");
    let tokens = f.static_tokens(u, 2);
    let t = &tokens[0];
    assert_eq!(
        f.bind("carol", &format!("pw;{t}"), at(T0)).await,
        Ok(Method::PasswordStatic)
    );
    assert_eq!(
        f.bind("carol", &format!("pw;{t}"), at(T0)).await,
        Err(Refusal::WrongCode)
    );
    // case-insensitive, and the other token is still there
    assert_eq!(
        f.bind("carol", &format!("pw;{}", tokens[1].to_lowercase()), at(T0))
            .await,
        Ok(Method::PasswordStatic)
    );
    assert_eq!(
        f.store
            .static_tokens_left(u, f.store.devices(u).expect("d")[0].id)
            .ok(),
        Some(0)
    );
}

#[tokio::test]
async fn concurrent_use_of_one_code_succeeds_once() {
    let f = fx();
    let u = f.user("dave", "pw");
    let secret = f.totp(u);
    let pw = format!("pw;{}", code(&secret, T0));
    let binds = (0..8).map(|_| f.bind("dave", &pw, at(T0)));
    let results = futures::future::join_all(binds).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

#[tokio::test]
async fn app_passwords() {
    let f = fx();
    let u = f.user("erin", "pw");
    let secret = f.totp(u);
    let ap = f.app_password(u, None);
    // no code needed
    assert_eq!(f.bind("erin", &ap, at(T0)).await, Ok(Method::AppPassword));
    // not for another user
    f.user("frank", "pw2");
    assert_eq!(
        f.bind("frank", &ap, at(T0)).await,
        Err(Refusal::WrongPassword)
    );
    // last use is recorded
    let rec = &f.store.app_passwords(u).expect("list")[0];
    assert_eq!(rec.last_used, Some(T0 as i64));
    assert_eq!(rec.last_used_from.as_deref(), Some("192.0.2.7"));
    // revocation takes effect at once
    f.store.revoke_app_password(u, rec.id).expect("revoke");
    assert!(f.bind("erin", &ap, at(T0)).await.is_err());
    // expiry: refused and cleaned up
    let short = f.app_password(u, Some(T0 as i64 + 60));
    assert_eq!(
        f.bind("erin", &short, at(T0 + 59)).await,
        Ok(Method::AppPassword)
    );
    assert_eq!(
        f.bind("erin", &short, at(T0 + 60)).await,
        Err(Refusal::AppPasswordExpired)
    );
    assert!(f.store.app_passwords(u).expect("list").is_empty());
    // password + code still works
    assert_eq!(
        f.bind("erin", &format!("pw;{}", code(&secret, T0)), at(T0))
            .await,
        Ok(Method::PasswordTotp)
    );
}

/// if-enrolled / required / off × with and without a device × password /
/// app password.
#[tokio::test]
async fn policy_matrix() {
    use MfaPolicy::*;
    for policy in [IfEnrolled, Required, Off] {
        let f = fx();
        f.store
            .set_setting(crate::store::mfa::SETTING_MFA_POLICY, policy.as_str())
            .expect("setting");
        let with = f.user("with", "pw");
        let secret = f.totp(with);
        let without = f.user("without", "pw");
        let ap_with = f.app_password(with, None);
        let ap_without = f.app_password(without, None);
        let c = code(&secret, T0);

        let plain_with = f.bind("with", "pw", at(T0)).await;
        let coded_with = f.bind("with", &format!("pw;{c}"), at(T0)).await;
        let plain_without = f.bind("without", "pw", at(T0)).await;
        let (exp_plain_with, exp_coded_with, exp_plain_without) = match policy {
            IfEnrolled => (
                Err(Refusal::CodeMissing),
                Ok(Method::PasswordTotp),
                Ok(Method::Password),
            ),
            Required => (
                Err(Refusal::CodeMissing),
                Ok(Method::PasswordTotp),
                Err(Refusal::MfaNotEnrolled),
            ),
            Off => (
                Ok(Method::Password),
                Err(Refusal::WrongPassword),
                Ok(Method::Password),
            ),
        };
        assert_eq!(plain_with, exp_plain_with, "{policy:?} password, device");
        assert_eq!(
            coded_with, exp_coded_with,
            "{policy:?} password;code, device"
        );
        assert_eq!(
            plain_without, exp_plain_without,
            "{policy:?} password, no device"
        );
        // app passwords work under every policy, with or without a device
        assert_eq!(
            f.bind("with", &ap_with, at(T0)).await,
            Ok(Method::AppPassword)
        );
        assert_eq!(
            f.bind("without", &ap_without, at(T0)).await,
            Ok(Method::AppPassword)
        );
    }
}

#[tokio::test]
async fn group_exemption_and_app_password_switch() {
    let f = fx();
    f.store
        .set_setting(crate::store::mfa::SETTING_MFA_POLICY, "required")
        .expect("setting");
    let svc = f.user("svc", "pw");
    let parent = f
        .store
        .create_group("service-accounts", None)
        .expect("group");
    let child = f.store.create_group("backup", None).expect("group");
    f.store
        .add_member(parent.id, crate::store::Member::Group(child.id))
        .expect("nest");
    f.store
        .add_member(child.id, crate::store::Member::User(svc))
        .expect("member");
    assert_eq!(
        f.bind("svc", "pw", at(T0)).await,
        Err(Refusal::MfaNotEnrolled)
    );
    f.store
        .set_group_policy(
            parent.id,
            GroupPolicy {
                mfa: Some(MfaPolicy::Off),
                app_passwords: Some(false),
            },
        )
        .expect("policy");
    // exempted through the nested group
    assert_eq!(f.bind("svc", "pw", at(T0)).await, Ok(Method::Password));
    let ap = f.app_password(svc, None);
    assert_eq!(
        f.bind("svc", &ap, at(T0)).await,
        Err(Refusal::AppPasswordsDisabled)
    );
}

#[tokio::test]
async fn throttling_refuses_then_forgives() {
    let f = fx_with(AuthSettings {
        throttle: ThrottleConfig {
            account_failures: 3,
            account_delay: Duration::from_secs(2),
            ..ThrottleConfig::default()
        },
        ..AuthSettings::default()
    });
    let u = f.user("gina", "pw");
    let secret = f.totp(u);
    // failed codes count as failures
    for _ in 0..3 {
        assert!(f.bind("gina", "pw;999999x", at(T0)).await.is_err());
    }
    let good = format!("pw;{}", code(&secret, T0));
    assert_eq!(
        f.bind("gina", &good, at(T0 + 1)).await,
        Err(Refusal::Throttled)
    );
    // a refused attempt consumed nothing: the same code works after the delay
    assert_eq!(
        f.bind("gina", &good, at(T0 + 2)).await,
        Ok(Method::PasswordTotp)
    );
    // a success reset the count: one failure does not lock
    assert!(f.bind("gina", "bad", at(T0 + 3)).await.is_err());
    assert_eq!(
        f.bind("gina", "bad", at(T0 + 3)).await,
        Err(Refusal::WrongPassword)
    );
    // unknown users are throttled alike
    for _ in 0..3 {
        f.bind("nobody", "x", at(T0)).await.ok();
    }
    assert_eq!(f.bind("nobody", "x", at(T0)).await, Err(Refusal::Throttled));
}

/// A throttle whose code lock (3 wrong codes, 10 s) is what a test sees;
/// the account softlock stays at its default (5).
fn code_throttle_fx() -> Fx {
    fx_with(AuthSettings {
        throttle: ThrottleConfig {
            code_failures: 3,
            code_delay: Duration::from_secs(10),
            ..ThrottleConfig::default()
        },
        ..AuthSettings::default()
    })
}

/// A 6-digit code that matches no step near `secs`.
fn wrong_code(secret: &[u8], secs: u64) -> String {
    let near: Vec<String> = [secs - 30, secs, secs + 30]
        .iter()
        .map(|&s| code(secret, s))
        .collect();
    ["123456", "654321", "111111", "222222"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .expect("one of four is wrong")
        .to_string()
}

#[tokio::test]
async fn wrong_codes_between_app_password_binds_still_lock_code_binds() {
    let f = code_throttle_fx();
    let u = f.user("hana", "pw");
    let secret = f.totp(u);
    let ap = f.app_password(u, None);
    let wrong = format!("pw;{}", wrong_code(&secret, T0));
    // the mail client's app password binds between the guesses reset the
    // account's softlock, never the count of wrong codes
    for _ in 0..3 {
        assert_eq!(
            f.bind("hana", &wrong, at(T0)).await,
            Err(Refusal::WrongCode)
        );
        assert_eq!(f.bind("hana", &ap, at(T0)).await, Ok(Method::AppPassword));
    }
    let good = format!("pw;{}", code(&secret, T0));
    assert_eq!(
        f.bind("hana", &good, at(T0 + 1)).await,
        Err(Refusal::Throttled),
        "a right code is refused while code binds are locked"
    );
    assert_eq!(
        f.bind("hana", &wrong, at(T0 + 1)).await,
        Err(Refusal::Throttled)
    );
    // app passwords keep working, and do not lift the lock
    assert_eq!(
        f.bind("hana", &ap, at(T0 + 1)).await,
        Ok(Method::AppPassword)
    );
    assert_eq!(
        f.bind("hana", &good, at(T0 + 9)).await,
        Err(Refusal::Throttled)
    );
    // other accounts are unaffected
    let v = f.user("ivan", "pw");
    let other = f.totp(v);
    assert_eq!(
        f.bind("ivan", &format!("pw;{}", code(&other, T0)), at(T0 + 1))
            .await,
        Ok(Method::PasswordTotp)
    );
    // after the delay: the refused attempts consumed nothing
    assert_eq!(
        f.bind("hana", &good, at(T0 + 10)).await,
        Ok(Method::PasswordTotp)
    );
}

#[tokio::test]
async fn only_a_correct_code_resets_the_count_of_wrong_codes() {
    let f = code_throttle_fx();
    let u = f.user("jo", "pw");
    let secret = f.totp(u);
    let ap = f.app_password(u, None);
    let wrong = format!("pw;{}", wrong_code(&secret, T0));
    for _ in 0..2 {
        assert_eq!(f.bind("jo", &wrong, at(T0)).await, Err(Refusal::WrongCode));
    }
    assert_eq!(f.bind("jo", &ap, at(T0)).await, Ok(Method::AppPassword));
    // a plain password success of a user without devices would not reset
    // it either; a correct code does
    let good = format!("pw;{}", code(&secret, T0));
    assert_eq!(f.bind("jo", &good, at(T0)).await, Ok(Method::PasswordTotp));
    for _ in 0..2 {
        assert_eq!(f.bind("jo", &wrong, at(T0)).await, Err(Refusal::WrongCode));
    }
    let next = format!("pw;{}", code(&secret, T0 + 30));
    assert_eq!(
        f.bind("jo", &next, at(T0 + 30)).await,
        Ok(Method::PasswordTotp),
        "two wrong codes since the reset: not locked"
    );
    // a replayed code is a guess too
    for _ in 0..2 {
        assert_eq!(
            f.bind("jo", &wrong, at(T0 + 30)).await,
            Err(Refusal::WrongCode)
        );
    }
    assert_eq!(
        f.bind("jo", &next, at(T0 + 30)).await,
        Err(Refusal::CodeReplayed)
    );
    let last = format!("pw;{}", code(&secret, T0 + 60));
    assert_eq!(
        f.bind("jo", &last, at(T0 + 31)).await,
        Err(Refusal::Throttled)
    );
}

#[tokio::test]
async fn a_missing_code_or_a_wrong_password_is_no_code_guess() {
    let f = fx_with(AuthSettings {
        throttle: ThrottleConfig {
            account_failures: 1000,
            code_failures: 1,
            code_delay: Duration::from_secs(10),
            ..ThrottleConfig::default()
        },
        ..AuthSettings::default()
    });
    let u = f.user("kim", "pw");
    let secret = f.totp(u);
    for _ in 0..3 {
        assert_eq!(f.bind("kim", "pw", at(T0)).await, Err(Refusal::CodeMissing));
        assert_eq!(
            f.bind("kim", "pw;", at(T0)).await,
            Err(Refusal::CodeMissing)
        );
        let wrong_password = format!("px;{}", wrong_code(&secret, T0));
        assert_eq!(
            f.bind("kim", &wrong_password, at(T0)).await,
            Err(Refusal::WrongPassword)
        );
    }
    assert_eq!(
        f.bind("kim", &format!("pw;{}", code(&secret, T0)), at(T0))
            .await,
        Ok(Method::PasswordTotp)
    );
}

#[tokio::test]
async fn device_and_app_password_changes_bump_the_generation() {
    let f = fx();
    let u = f.user("hal", "pw");
    let gen = || {
        f.store
            .user(u)
            .expect("read")
            .expect("user")
            .cred_generation
    };
    let g0 = gen();
    f.totp(u);
    assert_eq!(gen(), g0 + 1);
    let d = f.store.devices(u).expect("devices")[0].id;
    f.store.remove_device(u, d).expect("remove");
    assert_eq!(gen(), g0 + 2);
    f.app_password(u, None);
    assert_eq!(gen(), g0 + 3);
}

#[test]
fn secrets_never_in_debug() {
    let s = Secret("hunter2".into());
    assert_eq!(format!("{s:?}"), "********");
    let t = TotpSecret(b"12345678901234567890".to_vec());
    assert_eq!(format!("{t:?}"), "********");
}

// --- the bind cache ---

impl Fx {
    /// (hits, misses) of the bind cache.
    fn cache_stats(&self) -> (u64, u64) {
        self.auth.cache().expect("cache on by default").stats()
    }
}

#[tokio::test]
async fn a_repeated_password_bind_is_answered_from_the_cache() {
    let f = fx();
    f.user("ivy", "pw;with;semicolons");
    assert_eq!(f.cache_stats(), (0, 0));
    assert_eq!(
        f.bind("ivy", "pw;with;semicolons", at(T0)).await,
        Ok(Method::Password)
    );
    assert_eq!(f.cache_stats(), (0, 1), "first bind: miss, argon2");
    for i in 0..3 {
        let peer = IpAddr::from(PEER);
        match f
            .auth
            .authenticate(
                "ivy",
                &Secret("pw;with;semicolons".into()),
                peer,
                at(T0 + i),
            )
            .await
        {
            BindOutcome::Success { cached, method, .. } => {
                assert!(cached, "bind {i} skipped argon2");
                assert_eq!(method, Method::Password);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(f.cache_stats(), (3, 1));
    // a wrong password is never a hit, and a failure is never remembered
    assert_eq!(
        f.bind("ivy", "wrong", at(T0)).await,
        Err(Refusal::WrongPassword)
    );
    assert_eq!(
        f.bind("ivy", "wrong", at(T0)).await,
        Err(Refusal::WrongPassword)
    );
    assert_eq!(f.cache_stats(), (3, 3));
    // the entry expires after the ttl (60 s by default): argon2 again
    assert_eq!(
        f.bind("ivy", "pw;with;semicolons", at(T0 + 60)).await,
        Ok(Method::Password)
    );
    assert_eq!(f.cache_stats(), (3, 4));
}

#[tokio::test]
async fn a_steady_binder_keeps_its_entry_past_the_ttl() {
    let f = fx();
    f.user("lee", "pw");
    let cache = f.auth.cache().expect("cache on by default");
    assert_eq!(f.bind("lee", "pw", at(T0)).await, Ok(Method::Password));
    // Before the last quarter of the entry's life: nothing starts.
    assert_eq!(f.bind("lee", "pw", at(T0 + 44)).await, Ok(Method::Password));
    assert_eq!((cache.refreshing(), cache.refreshed()), (0, 0));
    // A wrong password is no hit and starts nothing.
    assert_eq!(
        f.bind("lee", "wrong", at(T0 + 50)).await,
        Err(Refusal::WrongPassword)
    );
    assert_eq!((cache.refreshing(), cache.refreshed()), (0, 0));
    // A hit in the last quarter is answered at once and verifies again
    // in the background.
    assert_eq!(f.bind("lee", "pw", at(T0 + 50)).await, Ok(Method::Password));
    for _ in 0..1000 {
        if cache.refreshed() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((cache.refreshing(), cache.refreshed()), (0, 1));
    // Past the first verification's ttl, still without argon2.
    let peer = IpAddr::from(PEER);
    match f
        .auth
        .authenticate("lee", &Secret("pw".into()), peer, at(T0 + 100))
        .await
    {
        BindOutcome::Success { cached, .. } => assert!(cached, "answered from the cache"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.cache_stats(),
        (3, 2),
        "misses: the first bind, the wrong one"
    );
}

#[tokio::test]
async fn password_change_and_disable_take_effect_on_the_next_bind() {
    let f = fx();
    let u = f.user("jo", "old");
    for _ in 0..2 {
        assert_eq!(f.bind("jo", "old", at(T0)).await, Ok(Method::Password));
    }
    assert_eq!(f.cache_stats().0, 1, "cached");
    let phc = f.auth.hasher.hash_blocking("new").expect("hash");
    f.store.set_password_hash(u, &phc).expect("set");
    assert_eq!(
        f.bind("jo", "old", at(T0 + 1)).await,
        Err(Refusal::WrongPassword)
    );
    assert_eq!(f.bind("jo", "new", at(T0 + 1)).await, Ok(Method::Password));
    assert_eq!(f.bind("jo", "new", at(T0 + 1)).await, Ok(Method::Password));
    // the same password set again gets a new salt: a miss, still right
    let hits = f.cache_stats().0;
    let phc = f.auth.hasher.hash_blocking("new").expect("hash");
    f.store.set_password_hash(u, &phc).expect("set");
    assert_eq!(f.bind("jo", "new", at(T0 + 2)).await, Ok(Method::Password));
    assert_eq!(f.cache_stats().0, hits, "not a hit after a change");
    f.store
        .update_user(u, &|user| {
            user.disabled = true;
            Ok(())
        })
        .expect("disable");
    assert_eq!(
        f.bind("jo", "new", at(T0 + 3)).await,
        Err(Refusal::Disabled)
    );
    f.store
        .update_user(u, &|user| {
            user.disabled = false;
            Ok(())
        })
        .expect("enable");
    assert_eq!(f.bind("jo", "new", at(T0 + 3)).await, Ok(Method::Password));
}

#[tokio::test]
async fn policy_and_membership_changes_take_effect_on_the_next_bind() {
    let f = fx();
    let u = f.user("kim", "pw");
    f.totp(u);
    // MFA off globally: the password alone binds, and is cached
    f.store
        .set_setting(crate::store::mfa::SETTING_MFA_POLICY, "off")
        .expect("setting");
    for _ in 0..2 {
        assert_eq!(f.bind("kim", "pw", at(T0)).await, Ok(Method::Password));
    }
    assert_eq!(f.cache_stats(), (1, 1));
    // back to if-enrolled: the cached password alone is refused at once
    f.store
        .remove_setting(crate::store::mfa::SETTING_MFA_POLICY)
        .expect("setting");
    assert_eq!(
        f.bind("kim", "pw", at(T0 + 1)).await,
        Err(Refusal::CodeMissing)
    );
    // the same through a group exemption that ends with the membership
    let g = f.store.create_group("exempt", None).expect("group");
    f.store
        .set_group_policy(
            g.id,
            GroupPolicy {
                mfa: Some(MfaPolicy::Off),
                app_passwords: None,
            },
        )
        .expect("policy");
    f.store
        .add_member(g.id, crate::store::Member::User(u))
        .expect("member");
    for _ in 0..2 {
        assert_eq!(f.bind("kim", "pw", at(T0 + 2)).await, Ok(Method::Password));
    }
    f.store
        .remove_member(g.id, crate::store::Member::User(u))
        .expect("remove");
    assert_eq!(
        f.bind("kim", "pw", at(T0 + 3)).await,
        Err(Refusal::CodeMissing)
    );
    // `required` refuses a cached password of a user without a device
    f.user("lee", "pw");
    assert_eq!(f.bind("lee", "pw", at(T0)).await, Ok(Method::Password));
    f.store
        .set_setting(crate::store::mfa::SETTING_MFA_POLICY, "required")
        .expect("setting");
    assert_eq!(
        f.bind("lee", "pw", at(T0 + 1)).await,
        Err(Refusal::MfaNotEnrolled)
    );
}

#[tokio::test]
async fn binds_with_a_code_and_app_passwords_are_never_cached() {
    let f = fx();
    let u = f.user("max", "pw");
    let secret = f.totp(u);
    let good = format!("pw;{}", code(&secret, T0));
    assert_eq!(f.bind("max", &good, at(T0)).await, Ok(Method::PasswordTotp));
    assert_eq!(
        f.bind("max", &good, at(T0)).await,
        Err(Refusal::CodeReplayed)
    );
    let ap = f.app_password(u, None);
    for _ in 0..2 {
        assert_eq!(f.bind("max", &ap, at(T0)).await, Ok(Method::AppPassword));
    }
    assert_eq!(f.cache_stats(), (0, 0), "the cache was never consulted");
    assert!(f.auth.cache().expect("cache").is_empty());
    let id = f.store.app_passwords(u).expect("list")[0].id;
    f.store.revoke_app_password(u, id).expect("revoke");
    assert!(f.bind("max", &ap, at(T0)).await.is_err());
}

#[tokio::test]
async fn throttling_applies_before_the_cache() {
    let f = fx_with(AuthSettings {
        throttle: ThrottleConfig {
            account_failures: 2,
            account_delay: Duration::from_secs(30),
            ..ThrottleConfig::default()
        },
        ..AuthSettings::default()
    });
    f.user("ned", "pw");
    assert_eq!(f.bind("ned", "pw", at(T0)).await, Ok(Method::Password));
    for _ in 0..2 {
        assert!(f.bind("ned", "bad", at(T0)).await.is_err());
    }
    assert_eq!(
        f.bind("ned", "pw", at(T0 + 1)).await,
        Err(Refusal::Throttled)
    );
    assert_eq!(f.bind("ned", "pw", at(T0 + 31)).await, Ok(Method::Password));
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let f = fx_with(AuthSettings {
        cache: cache::CacheConfig {
            enabled: false,
            ..cache::CacheConfig::default()
        },
        ..AuthSettings::default()
    });
    f.user("ola", "pw");
    assert!(f.auth.cache().is_none());
    for _ in 0..2 {
        assert_eq!(f.bind("ola", "pw", at(T0)).await, Ok(Method::Password));
    }
}

// --- a full hashing queue ---

#[tokio::test]
async fn a_full_hashing_queue_answers_busy_only_where_a_hash_is_needed() {
    let mut f = fx();
    // One worker, no queued place: holding one slot fills the queue.
    f.auth.hasher = f.auth.hasher.clone().with_queue_limit(0);
    let ivy = f.user("ivy", "ivy-pw");
    let app = f.app_password(ivy, None);
    assert_eq!(f.bind("ivy", "ivy-pw", at(T0)).await, Ok(Method::Password));

    let slot = f.auth.hasher.try_slot().expect("a free slot");
    assert!(f.auth.hasher.queue_full());
    // Needs argon2: not decided, answered busy.
    assert_eq!(f.bind("ivy", "wrong", at(T0)).await, Err(Refusal::Busy));
    assert_eq!(f.bind("nobody", "x", at(T0)).await, Err(Refusal::Busy));
    // Needs none: decided as usual during the flood.
    assert_eq!(f.bind("ivy", "ivy-pw", at(T0)).await, Ok(Method::Password));
    assert_eq!(f.bind("ivy", &app, at(T0)).await, Ok(Method::AppPassword));
    drop(slot);

    // Busy answers were not counted as failures, and a wrong password is
    // refused as wrong once the queue has room.
    assert_eq!(
        f.bind("ivy", "wrong", at(T0)).await,
        Err(Refusal::WrongPassword)
    );
}
