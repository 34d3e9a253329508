//! Second factors, app passwords and bind policies as the operator
//! manages them (MFA enrolment lives here, for every front end).
//!
//! Secrets (a TOTP secret, static tokens, an app password) appear in
//! exactly one answer: the one that creates them. Listings show ids,
//! labels and times only.

use uuid::Uuid;

use super::records::{find_group, find_user};
use super::view::AdminAnswer;
use super::view::{
    rfc3339, DeviceKindView, DeviceView, GroupPolicyView, PolicySource, PolicyView, Removed,
    Secret, StaticAdded, TotpAdded,
};
use super::{AccountError, Actor, AdminContext};
use crate::auth::{policy, static_tokens, totp};
use crate::store::mfa::{SETTING_APP_PASSWORDS, SETTING_MFA_POLICY};
use crate::store::{Device, DeviceId, DeviceKind, GroupPolicy, MfaPolicy, TotpSecret, UserId};

/// Longest expiry accepted (ten years), so the timestamp cannot overflow.
pub const MAX_EXPIRY_SECS: u64 = 10 * 365 * 24 * 3600;

pub(super) fn parse_id(what: &str, id: &str) -> Result<Uuid, AccountError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| AccountError::Invalid(format!("{id:?} is not a {what} id")))
}

pub fn totp_add(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
    digits: u8,
    label: Option<String>,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    if !matches!(digits, 6 | 8) {
        return Err(AccountError::Invalid("--digits must be 6 or 8".into()));
    }
    let user = find_user(ctx, username)?;
    let secret = TotpSecret(totp::generate_secret());
    let label = label.unwrap_or_else(|| "authenticator".into());
    let device = ctx
        .store
        .add_totp_device(user.id, &label, digits, &secret)?;
    Ok(totp_added(ctx, &user.username, &device, &secret, digits))
}

/// The one answer that shows a new TOTP device's secret (and its otpauth
/// URI, for a QR code).
fn totp_added(
    ctx: &AdminContext,
    username: &str,
    device: &Device,
    secret: &TotpSecret,
    digits: u8,
) -> AdminAnswer {
    AdminAnswer::TotpAdded(TotpAdded {
        id: device.id.to_string(),
        secret: Secret::new(totp::secret_base32(&secret.0)),
        uri: Secret::new(totp::otpauth_uri(
            &ctx.totp_issuer,
            username,
            &secret.0,
            digits,
        )),
        digits,
        period: totp::PERIOD,
        algorithm: "SHA1".into(),
    })
}

/// Self-service TOTP enrolment, step 1: a pending device and its secret
/// (shown once, with the otpauth URI for a QR code). The device counts for
/// nothing until [`totp_confirm`]. The user themself or the operator.
pub fn totp_begin(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
    digits: u8,
    label: Option<String>,
) -> Result<AdminAnswer, AccountError> {
    actor.may_manage(username)?;
    if !matches!(digits, 6 | 8) {
        return Err(AccountError::Invalid("a code has 6 or 8 digits".into()));
    }
    let user = find_user(ctx, username)?;
    let secret = TotpSecret(totp::generate_secret());
    let label = label.unwrap_or_else(|| "authenticator".into());
    let device = ctx
        .store
        .add_pending_totp_device(user.id, &label, digits, &secret)?;
    Ok(totp_added(ctx, &user.username, &device, &secret, digits))
}

/// Self-service TOTP enrolment, step 2: a current code from the
/// authenticator confirms the pending device. The code's step is used up
/// (the same code cannot bind afterwards). Answers with the device.
pub fn totp_confirm(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
    device: &str,
    code: &str,
    now: std::time::SystemTime,
) -> Result<AdminAnswer, AccountError> {
    actor.may_manage(username)?;
    let user = find_user(ctx, username)?;
    let id = DeviceId(parse_id("device", device)?);
    let found = ctx.store.devices(user.id)?.into_iter().find(|d| d.id == id);
    let Some(found) = found else {
        return Err(AccountError::NotFound(format!("device {device} not found")));
    };
    if found.confirmed {
        return Err(AccountError::Invalid(format!(
            "device {device} is confirmed already"
        )));
    }
    let DeviceKind::Totp { digits } = found.kind else {
        return Err(AccountError::Invalid(
            "only an authenticator device is confirmed with a code".into(),
        ));
    };
    let secret = ctx
        .store
        .totp_secret(user.id, id)?
        .ok_or_else(|| AccountError::NotFound(format!("device {device} not found")))?;
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let step = totp::matching_step(&secret.0, digits, code.trim(), secs).ok_or_else(|| {
        AccountError::Invalid("the code does not match; check the authenticator's clock".into())
    })?;
    if !ctx.store.advance_totp_step(user.id, id, step)? {
        return Err(AccountError::Invalid("this code was used already".into()));
    }
    ctx.store.confirm_device(user.id, id)?;
    let mut confirmed = found;
    confirmed.confirmed = true;
    Ok(AdminAnswer::Devices(vec![device_view(
        ctx, user.id, &confirmed,
    )?]))
}

pub fn static_add(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
    count: u8,
    label: Option<String>,
) -> Result<AdminAnswer, AccountError> {
    actor.may_manage(username)?;
    let max = crate::store::mfa::MAX_STATIC_TOKENS;
    if count == 0 || usize::from(count) > max {
        return Err(AccountError::Invalid(format!(
            "--count must be between 1 and {max}"
        )));
    }
    let user = find_user(ctx, username)?;
    let tokens: Vec<String> = (0..count).map(|_| static_tokens::generate()).collect();
    let hashes: Vec<_> = tokens
        .iter()
        .map(|t| static_tokens::hash(&ctx.server_key, t))
        .collect();
    let label = label.unwrap_or_else(|| "recovery tokens".into());
    let device = ctx.store.add_static_device(user.id, &label, &hashes)?;
    Ok(AdminAnswer::StaticAdded(StaticAdded {
        id: device.id.to_string(),
        tokens: Secret::new(tokens),
    }))
}

pub(super) fn device_view(
    ctx: &AdminContext,
    user: UserId,
    d: &Device,
) -> Result<DeviceView, AccountError> {
    let kind = match d.kind {
        DeviceKind::Totp { digits } => DeviceKindView::Totp { digits },
        DeviceKind::Static => DeviceKindView::Static {
            tokens_left: ctx.store.static_tokens_left(user, d.id)?,
        },
    };
    // A TOTP device's last accepted step tells when it was last used;
    // static tokens keep no time.
    let last_used = match d.kind {
        DeviceKind::Totp { .. } => ctx
            .store
            .totp_last_step(user, d.id)?
            .and_then(|step| i64::try_from(step.saturating_mul(totp::PERIOD)).ok())
            .and_then(rfc3339),
        DeviceKind::Static => None,
    };
    Ok(DeviceView {
        id: d.id.to_string(),
        label: d.label.clone(),
        created: rfc3339(d.created),
        confirmed: d.confirmed,
        last_used,
        kind,
    })
}

pub fn list(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.may_manage(username)?;
    let user = find_user(ctx, username)?;
    let devices = ctx.store.devices(user.id)?;
    let list = devices
        .iter()
        .map(|d| device_view(ctx, user.id, d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AdminAnswer::Devices(list))
}

pub fn remove(
    ctx: &AdminContext,
    actor: &Actor,
    username: &str,
    device: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.may_manage(username)?;
    let user = find_user(ctx, username)?;
    let id = DeviceId(parse_id("device", device)?);
    if !ctx.store.remove_device(user.id, id)? {
        return Err(AccountError::NotFound(format!(
            "user {} has no device {id}",
            user.username
        )));
    }
    Ok(AdminAnswer::Removed(Removed::new(id.to_string())))
}

/// `Some(policy)` to set, `None` for `inherit`.
fn parse_mfa_policy(text: &str) -> Result<Option<MfaPolicy>, AccountError> {
    if text == "inherit" {
        return Ok(None);
    }
    MfaPolicy::parse(text).map(Some).ok_or_else(|| {
        AccountError::Invalid(format!(
            "unknown MFA policy {text:?} (if-enrolled, required, off or inherit)"
        ))
    })
}

fn parse_switch(text: &str) -> Result<Option<bool>, AccountError> {
    match text {
        "on" => Ok(Some(true)),
        "off" => Ok(Some(false)),
        "inherit" => Ok(None),
        _ => Err(AccountError::Invalid(format!(
            "unknown setting {text:?} (on, off or inherit)"
        ))),
    }
}

pub fn mfa_policy_set(
    ctx: &AdminContext,
    actor: &Actor,
    group: Option<&str>,
    policy: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let policy = parse_mfa_policy(policy)?;
    match group {
        Some(name) => {
            let group = find_group(ctx, name)?;
            let mut p = ctx.store.group_policy(group.id)?;
            p.mfa = policy;
            ctx.store.set_group_policy(group.id, p)?;
        }
        None => match policy {
            Some(p) => ctx.store.set_setting(SETTING_MFA_POLICY, p.as_str())?,
            None => {
                ctx.store.remove_setting(SETTING_MFA_POLICY)?;
            }
        },
    }
    policy_show(ctx, actor)
}

pub fn app_password_policy_set(
    ctx: &AdminContext,
    actor: &Actor,
    group: Option<&str>,
    setting: &str,
) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let setting = parse_switch(setting)?;
    match group {
        Some(name) => {
            let group = find_group(ctx, name)?;
            let mut p = ctx.store.group_policy(group.id)?;
            p.app_passwords = setting;
            ctx.store.set_group_policy(group.id, p)?;
        }
        None => match setting {
            Some(on) => ctx
                .store
                .set_setting(SETTING_APP_PASSWORDS, if on { "on" } else { "off" })?,
            None => {
                ctx.store.remove_setting(SETTING_APP_PASSWORDS)?;
            }
        },
    }
    policy_show(ctx, actor)
}

/// The global policy (config, override, in force) and every group that
/// sets its own.
pub fn policy_show(ctx: &AdminContext, actor: &Actor) -> Result<AdminAnswer, AccountError> {
    actor.require_operator()?;
    let d = ctx.policy_defaults;
    let (mfa, app) = policy::overrides(&ctx.store)?;
    let global = policy::global(d, mfa, app);
    let switch = |b: bool| if b { "on" } else { "off" }.to_string();
    let mut groups = Vec::new();
    for (id, p) in ctx.store.group_policies()? {
        let Some(group) = ctx.store.group(id)? else {
            continue;
        };
        if p == GroupPolicy::default() {
            continue;
        }
        groups.push(GroupPolicyView {
            group: group.name,
            mfa: p.mfa.map(|m| m.as_str().to_string()),
            app_passwords: p.app_passwords.map(switch),
        });
    }
    Ok(AdminAnswer::Policy(PolicyView {
        mfa: PolicySource {
            config: d.mfa.as_str().to_string(),
            overridden: mfa.map(|m| m.as_str().to_string()),
            effective: global.mfa.as_str().to_string(),
        },
        app_passwords: PolicySource {
            config: switch(d.app_passwords),
            overridden: app.map(switch),
            effective: switch(global.app_passwords),
        },
        groups,
        precedence: "an explicit group policy beats the global one; among a user's groups \
                     (nested included) the strictest wins; the global override beats the config"
            .to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::auth::password::Hasher;
    use crate::auth::{Authenticator, BindOutcome, Refusal, Secret as BindSecret};
    use crate::config::Config;
    use crate::directory::Identity;
    use crate::store::{NewUser, Store};

    fn setup() -> (AdminContext, Authenticator) {
        let store = Store::temporary().expect("store");
        let hasher = Hasher::for_tests();
        for name in ["alice", "bob"] {
            let u = store
                .create_user(NewUser {
                    username: name.into(),
                    ..NewUser::default()
                })
                .expect("user");
            let phc = hasher.hash_blocking("pw").expect("hash");
            store.set_password_hash(u.id, &phc).expect("password");
        }
        let ctx = AdminContext::new(store.clone(), hasher.clone(), &Config::default());
        let auth = Authenticator::new(store, hasher);
        (ctx, auth)
    }

    fn bound(ctx: &AdminContext, name: &str) -> Actor {
        let user = find_user(ctx, name).expect("user");
        Actor::Bound(Identity::User {
            id: user.id,
            username: user.username,
        })
    }

    /// A user enrols their own authenticator: the device counts for
    /// nothing until a right code confirms it, only its owner (or the
    /// operator) may do it, and the code used to confirm cannot bind.
    #[tokio::test]
    async fn self_service_enrolment_confirms_with_a_code_used_once() {
        let (ctx, auth) = setup();
        let alice = bound(&ctx, "alice");
        let AdminAnswer::TotpAdded(added) =
            totp_begin(&ctx, &alice, "alice", 6, Some("phone".into())).expect("begin")
        else {
            panic!("a TOTP answer");
        };
        assert!(matches!(
            totp_begin(&ctx, &bound(&ctx, "bob"), "alice", 6, None),
            Err(AccountError::Denied(_))
        ));
        let user = find_user(&ctx, "alice").expect("user");
        let secret = ctx
            .store
            .totp_secret(
                user.id,
                DeviceId(parse_id("device", &added.id).expect("id")),
            )
            .expect("read")
            .expect("secret");
        let now = SystemTime::now();
        let step = totp::step_of(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .expect("time")
                .as_secs(),
        );
        let code = totp::code_at_step(&secret.0, 6, step);
        let peer = IpAddr::from([127, 0, 0, 1]);

        // Pending: the password alone still binds, no code is asked for.
        let outcome = auth
            .authenticate("alice", &BindSecret("pw".into()), peer, now)
            .await;
        assert!(matches!(outcome, BindOutcome::Success { .. }));

        let wrong = totp::code_at_step(&secret.0, 6, step + 100);
        assert!(matches!(
            totp_confirm(&ctx, &alice, "alice", &added.id, &wrong, now),
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            totp_confirm(&ctx, &bound(&ctx, "bob"), "alice", &added.id, &code, now),
            Err(AccountError::Denied(_))
        ));
        let AdminAnswer::Devices(devices) =
            totp_confirm(&ctx, &alice, "alice", &added.id, &code, now).expect("confirm")
        else {
            panic!("a device answer");
        };
        assert!(devices[0].confirmed);
        assert!(matches!(
            totp_confirm(&ctx, &alice, "alice", &added.id, &code, now),
            Err(AccountError::Invalid(_))
        ));

        // Confirmed: a code is required now, and the confirming one is used.
        let outcome = auth
            .authenticate("alice", &BindSecret("pw".into()), peer, now)
            .await;
        assert!(matches!(
            outcome,
            BindOutcome::Refused {
                reason: Refusal::CodeMissing,
                ..
            }
        ));
        let replay = BindSecret(format!("pw;{code}"));
        let outcome = auth.authenticate("alice", &replay, peer, now).await;
        assert!(matches!(
            outcome,
            BindOutcome::Refused {
                reason: Refusal::CodeReplayed,
                ..
            }
        ));
        let next = totp::code_at_step(&secret.0, 6, step + 1);
        let later = now + Duration::from_secs(totp::PERIOD);
        let outcome = auth
            .authenticate("alice", &BindSecret(format!("pw;{next}")), peer, later)
            .await;
        assert!(matches!(outcome, BindOutcome::Success { .. }));
    }
}
