//! Bind decisions: credential parsing, password hashes, second factors
//! (TOTP, static tokens), app passwords, bind policies and throttling.
//! Clock and randomness are parameters, so every rule can be tested
//! without sleeping.
//!
//! Every bind of a named user goes through [`Authenticator::authenticate`];
//! the LDAP layer, the portal and the CLI never verify a password themselves.
//!
//! Layout:
//! - `password`: argon2id hashing off the reactor.
//! - `keys`: the server key that keys the hashes of app passwords and
//!   static tokens.
//! - `totp`, `static_tokens`, `app_password`: the three kinds of secret.
//! - `policy`: `mfa = off | if-enrolled | required`, app passwords on/off,
//!   globally and per group.
//! - `portal`: the portal's two-step sign-in (password, then a code), on
//!   the same checks, codes and throttle as a bind.
//! - `throttle`: per-account softlock, a separate one for an account's
//!   wrong codes, and the per-address limit.
//! - `legacy`: verification of hashes imported from other directories.
//! - `cache`: the bind cache, which lets a repeated identical password bind
//!   skip argon2.
//! - `kept`: what a bind reads about an account (record, policy, devices,
//!   hash), kept while the store has not been written.

pub mod api_token;
pub mod app_password;
pub mod cache;
pub mod kept;
pub mod keys;
pub mod legacy;
pub mod password;
pub mod policy;
pub mod portal;
pub mod static_tokens;
pub mod throttle;
pub mod totp;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::blocking::off_reactor;
use crate::store::{
    AppPassword, CredentialKind, Device, DeviceKind, KeyedHash, Store, StoreError, Timestamp, User,
    UserId,
};
use cache::{BindCache, CacheConfig};
use keys::ServerKey;
use password::{Busy, Hasher};
use policy::{CodeRule, PolicyDefaults};
use throttle::{Found, Key, Throttle, ThrottleConfig, Verdict};

/// Longest bind password considered, in bytes; longer ones are refused
/// without hashing them.
pub const MAX_BIND_PASSWORD_LEN: usize = 4096;

/// How a bind proved itself (or tried to), for the audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Password,
    PasswordTotp,
    PasswordStatic,
    AppPassword,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::PasswordTotp => "password+totp",
            Method::PasswordStatic => "password+static",
            Method::AppPassword => "app-password",
        }
    }
}

/// Why a bind was refused. Never sent to the client (every refusal is the
/// same invalidCredentials there); logged for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownUser,
    NoPassword,
    WrongPassword,
    Disabled,
    /// Too many failures for the account or from the address.
    Throttled,
    /// The user has a device, and no code came after the last `;`.
    CodeMissing,
    WrongCode,
    /// A TOTP code of a step not later than the last accepted one.
    CodeReplayed,
    /// `mfa = required` and the user has no device.
    MfaNotEnrolled,
    AppPasswordExpired,
    AppPasswordsDisabled,
    /// The store failed while deciding: never fail open.
    Internal,
    /// The password check was needed and the hashing queue was full: the
    /// attempt was not decided (LDAP busy, 51) and does not count as a
    /// failure. Cache hits and app passwords never hash, so they never see
    /// this.
    Busy,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownUser => "unknown user",
            Refusal::NoPassword => "no password set",
            Refusal::WrongPassword => "wrong password",
            Refusal::Disabled => "account disabled",
            Refusal::Throttled => "throttled",
            Refusal::CodeMissing => "code missing",
            Refusal::WrongCode => "wrong code",
            Refusal::CodeReplayed => "code replayed",
            Refusal::MfaNotEnrolled => "mfa required but not enrolled",
            Refusal::AppPasswordExpired => "app password expired",
            Refusal::AppPasswordsDisabled => "app passwords disabled",
            Refusal::Internal => "internal error",
            Refusal::Busy => "hashing queue full",
        }
    }
}

/// The result of one bind decision.
#[derive(Debug, Clone)]
pub enum BindOutcome {
    Success {
        user: Arc<User>,
        method: Method,
        /// The app password's name, for the audit event.
        app_password: Option<String>,
        /// The password was found in the bind cache: argon2 was skipped.
        cached: bool,
    },
    Refused {
        reason: Refusal,
        /// What the attempt looked like.
        method: Method,
    },
}

/// The bind password. Its `Debug` never shows the value.
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// Splits `<password>;<code>` at the last `;`. `None` without any `;`.
pub fn split_code(bind_password: &str) -> Option<(&str, &str)> {
    bind_password.rsplit_once(';')
}

/// The settings of the bind decision, from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthSettings {
    pub policy: PolicyDefaults,
    pub throttle: ThrottleConfig,
    pub cache: CacheConfig,
}

/// Decides binds against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    hasher: Hasher,
    key: ServerKey,
    policy: PolicyDefaults,
    throttle: Arc<Throttle>,
    /// `None` when `[bind] cache = false`.
    cache: Option<Arc<BindCache>>,
    accounts: Arc<kept::KeptAccounts>,
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn timestamp(now: SystemTime) -> Timestamp {
    Timestamp::try_from(unix_secs(now)).unwrap_or(Timestamp::MAX)
}

/// What [`Authenticator::check_app_password`] found.
enum AppPasswordCheck {
    /// The bind password is not an app password of this user.
    NotOne,
    Refused(Refusal),
    /// The app password of this name.
    Accepted(String),
}

/// What a decided bind counts on the throttle.
#[derive(Debug, Clone, Copy)]
enum Counted {
    /// Not decided, or refused by a throttle (a refusal that does not
    /// count again).
    Nothing,
    /// A success; `code`: with a code (resets the code counter too).
    Success { code: bool },
    /// A failure; `code`: a wrong or replayed code (counted apart too).
    Failure { code: bool },
}

impl Counted {
    fn of(outcome: &BindOutcome) -> Counted {
        match outcome {
            BindOutcome::Success { method, .. } => Counted::Success {
                code: matches!(method, Method::PasswordTotp | Method::PasswordStatic),
            },
            BindOutcome::Refused {
                reason: Refusal::Internal | Refusal::Busy | Refusal::Throttled,
                ..
            } => Counted::Nothing,
            BindOutcome::Refused { reason, .. } => Counted::Failure {
                code: matches!(reason, Refusal::WrongCode | Refusal::CodeReplayed),
            },
        }
    }

    /// Counts on `throttle` (which may ask the database: blocking);
    /// `found`: what the account's check found in the shared counters.
    fn apply(
        self,
        throttle: &Throttle,
        username: &str,
        peer: IpAddr,
        now: SystemTime,
        found: Found,
    ) {
        let account = Key::account(username);
        let code = Key::code(username);
        match self {
            Counted::Nothing => {}
            Counted::Success { code: with_code } => {
                throttle.success_after(&account, found);
                if with_code {
                    throttle.success(&code);
                }
            }
            Counted::Failure { code: with_code } => {
                throttle.failure(&account, now);
                throttle.failure(&Key::Address(peer), now);
                if with_code {
                    crate::metrics::code_failure();
                    if let Some(lock) = throttle.failure(&code, now) {
                        crate::metrics::code_lock();
                        tracing::warn!(target: "portcullis::audit", user = %username, %peer, lock_ms = u64::try_from(lock.as_millis()).unwrap_or(u64::MAX), "code binds locked after repeated wrong codes");
                    }
                }
            }
        }
    }
}

/// A bind's password as an app password: not shaped like one, its keyed
/// hash still to be looked up, or the lookup's answer (asked with the
/// account's check).
enum AppLookup {
    NotOne,
    Hash(KeyedHash),
    Found(Result<Option<(UserId, AppPassword)>, StoreError>),
}

/// What a bind's account check read: the throttle's verdict and what the
/// shared counter held, whether the read model caught up, and the app
/// password's lookup when it was asked with them.
struct AccountRead {
    verdict: Verdict,
    found: Found,
    caught_up: bool,
    app_password: Option<Result<Option<(UserId, AppPassword)>, StoreError>>,
}

impl AccountRead {
    /// Refused before the account was asked (the address is throttled).
    fn refused(verdict: Verdict) -> AccountRead {
        AccountRead {
            verdict,
            found: Found::Count,
            caught_up: false,
            app_password: None,
        }
    }
}

/// What the app-password lookup of a bind found: a decision, or an
/// expired app password still to be revoked.
enum Looked {
    Checked(AppPasswordCheck),
    Expired(crate::store::AppPasswordId),
}

/// What a code matched.
enum CodeCheck {
    Totp,
    Static,
    Replayed,
    Wrong,
}

impl Authenticator {
    /// Default policies and throttling, with a throw-away server key (so no
    /// stored app password or static token matches: it fails closed). For
    /// tests and tools; `serve` uses [`Authenticator::configured`].
    pub fn new(store: Store, hasher: Hasher) -> Self {
        Authenticator::configured(
            store,
            hasher,
            ServerKey::generate(),
            AuthSettings::default(),
        )
    }

    pub fn configured(
        store: Store,
        hasher: Hasher,
        key: ServerKey,
        settings: AuthSettings,
    ) -> Self {
        // Several instances on one store count failures together.
        let shared = store.failure_counters();
        Authenticator {
            store,
            hasher,
            key,
            policy: settings.policy,
            throttle: Arc::new(Throttle::new(settings.throttle).with_shared(shared)),
            cache: settings
                .cache
                .enabled
                .then(|| Arc::new(BindCache::new(settings.cache))),
            accounts: Arc::default(),
        }
    }

    /// The key that hashes app passwords, static tokens and API tokens.
    pub fn server_key(&self) -> &ServerKey {
        &self.key
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The bind cache, when it is on.
    pub fn cache(&self) -> Option<&BindCache> {
        self.cache.as_deref()
    }

    /// Decides a simple bind of `username` with `password` from `peer` at
    /// time `now` (DESIGN.md section 4):
    ///
    /// 0. Throttled account or address: refused before any hashing.
    /// 1. One of the user's app passwords: success without a code.
    /// 2. A user with a confirmed device, MFA not `off`: `<password>;<code>`
    ///    split at the last `;`. Refused before any hashing while the
    ///    account's code binds are locked (see below); else the password
    ///    (argon2, off the reactor), then the code against TOTP devices
    ///    (later than the last accepted step) and unused static tokens. The
    ///    consumed code is flushed to disk before this returns success.
    /// 3. Otherwise the whole string is the password.
    ///
    /// In case 3 a password verified less than `[bind] cache_ttl_secs` ago
    /// against the same stored hash and credential generation is taken from
    /// the bind cache instead of running argon2 again (see [`cache`]; an
    /// entry near its end is verified again in the background); every
    /// other check above still runs on every bind.
    ///
    /// Every refusal that reaches step 2 or 3 — unknown user, no password,
    /// wrong-format MFA password — costs one argon2 verification, like a
    /// wrong password, so timing does not tell them apart.
    ///
    /// Wrong and replayed codes (after a right password) are also counted
    /// on a second, per-account counter that only a bind with a correct
    /// code resets: an app password's success resets the account's
    /// softlock but not this one, so a mail client binding every minute
    /// does not give a code guesser a fresh start. A missing code is no
    /// guess (a client configured with the password alone) and is counted
    /// only as an ordinary failure.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &Secret,
        peer: IpAddr,
        now: SystemTime,
    ) -> BindOutcome {
        self.throttled(username, peer, now, Some(password)).await
    }

    /// A bind whose password is not UTF-8: it can match no stored password
    /// (they are all UTF-8), so it is refused as a wrong password after
    /// the same throttle check and dummy hashing cost, and counts as a
    /// failure for the throttle.
    pub async fn authenticate_unreadable(
        &self,
        username: &str,
        peer: IpAddr,
        now: SystemTime,
    ) -> BindOutcome {
        self.throttled(username, peer, now, None).await
    }

    /// The throttle around a bind decision (`None`: a password that is not
    /// UTF-8).
    async fn throttled(
        &self,
        username: &str,
        peer: IpAddr,
        now: SystemTime,
        password: Option<&Secret>,
    ) -> BindOutcome {
        // A password shaped like an app password is looked up by its
        // keyed hash (with the account's check, where the store asks
        // them together).
        let app_hash = password
            .map(|p| p.0.as_str())
            .filter(|p| p.len() <= MAX_BIND_PASSWORD_LEN)
            .filter(|p| app_password::looks_like_app_password(p))
            .map(|p| app_password::hash(&self.key, p));
        // The address first: its check is this instance's memory, so an
        // address refused costs the database nothing.
        let AccountRead {
            verdict,
            found,
            caught_up,
            app_password: looked_up,
        } = match self.throttle_check(&Key::Address(peer), now).await {
            Verdict::Allowed => self.check_account(username, app_hash.as_ref(), now).await,
            throttled => AccountRead::refused(throttled),
        };
        if let Verdict::Throttled { .. } = verdict {
            crate::metrics::throttled();
            return BindOutcome::Refused {
                reason: Refusal::Throttled,
                method: Method::Password,
            };
        }
        let decision = match password {
            Some(password) => {
                let app = match (app_hash, looked_up) {
                    (None, _) => AppLookup::NotOne,
                    (Some(hash), None) => AppLookup::Hash(hash),
                    (Some(_), Some(found)) => AppLookup::Found(found),
                };
                self.decide(username, &password.0, peer, now, caught_up, app)
                    .await
            }
            None => Ok(self
                .refuse_after_hashing(Refusal::WrongPassword, Method::Password)
                .await),
        };
        let outcome = match decision {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "store failure during bind");
                return BindOutcome::Refused {
                    reason: Refusal::Internal,
                    method: Method::Password,
                };
            }
        };
        self.count(&outcome, username, peer, now, found).await;
        outcome
    }

    /// The account's throttle check ([`Authenticator::throttle_check_found`])
    /// and the read model's catch-up ([`Authenticator::current`]), and
    /// the lookup of `app_hash`. These are database round trips with
    /// several instances: then the store asks them at once on its own
    /// runtime ([`crate::store::Backend::bind_reads`]: one round trip,
    /// and this reactor awaits it without blocking). Elsewhere the check
    /// alone, and [`Authenticator::decide`] catches up and looks the app
    /// password up if it must.
    async fn check_account(
        &self,
        username: &str,
        app_hash: Option<&KeyedHash>,
        now: SystemTime,
    ) -> AccountRead {
        let key = Key::account(username);
        let together = if self.throttle.asks_shared(&key) && !username.is_empty() {
            self.throttle
                .shared_id(&key)
                .and_then(|id| self.store.bind_reads(&id, app_hash))
        } else {
            None
        };
        let Some(together) = together else {
            let (verdict, found) = self.throttle_check_found(&key, now).await;
            return AccountRead {
                verdict,
                found,
                caught_up: false,
                app_password: None,
            };
        };
        let reads = together.await;
        if let Err(e) = &reads.caught_up {
            tracing::debug!(error = %e, "deciding on the read model as it is");
        }
        let (verdict, found) = self
            .throttle
            .check_with(&key, now, Some(reads.locked_until));
        AccountRead {
            verdict,
            found,
            caught_up: true,
            app_password: reads.app_password,
        }
    }

    /// Whether an attempt for `key` may go ahead. Off the reactor when the
    /// throttle asks the shared failure counters: a database round trip
    /// must not hold up the other connections this reactor serves. A
    /// task that fails refuses (never fails open).
    async fn throttle_check(&self, key: &Key, now: SystemTime) -> Verdict {
        self.throttle_check_found(key, now).await.0
    }

    /// [`Authenticator::throttle_check`], and what the shared counters
    /// held for `key` ([`Throttle::check_found`]).
    async fn throttle_check_found(&self, key: &Key, now: SystemTime) -> (Verdict, Found) {
        if !self.throttle.asks_shared(key) {
            return self.throttle.check_found(key, now);
        }
        let (throttle, key) = (self.throttle.clone(), key.clone());
        tokio::task::spawn_blocking(move || throttle.check_found(&key, now))
            .await
            .unwrap_or((
                Verdict::Throttled {
                    retry_after: std::time::Duration::from_secs(1),
                },
                Found::Count,
            ))
    }

    /// Counts a decided bind on the throttle's keys; off the reactor when
    /// they are shared (see [`Authenticator::throttle_check`]). `found`:
    /// what the account's check found in the shared counters.
    async fn count(
        &self,
        outcome: &BindOutcome,
        username: &str,
        peer: IpAddr,
        now: SystemTime,
        found: Found,
    ) {
        let counted = Counted::of(outcome);
        let nothing_to_write =
            matches!(counted, Counted::Success { code: false }) && found == Found::Nothing;
        if nothing_to_write || !self.throttle.asks_shared(&Key::account(username)) {
            return counted.apply(&self.throttle, username, peer, now, found);
        }
        let (throttle, username) = (self.throttle.clone(), username.to_string());
        if let Err(e) = tokio::task::spawn_blocking(move || {
            counted.apply(&throttle, &username, peer, now, found)
        })
        .await
        {
            tracing::error!(error = %e, "counting a bind on the throttle failed");
        }
    }

    /// Several instances: what a decision reads next (the record, its
    /// disabled flag, password hash, devices, policies) must be as
    /// current as the shared database, so the read model catches up
    /// first (a bounded round trip, off the reactor). Unreachable, it
    /// answers as of its last catch-up, and what needs no write goes on.
    pub(super) async fn current(&self) {
        if self.store.has_read_model() {
            let store = self.store.clone();
            if let Err(e) = off_reactor(move || store.refresh()).await {
                tracing::debug!(error = %e, "deciding on the read model as it is");
            }
        }
    }

    /// A refusal after spending one dummy argon2 verification.
    async fn refuse_after_hashing(&self, reason: Refusal, method: Method) -> BindOutcome {
        let reason = match self.hasher.try_verify(String::new(), None).await {
            Ok(_) => reason,
            Err(Busy) => Refusal::Busy,
        };
        BindOutcome::Refused { reason, method }
    }

    /// `caught_up`: the read model's catch-up was done (or tried) since
    /// the bind arrived ([`Authenticator::check_account`]).
    async fn decide(
        &self,
        username: &str,
        bind_password: &str,
        peer: IpAddr,
        now: SystemTime,
        caught_up: bool,
        app: AppLookup,
    ) -> Result<BindOutcome, StoreError> {
        if bind_password.len() > MAX_BIND_PASSWORD_LEN {
            return Ok(self
                .refuse_after_hashing(Refusal::WrongPassword, Method::Password)
                .await);
        }
        let account = if username.is_empty() {
            None
        } else {
            if !caught_up {
                self.current().await;
            }
            self.accounts.account(&self.store, username, self.policy)?
        };
        let Some(account) = account else {
            return Ok(self
                .refuse_after_hashing(Refusal::UnknownUser, Method::Password)
                .await);
        };
        let user = &account.user;
        let method = Method::AppPassword;
        match self
            .check_app_password(user, account.effective.app_passwords, app, peer, now)
            .await?
        {
            AppPasswordCheck::NotOne => {}
            AppPasswordCheck::Refused(reason) => {
                return Ok(self.refuse_after_hashing(reason, method).await)
            }
            AppPasswordCheck::Accepted(name) => {
                return Ok(BindOutcome::Success {
                    user: Arc::clone(user),
                    method,
                    app_password: Some(name),
                    cached: false,
                })
            }
        }
        self.password_bind(&account, username, bind_password, now)
            .await
    }

    /// Step 1 of a bind: an app password of `user`, refused when expired
    /// (and revoked), when app passwords are off for the user, or when the
    /// user is disabled.
    async fn check_app_password(
        &self,
        user: &User,
        allowed: bool,
        app: AppLookup,
        peer: IpAddr,
        now: SystemTime,
    ) -> Result<AppPasswordCheck, StoreError> {
        let (store, id, disabled, at) =
            (self.store.clone(), user.id, user.disabled, timestamp(now));
        // What the lookup found, judged; an accepted one's use recorded.
        let judge = move |found: Option<(UserId, AppPassword)>| {
            let Some((owner, ap)) = found else {
                return Looked::Checked(AppPasswordCheck::NotOne);
            };
            // An API token never binds (its prefix and hashing domain
            // differ too: this holds even for a record restored under the
            // wrong kind).
            if owner != id || ap.kind != CredentialKind::AppPassword {
                return Looked::Checked(AppPasswordCheck::NotOne);
            }
            if ap.expired(at) {
                return Looked::Expired(ap.id);
            }
            if !allowed {
                return Looked::Checked(AppPasswordCheck::Refused(Refusal::AppPasswordsDisabled));
            }
            if disabled {
                return Looked::Checked(AppPasswordCheck::Refused(Refusal::Disabled));
            }
            // Bookkeeping: on sled written now and flushed with the next
            // periodic flush, on PostgreSQL noted in memory and written
            // in a batch, so the bind waits for neither.
            if let Err(e) = store.touch_app_password(id, ap.id, at, &peer.to_string()) {
                tracing::warn!(error = %e, "could not record app password use");
            }
            Looked::Checked(AppPasswordCheck::Accepted(ap.name))
        };
        let looked = match app {
            AppLookup::NotOne => return Ok(AppPasswordCheck::NotOne),
            // Looked up with the account's check, in its round trip.
            AppLookup::Found(found) => judge(found?),
            // The lookup is a database round trip with several instances:
            // then off the reactor (as an API token's check). On sled, a
            // read: here.
            AppLookup::Hash(hash) => {
                let store = self.store.clone();
                let check = move || store.app_password_by_hash(&hash).map(judge);
                if self.store.reads_wait() {
                    off_reactor(check).await?
                } else {
                    check()?
                }
            }
        };
        match looked {
            Looked::Checked(check) => Ok(check),
            // Revoked: a durable write, off the reactor. An expired one
            // comes back by id.
            Looked::Expired(expired) => {
                let (store, owner) = (self.store.clone(), user.id);
                off_reactor(move || store.revoke_app_password(owner, expired)).await?;
                Ok(AppPasswordCheck::Refused(Refusal::AppPasswordExpired))
            }
        }
    }

    /// Steps 2 and 3 of a bind: the account's password, with a code when
    /// the policy and the user's devices ask for one. `username` is the
    /// name as bound (the throttle's key). A bind that needs a code is
    /// refused without hashing while the account's code binds are locked;
    /// only someone who knew the password can have locked them.
    async fn password_bind(
        &self,
        account: &Arc<kept::Account>,
        username: &str,
        bind_password: &str,
        now: SystemTime,
    ) -> Result<BindOutcome, StoreError> {
        let user = &account.user;
        let rule = policy::code_rule(account.effective.mfa, !account.devices.is_empty());
        let (password_part, code) = match rule {
            CodeRule::WholePassword | CodeRule::NotEnrolled => (bind_password, None),
            CodeRule::PasswordAndCode => match split_code(bind_password) {
                Some((p, c)) => (p, Some(c)),
                None => (bind_password, Some("")),
            },
        };
        let method = match code {
            None => Method::Password,
            Some(c) if static_tokens::looks_like_token(c) => Method::PasswordStatic,
            Some(_) => Method::PasswordTotp,
        };
        if rule == CodeRule::PasswordAndCode {
            let key = Key::code(username);
            if let Verdict::Throttled { .. } = self.throttle_check(&key, now).await {
                crate::metrics::throttled();
                crate::metrics::code_throttled();
                return Ok(BindOutcome::Refused {
                    reason: Refusal::Throttled,
                    method,
                });
            }
        }
        let phc = account.password_hash.as_deref();
        let has_password = phc.is_some();
        // The bind cache: only for the whole-password rule (no code ever),
        // and only for hashes that stay as they are (no rehash pending).
        let cache_digest = match (&self.cache, phc) {
            (Some(cache), Some(stored))
                if rule == CodeRule::WholePassword && !legacy::needs_rehash(stored) =>
            {
                Some((
                    cache,
                    cache.digest(user.id, user.cred_generation, stored, password_part),
                ))
            }
            _ => None,
        };
        let cached = cache_digest
            .as_ref()
            .is_some_and(|(cache, digest)| cache.hit(digest, now));
        let refused = |reason| Ok(BindOutcome::Refused { reason, method });
        let verified = if cached {
            true
        } else {
            match self
                .hasher
                .try_verify(password_part.to_string(), phc.map(str::to_string))
                .await
            {
                Ok(verified) => verified,
                Err(Busy) => return refused(Refusal::Busy),
            }
        };
        if !has_password {
            return refused(Refusal::NoPassword);
        }
        if !verified {
            return refused(Refusal::WrongPassword);
        }
        if user.disabled {
            return refused(Refusal::Disabled);
        }
        if rule == CodeRule::NotEnrolled {
            return refused(Refusal::MfaNotEnrolled);
        }
        if let Some(stored) = phc.filter(|s| legacy::needs_rehash(s)) {
            self.rehash(user.id, stored, password_part).await?;
        }
        let Some(code) = code else {
            if let Some((cache, digest)) = cache_digest {
                if !cached {
                    cache.insert(digest, now);
                } else if let Some(refresh) = cache.refresh_due(&digest, now) {
                    self.refresh(refresh, password_part, phc, now);
                }
            }
            return Ok(BindOutcome::Success {
                user: Arc::clone(user),
                method,
                app_password: None,
                cached,
            });
        };
        if code.is_empty() {
            return refused(Refusal::CodeMissing);
        }
        let (auth, account, code) = (self.clone(), account.clone(), code.to_string());
        let checked =
            off_reactor(move || auth.check_code(account.user.id, &account.devices, &code, now))
                .await?;
        let method = match checked {
            CodeCheck::Totp => Method::PasswordTotp,
            CodeCheck::Static => Method::PasswordStatic,
            CodeCheck::Replayed => return refused(Refusal::CodeReplayed),
            CodeCheck::Wrong => return refused(Refusal::WrongCode),
        };
        // The used code stays used across a crash: the store's writes are
        // durable when they return, before the success response leaves.
        Ok(BindOutcome::Success {
            user: Arc::clone(user),
            method,
            app_password: None,
            cached: false,
        })
    }

    /// Verifies a cached password again in the background, so its entry
    /// is renewed before it expires (see [`cache`]). Only on a worker that
    /// is idle: a bind waiting for argon2 never waits for a refresh. The
    /// bind that asked is answered without waiting for it.
    fn refresh(&self, refresh: cache::Refresh, password: &str, phc: Option<&str>, now: SystemTime) {
        if !self.hasher.idle_worker() {
            return;
        }
        let hasher = self.hasher.clone();
        let (password, phc) = (password.to_string(), phc.map(str::to_string));
        tokio::spawn(async move {
            // Busy (every worker taken meanwhile) drops the refresh: the
            // next bind of the entry may try again.
            if let Ok(verified) = hasher.try_verify(password, phc).await {
                refresh.finish(verified, now);
            }
        });
    }

    /// Replaces a hash imported from another directory (or an argon2 hash
    /// with other costs) by argon2id, now that the password is known to be
    /// right. A hashing failure is logged and does not fail the bind; a
    /// store that cannot take the write (a shared database unreachable)
    /// does: the bind is answered `unavailable` and tried again later,
    /// rather than leaving the weak hash in place unnoticed.
    async fn rehash(&self, user: UserId, stored: &str, password: &str) -> Result<(), StoreError> {
        let new = match self.hasher.hash(password.to_string()).await {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(%user, error = %e, "could not rehash the password");
                return Ok(());
            }
        };
        let (store, stored) = (self.store.clone(), stored.to_string());
        if off_reactor(move || store.rehash_password(user, &stored, &new)).await? {
            tracing::info!(%user, "password rehashed to argon2id");
        }
        Ok(())
    }

    /// Checks `code` against the user's TOTP devices and unused static
    /// tokens, consuming what it matches (atomically and durably, in the
    /// store). Blocking.
    fn check_code(
        &self,
        user: UserId,
        devices: &[Device],
        code: &str,
        now: SystemTime,
    ) -> Result<CodeCheck, StoreError> {
        let secs = unix_secs(now);
        let mut replayed = false;
        for d in devices {
            match d.kind {
                DeviceKind::Totp { digits } => {
                    let Some(secret) = self.store.totp_secret(user, d.id)? else {
                        continue;
                    };
                    if let Some(step) = totp::matching_step(&secret.0, digits, code, secs) {
                        if self.store.advance_totp_step(user, d.id, step)? {
                            return Ok(CodeCheck::Totp);
                        }
                        replayed = true;
                    }
                }
                DeviceKind::Static => {
                    if static_tokens::looks_like_token(code) {
                        let hash = static_tokens::hash(&self.key, code);
                        if self.store.consume_static_token(user, d.id, &hash)? {
                            return Ok(CodeCheck::Static);
                        }
                    }
                }
            }
        }
        Ok(if replayed {
            CodeCheck::Replayed
        } else {
            CodeCheck::Wrong
        })
    }
}

#[cfg(test)]
mod tests;
