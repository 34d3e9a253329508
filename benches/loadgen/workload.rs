//! The `run` command: workloads, workers and the measured window.
//!
//! Every worker owns one LDAP connection (or opens one per operation, for
//! `bind-search-new-conn` and `web-service`) and runs one operation at a
//! time, as an application's connection pool does. Operations that start during the
//! warm-up are not recorded; no operation starts after the end, and every
//! operation has a timeout, so a run always stops by itself.
//!
//! `search-shape` runs any one search (base, scope, filter template,
//! attributes, expected entry count) given on the command line: the query
//! shapes of applications and NSS clients in compare-openldap.sh's matrix.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use ldap3::asn1::{StructureTag, PL};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, StdStream};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rustls::ClientConfig;

use crate::stats::{self, Errors, Report, Section};
use crate::tls::tls_client_config;
use crate::totp;

/// Longest run accepted, so a typo cannot keep the machine busy for hours.
const MAX_DURATION_SECS: f64 = 3600.0;
/// A worker group stops after this many errors: the run is wrong anyway,
/// and a fast failure loop would only burn the shared cores.
const MAX_ERRORS: u64 = 1000;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Equality search by uid of a random user, returning cn, mail, uidNumber.
    SearchUid,
    /// Base-scope read of the big group's `member` attribute.
    SearchGroupMembers,
    /// `(memberOf=<big group>)` under the users: one entry per member.
    SearchMemberof,
    /// Simple bind on an open connection, rotating over the bind users.
    Bind,
    /// The same bind again and again: each connection binds as one user of
    /// its own (Portcullis's bind cache answers all but the first).
    BindRepeat,
    /// New connection, bind as a rotating user, search own entry, unbind.
    BindSearchNewConn,
    /// A pool-less web application's login lookup: new connection, bind as
    /// one service account (--service-dn, default bench-service), search a random user by uid
    /// (`(&(objectClass=inetOrgPerson)(uid=X))`, cn mail memberOf uid,
    /// exactly one entry), unbind. Over ldaps:// with --tls-ca.
    WebService,
    /// search-uid on --connections while --flood-connections bind.
    MixedArgon2Flood,
    /// Bind with `password;TOTP`, codes computed from `seed --totp-seed`.
    BindTotp,
    /// The search given by --filter, --search-base, --scope, --attrs and
    /// --expect, its placeholders filled from a random user and group.
    SearchShape,
}

/// The scope of `search-shape`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShapeScope {
    Base,
    One,
    Sub,
}

impl Workload {
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, value_enum)]
    workload: Workload,
    /// Server URL, ldap:// or ldaps://; only loopback addresses are accepted.
    #[arg(long, default_value = "ldap://127.0.0.1:3389")]
    url: String,
    /// ldaps:// only: PEM file of the certificate(s) to trust (the CA that
    /// signed the server's certificate). Nothing else is trusted, and the
    /// client speaks TLS 1.3 only.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// ldaps:// only: let the client resume TLS sessions from earlier
    /// connections (off: a full handshake per connection, as a pool-less
    /// application's libldap does).
    #[arg(long)]
    tls_resume: bool,
    /// ldaps:// only: verify the server's certificate chain on every
    /// connection, as libldap does (default: once per distinct chain; the
    /// handshake's signature is checked on every connection either way).
    #[arg(long)]
    tls_verify_every_chain: bool,
    /// Concurrent connections (searchers, for mixed-argon2-flood).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// mixed-argon2-flood: connections that bind without pause.
    #[arg(long, default_value_t = 8)]
    flood_connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (connections are opened in it).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds before one operation counts as failed.
    #[arg(long, default_value_t = 30.0)]
    op_timeout: f64,
    /// Users in the directory: search-uid picks from 1..=N.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Users are `<prefix><5-digit number>`.
    #[arg(long, default_value = "user")]
    user_prefix: String,
    /// Bind workloads rotate over users offset+1 ..= offset+bind-users.
    #[arg(long, default_value_t = 200)]
    bind_users: usize,
    #[arg(long, default_value_t = 0)]
    user_offset: usize,
    #[arg(long, default_value = "dc=example,dc=com")]
    base_dn: String,
    /// Search base for users (default `ou=users,<base>`).
    #[arg(long)]
    users_base: Option<String>,
    /// DN of a user; `{}` is the username (default `cn={},ou=users,<base>`).
    #[arg(long)]
    bind_dn_template: Option<String>,
    /// The group the group workloads read (default `cn=group001,ou=groups,<base>`).
    #[arg(long)]
    group_dn: Option<String>,
    /// Members the group workloads must get back (0: do not check).
    #[arg(long, default_value_t = 500)]
    expect_members: usize,
    /// Account the search workloads bind as (default: bench-search via the template).
    #[arg(long)]
    search_dn: Option<String>,
    /// The service account web-service binds as, every time (default:
    /// bench-service via the template; see dataset::SERVICE_USER).
    #[arg(long)]
    service_dn: Option<String>,
    /// Password of the bind users and of the search account.
    #[arg(long, default_value = "Bench-Passw0rd")]
    password: String,
    /// bind-totp: the file `seed --totp-seed` wrote, JSON lines
    /// `{"username","password","totp_secret_base32"}`.
    #[arg(long)]
    totp_seed: Option<PathBuf>,
    /// Server process to read CPU time from (/proc/PID/stat).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Client runtime threads.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Free text stored in the report (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Row name in the comparison table (default: the workload).
    #[arg(long)]
    row: Option<String>,
    #[command(flatten)]
    shape: ShapeArgs,
}

/// The search of `search-shape`. Templates may hold `{uid}`, `{uidNumber}`
/// and `{userDn}` of a random user, `{group}`, `{gidNumber}` and
/// `{groupDn}` of a random group, and `{base}`, filled anew for every
/// request from the dataset's naming (benches/loadgen/dataset.rs).
#[derive(Args, Debug)]
pub struct ShapeArgs {
    /// The filter template, e.g. `(&(objectClass=posixAccount)(uid={uid}))`.
    #[arg(long)]
    filter: Option<String>,
    /// The search base template (default: --base-dn).
    #[arg(long)]
    search_base: Option<String>,
    #[arg(long, value_enum, default_value_t = ShapeScope::Sub)]
    scope: ShapeScope,
    /// Requested attributes, comma-separated (none: all user attributes).
    #[arg(long, value_delimiter = ',')]
    attrs: Vec<String>,
    /// Entries every search must return; another count is an error, so a
    /// wrong answer cannot pass for a fast one (unset: not checked).
    #[arg(long)]
    expect: Option<usize>,
    /// Random users come from 1..=N (default: --users); 500 keeps them in
    /// group001 and one small group, so their group count is known.
    #[arg(long)]
    pick_users: Option<usize>,
    /// Random groups come from `group001` ..= this many.
    #[arg(long, default_value_t = 50)]
    groups: usize,
    /// User N's uidNumber is this plus N (the LDIF's numbering; the script
    /// reads each server's from user00001).
    #[arg(long, default_value_t = 2001)]
    uid_number_base: u64,
    /// Group N's gidNumber is this plus N.
    #[arg(long, default_value_t = 4000)]
    gid_number_base: u64,
}

/// `search-shape`'s search, resolved once.
struct Shape {
    base: String,
    scope: Scope,
    filter: String,
    attrs: Vec<String>,
    expect: Option<usize>,
    pick_users: usize,
    groups: usize,
    uid_number_base: u64,
    gid_number_base: u64,
}

/// The values of one request's placeholders.
struct Vars<'a> {
    uid: &'a str,
    uid_number: u64,
    user_dn: &'a str,
    group: &'a str,
    gid_number: u64,
    group_dn: &'a str,
    base: &'a str,
}

/// `template` with its placeholders replaced; an unknown `{name}` is an
/// error (checked once before the run, so a typo cannot become a filter
/// that matches nothing quickly).
fn fill(template: &str, v: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("{template}: unclosed {{"))?;
        match &after[..close] {
            "uid" => out.push_str(v.uid),
            "uidNumber" => out.push_str(&v.uid_number.to_string()),
            "userDn" => out.push_str(v.user_dn),
            "group" => out.push_str(v.group),
            "gidNumber" => out.push_str(&v.gid_number.to_string()),
            "groupDn" => out.push_str(v.group_dn),
            "base" => out.push_str(v.base),
            other => return Err(format!("{template}: unknown placeholder {{{other}}}")),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Everything a worker needs, resolved once.
struct Ctx {
    url: String,
    /// Where `url` points, for the socket opened before ldap3 takes it.
    host_port: String,
    users: usize,
    user_prefix: String,
    bind_users: usize,
    user_offset: usize,
    users_base: String,
    bind_dn_template: String,
    group_dn: String,
    expect_members: usize,
    search_dn: String,
    service_dn: String,
    password: String,
    op_timeout: Duration,
    /// ldaps:// URLs: the client configuration every connection shares.
    tls: Option<Arc<ClientConfig>>,
    measure_start: Instant,
    end: Instant,
    /// Next bind user, shared so connections do not bind the same user.
    next_user: AtomicUsize,
    totp: Option<TotpUsers>,
    /// search-shape only.
    shape: Option<Shape>,
    base_dn: String,
}

impl Ctx {
    fn username(&self, i: usize) -> String {
        format!("{}{:05}", self.user_prefix, i)
    }

    fn user_dn(&self, name: &str) -> String {
        self.bind_dn_template.replace("{}", name)
    }

    fn next_bind_user(&self) -> String {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        self.username(self.user_offset + 1 + n % self.bind_users.max(1))
    }

    /// Base and filter of one search-shape request, for user `i` and
    /// group `j` (both from 1).
    fn shape_request(&self, shape: &Shape, i: usize, j: usize) -> Result<(String, String), String> {
        let uid = self.username(i);
        let user_dn = self.user_dn(&uid);
        let group = format!("group{j:03}");
        let group_dn = format!("cn={group},ou=groups,{}", self.base_dn);
        let vars = Vars {
            uid: &uid,
            uid_number: shape.uid_number_base + i as u64,
            user_dn: &user_dn,
            group: &group,
            gid_number: shape.gid_number_base + j as u64,
            group_dn: &group_dn,
            base: &self.base_dn,
        };
        Ok((fill(&shape.base, &vars)?, fill(&shape.filter, &vars)?))
    }
}

/// Why an operation failed; a connection error drops the connection.
enum OpError {
    Result(String),
    Conn(String),
    /// Not a failure: nothing to do before this much time passes (bind-totp
    /// when every user has bound in the current step). Neither counted nor
    /// timed.
    Wait(Duration),
}

impl From<ldap3::LdapError> for OpError {
    fn from(e: ldap3::LdapError) -> Self {
        OpError::Conn(e.to_string())
    }
}

pub fn run(args: RunArgs) -> Result<(), String> {
    let ldaps = check_loopback(&args.url)?;
    if !ldaps && (args.tls_ca.is_some() || args.tls_resume || args.tls_verify_every_chain) {
        return Err(
            "--tls-ca, --tls-resume and --tls-verify-every-chain are for ldaps:// URLs".into(),
        );
    }
    if !(args.duration > 0.0 && args.duration <= MAX_DURATION_SECS) {
        return Err(format!(
            "--duration must be in (0, {MAX_DURATION_SECS}] seconds"
        ));
    }
    if !(0.0..=MAX_DURATION_SECS).contains(&args.warmup) || args.op_timeout <= 0.0 {
        return Err("--warmup and --op-timeout must be reasonable".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("starting the client runtime: {e}"))?;
    let report = runtime.block_on(measure(&args))?;
    if args.json {
        let line = serde_json::to_string(&report).map_err(|e| e.to_string())?;
        println!("{line}");
    } else {
        report.print_text();
    }
    match report.total_errors() {
        0 => Ok(()),
        n => {
            for s in &report.sections {
                for e in &s.first_errors {
                    eprintln!("{} {}: {e}", report.label, s.name);
                }
            }
            Err(format!(
                "{} on {}: {n} operations failed",
                report.row, report.url
            ))
        }
    }
}

/// `ldap://` or `ldaps://host[:port]` whose host is a loopback address;
/// whether it is ldaps.
fn check_loopback(url: &str) -> Result<bool, String> {
    let (rest, ldaps) = if let Some(rest) = url.strip_prefix("ldap://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("ldaps://") {
        (rest, true)
    } else {
        return Err("only ldap:// and ldaps:// URLs are supported".into());
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(ldaps)
    } else {
        Err(format!(
            "{url}: only loopback targets are allowed (127.0.0.0/8, ::1, localhost)"
        ))
    }
}

/// `host:port` of an ldap:// or ldaps:// URL, with the scheme's port when
/// the URL has none.
fn host_port(url: &str) -> String {
    let (rest, port) = match url.strip_prefix("ldaps://") {
        Some(rest) => (rest, 636),
        None => (url.strip_prefix("ldap://").unwrap_or(url), 389),
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let has_port = match hostport.rsplit_once(']') {
        Some((_, after)) => after.starts_with(':'),
        None => hostport.contains(':'),
    };
    if has_port {
        hostport.to_string()
    } else {
        format!("{hostport}:{port}")
    }
}

async fn measure(args: &RunArgs) -> Result<Report, String> {
    let base = &args.base_dn;
    let template = args
        .bind_dn_template
        .clone()
        .unwrap_or_else(|| format!("cn={{}},ou=users,{base}"));
    if !template.contains("{}") {
        return Err("--bind-dn-template must contain {}".into());
    }
    let totp = match (args.workload, &args.totp_seed) {
        (Workload::BindTotp, Some(path)) => Some(TotpUsers::load(path)?),
        (Workload::BindTotp, None) => return Err("bind-totp needs --totp-seed FILE".into()),
        _ => None,
    };
    let shape = match (args.workload, &args.shape.filter) {
        (Workload::SearchShape, Some(filter)) => Some(Shape {
            base: args
                .shape
                .search_base
                .clone()
                .unwrap_or_else(|| base.clone()),
            scope: match args.shape.scope {
                ShapeScope::Base => Scope::Base,
                ShapeScope::One => Scope::OneLevel,
                ShapeScope::Sub => Scope::Subtree,
            },
            filter: filter.clone(),
            attrs: args.shape.attrs.clone(),
            expect: args.shape.expect,
            pick_users: args.shape.pick_users.unwrap_or(args.users).max(1),
            groups: args.shape.groups.max(1),
            uid_number_base: args.shape.uid_number_base,
            gid_number_base: args.shape.gid_number_base,
        }),
        (Workload::SearchShape, None) => return Err("search-shape needs --filter".into()),
        _ => None,
    };
    let tls = if args.url.starts_with("ldaps://") {
        let ca = args
            .tls_ca
            .as_deref()
            .ok_or("ldaps:// needs --tls-ca FILE (the certificate to trust)")?;
        Some(tls_client_config(
            ca,
            args.tls_resume,
            args.tls_verify_every_chain,
        )?)
    } else {
        None
    };
    let start = Instant::now();
    let measure_start = start + Duration::from_secs_f64(args.warmup);
    let ctx = Arc::new(Ctx {
        url: args.url.clone(),
        host_port: host_port(&args.url),
        users: args.users.max(1),
        user_prefix: args.user_prefix.clone(),
        bind_users: args.bind_users,
        user_offset: args.user_offset,
        users_base: args
            .users_base
            .clone()
            .unwrap_or_else(|| format!("ou=users,{base}")),
        search_dn: args
            .search_dn
            .clone()
            .unwrap_or_else(|| template.replace("{}", crate::dataset::SEARCH_USER)),
        service_dn: args
            .service_dn
            .clone()
            .unwrap_or_else(|| template.replace("{}", crate::dataset::SERVICE_USER)),
        bind_dn_template: template,
        group_dn: args
            .group_dn
            .clone()
            .unwrap_or_else(|| format!("cn=group001,ou=groups,{base}")),
        expect_members: args.expect_members,
        password: args.password.clone(),
        op_timeout: Duration::from_secs_f64(args.op_timeout),
        tls,
        measure_start,
        end: measure_start + Duration::from_secs_f64(args.duration),
        next_user: AtomicUsize::new(0),
        totp,
        shape,
        base_dn: base.clone(),
    });
    if let Some(shape) = &ctx.shape {
        // Every placeholder known, before any load.
        ctx.shape_request(shape, 1, 1)?;
    }

    // (section name, operation, connections)
    let groups: Vec<(&str, Op, usize)> = match args.workload {
        Workload::SearchUid => vec![("search", Op::SearchUid, args.connections)],
        Workload::SearchGroupMembers => {
            vec![("search", Op::GroupMembers, args.connections)]
        }
        Workload::SearchMemberof => vec![("search", Op::MemberOf, args.connections)],
        Workload::Bind => vec![("bind", Op::Bind, args.connections)],
        Workload::BindRepeat => vec![("bind", Op::BindRepeat, args.connections)],
        Workload::BindSearchNewConn => vec![("session", Op::NewConn, args.connections)],
        Workload::WebService => vec![("session", Op::WebService, args.connections)],
        Workload::MixedArgon2Flood => vec![
            ("search", Op::SearchUid, args.connections),
            ("bind", Op::Bind, args.flood_connections),
        ],
        Workload::BindTotp => vec![("bind", Op::Totp, args.connections)],
        Workload::SearchShape => vec![("search", Op::Shape, args.connections)],
    };

    let mut handles = Vec::new();
    for (gi, (_, op, conns)) in groups.iter().enumerate() {
        let errors = Arc::new(Errors::default());
        let mut workers = Vec::new();
        for w in 0..*conns {
            let ctx = ctx.clone();
            let errors = errors.clone();
            let op = *op;
            let seed = (gi as u64) << 32 | w as u64;
            workers.push(tokio::spawn(worker(ctx, op, seed, errors)));
        }
        handles.push((errors, workers));
    }

    tokio::time::sleep_until(measure_start.into()).await;
    let cpu_before = args
        .server_pid
        .map(stats::process_cpu_seconds)
        .transpose()?;
    let mut merged = Vec::new();
    for (errors, workers) in handles {
        let mut h = stats::new_histogram();
        for w in workers {
            let part = w.await.map_err(|e| format!("a worker failed: {e}"))?;
            h.add(&part)
                .map_err(|e| format!("merging histograms: {e}"))?;
        }
        merged.push((h, errors));
    }
    let measured_secs = measure_start.elapsed().as_secs_f64();
    let cpu_after = args
        .server_pid
        .map(stats::process_cpu_seconds)
        .transpose()?;
    let rss = args.server_pid.and_then(stats::process_rss_kib);
    if let Some(t) = &ctx.totp {
        t.save_steps()?;
        let n = t.exhausted.load(Ordering::Relaxed);
        if n > 0 {
            eprintln!(
                "bind-totp: all {} users had bound in the current 30 s step ({n} times); \
                 the workers idled until the next step (not measured). Seed more with \
                 `seed --totp-users` for a steady rate.",
                t.users.len()
            );
        }
    }

    let sections: Vec<Section> = groups
        .iter()
        .zip(&merged)
        .map(|((name, _, conns), (h, errors))| Section::new(name, *conns, h, measured_secs, errors))
        .collect();
    let total_ops: u64 = sections.iter().map(|s| s.ops).sum();
    let server_cpu_secs = cpu_before.zip(cpu_after).map(|(b, a)| a - b);
    Ok(Report {
        workload: args.workload.name(),
        row: args.row.clone().unwrap_or_else(|| args.workload.name()),
        url: args.url.clone(),
        label: args.label.clone(),
        measured_secs,
        sections,
        server_cpu_secs,
        server_cpu_ms_per_op: server_cpu_secs
            .filter(|_| total_ops > 0)
            .map(|cpu| cpu * 1000.0 / total_ops as f64),
        server_rss_kib: rss,
    })
}

#[derive(Copy, Clone)]
enum Op {
    SearchUid,
    GroupMembers,
    MemberOf,
    Bind,
    BindRepeat,
    NewConn,
    WebService,
    Totp,
    Shape,
}

impl Op {
    /// Whether the worker keeps one connection, bound as the search account
    /// (`Some(true)`) or left anonymous for binds (`Some(false)`).
    fn persistent(self) -> Option<bool> {
        match self {
            Op::SearchUid | Op::GroupMembers | Op::MemberOf | Op::Shape => Some(true),
            Op::Bind | Op::BindRepeat | Op::Totp => Some(false),
            Op::NewConn | Op::WebService => None,
        }
    }
}

/// Opens a connection with TCP_NODELAY, as both servers set on their side.
/// ldap3 leaves Nagle on, and then a request written right after the
/// client's TLS Finished waits for the server's delayed ACK (40 ms) when
/// the server has nothing to send in between (slapd sends no session
/// tickets): that measured the client's socket, not the server.
async fn connect(ctx: &Ctx) -> Result<Ldap, OpError> {
    let stream = tokio::net::TcpStream::connect(&ctx.host_port)
        .await
        .map_err(|e| OpError::Conn(format!("connecting to {}: {e}", ctx.host_port)))?;
    stream
        .set_nodelay(true)
        .map_err(|e| OpError::Conn(format!("setting up the socket: {e}")))?;
    let stream = stream
        .into_std()
        .map_err(|e| OpError::Conn(format!("setting up the socket: {e}")))?;
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(ctx.op_timeout)
        .set_std_stream(StdStream::Tcp(stream));
    if let Some(tls) = &ctx.tls {
        settings = settings.set_config(tls.clone());
    }
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &ctx.url).await?;
    ldap3::drive!(conn);
    Ok(ldap)
}

async fn bind(ldap: &mut Ldap, dn: &str, password: &str) -> Result<(), OpError> {
    let res = ldap.simple_bind(dn, password).await?;
    if res.rc == 0 {
        Ok(())
    } else {
        Err(OpError::Result(format!(
            "bind as {dn}: result {} {}",
            res.rc, res.text
        )))
    }
}

async fn worker(ctx: Arc<Ctx>, op: Op, seed: u64, errors: Arc<Errors>) -> Histogram<u64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_cafe);
    let mut h = stats::new_histogram();
    let mut conn: Option<Ldap> = None;
    // bind-repeat: this worker's one user (the others leave the shared
    // rotation alone).
    let own_user = match op {
        Op::BindRepeat => ctx.next_bind_user(),
        _ => String::new(),
    };
    while Instant::now() < ctx.end && errors.count() < MAX_ERRORS {
        if conn.is_none() {
            if let Some(as_search) = op.persistent() {
                let opened = tokio::time::timeout(ctx.op_timeout, async {
                    let mut ldap = connect(&ctx).await?;
                    if as_search {
                        bind(&mut ldap, &ctx.search_dn, &ctx.password).await?;
                    }
                    Ok::<_, OpError>(ldap)
                })
                .await;
                match opened {
                    Ok(Ok(ldap)) => conn = Some(ldap),
                    Ok(Err(OpError::Result(e) | OpError::Conn(e))) => {
                        errors.add(format!("opening a connection: {e}"));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Ok(Err(OpError::Wait(_))) => continue,
                    Err(_) => {
                        errors.add("opening a connection: timed out".into());
                        continue;
                    }
                }
            }
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            ctx.op_timeout,
            one(&ctx, op, &mut conn, &mut rng, &own_user),
        )
        .await;
        match outcome {
            Ok(Ok(())) => {
                if started >= ctx.measure_start {
                    stats::record(&mut h, started.elapsed());
                }
            }
            Ok(Err(OpError::Result(e))) => errors.add(e),
            Ok(Err(OpError::Wait(wait))) => {
                let until = (Instant::now() + wait).min(ctx.end);
                tokio::time::sleep_until(until.into()).await;
            }
            Ok(Err(OpError::Conn(e))) => {
                errors.add(format!("connection: {e}"));
                conn = None;
            }
            Err(_) => {
                errors.add(format!("operation timed out after {:?}", ctx.op_timeout));
                conn = None;
            }
        }
    }
    if let Some(mut ldap) = conn {
        let _ = ldap.unbind().await;
    }
    h
}

/// One operation of `op`.
async fn one(
    ctx: &Ctx,
    op: Op,
    conn: &mut Option<Ldap>,
    rng: &mut StdRng,
    own_user: &str,
) -> Result<(), OpError> {
    match op {
        Op::NewConn => {
            let name = ctx.next_bind_user();
            let mut ldap = connect(ctx).await?;
            bind(&mut ldap, &ctx.user_dn(&name), &ctx.password).await?;
            search_count(
                &mut ldap,
                &ctx.users_base,
                Scope::Subtree,
                &format!("(uid={name})"),
                &["cn", "mail", "memberOf"],
                1,
            )
            .await?;
            ldap.unbind().await?;
            Ok(())
        }
        Op::WebService => {
            let i = rng.gen_range(1..=ctx.users);
            let filter = format!("(&(objectClass=inetOrgPerson)(uid={}))", ctx.username(i));
            let mut ldap = connect(ctx).await?;
            bind(&mut ldap, &ctx.service_dn, &ctx.password).await?;
            search_count(
                &mut ldap,
                &ctx.users_base,
                Scope::Subtree,
                &filter,
                &["cn", "mail", "memberOf", "uid"],
                1,
            )
            .await?;
            ldap.unbind().await?;
            Ok(())
        }
        _ => {
            let ldap = conn
                .as_mut()
                .ok_or_else(|| OpError::Conn("no connection".into()))?;
            match op {
                Op::SearchUid => {
                    let i = rng.gen_range(1..=ctx.users);
                    let filter = format!("(uid={})", ctx.username(i));
                    search_count(
                        ldap,
                        &ctx.users_base,
                        Scope::Subtree,
                        &filter,
                        &["cn", "mail", "uidNumber"],
                        1,
                    )
                    .await
                }
                Op::GroupMembers => {
                    let (entries, _) = search(
                        ldap,
                        &ctx.group_dn,
                        Scope::Base,
                        "(objectClass=*)",
                        &["member"],
                    )
                    .await?;
                    let members = entries.first().map_or(0, |e| count_values(e, "member"));
                    expect(ctx.expect_members, members, "member values")
                }
                Op::MemberOf => {
                    let filter = format!("(memberOf={})", ctx.group_dn);
                    search_count(
                        ldap,
                        &ctx.users_base,
                        Scope::Subtree,
                        &filter,
                        &["cn"],
                        ctx.expect_members,
                    )
                    .await
                }
                Op::Bind => {
                    let name = ctx.next_bind_user();
                    bind(ldap, &ctx.user_dn(&name), &ctx.password).await
                }
                Op::BindRepeat => bind(ldap, &ctx.user_dn(own_user), &ctx.password).await,
                Op::Totp => {
                    let users = ctx
                        .totp
                        .as_ref()
                        .ok_or_else(|| OpError::Result("no TOTP users".into()))?;
                    let (user, code) = users.next().map_err(OpError::Wait)?;
                    let credential = format!("{};{}", user.password, code);
                    bind(ldap, &ctx.user_dn(&user.username), &credential).await
                }
                Op::Shape => {
                    let shape = ctx
                        .shape
                        .as_ref()
                        .ok_or_else(|| OpError::Result("no search shape".into()))?;
                    let i = rng.gen_range(1..=shape.pick_users);
                    let j = rng.gen_range(1..=shape.groups);
                    let (base, filter) = ctx.shape_request(shape, i, j).map_err(OpError::Result)?;
                    let attrs: Vec<&str> = shape.attrs.iter().map(String::as_str).collect();
                    let (entries, _) = search(ldap, &base, shape.scope, &filter, &attrs).await?;
                    match shape.expect {
                        Some(want) if want != entries.len() => Err(OpError::Result(format!(
                            "entries for {filter} under {base}: got {}, expected {want}",
                            entries.len()
                        ))),
                        _ => Ok(()),
                    }
                }
                Op::NewConn | Op::WebService => Err(OpError::Result("unreachable".into())),
            }
        }
    }
}

async fn search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
) -> Result<(Vec<ldap3::ResultEntry>, ldap3::LdapResult), OpError> {
    let ldap3::SearchResult(entries, res) = ldap.search(base, scope, filter, attrs).await?;
    if res.rc != 0 {
        return Err(OpError::Result(format!(
            "search {filter} under {base}: result {} {}",
            res.rc, res.text
        )));
    }
    Ok((entries, res))
}

async fn search_count(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
    want: usize,
) -> Result<(), OpError> {
    let (entries, _) = search(ldap, base, scope, filter, attrs).await?;
    expect(want, entries.len(), &format!("entries for {filter}"))
}

/// The number of values of attribute `name` in a search result entry,
/// read from the BER tree the client already decoded, without converting
/// every value into a `String` as `SearchEntry::construct` does (that was
/// a third of the load generator's CPU on the 500-member group read).
fn count_values(entry: &ldap3::ResultEntry, name: &str) -> usize {
    fn children(tag: &StructureTag) -> &[StructureTag] {
        match &tag.payload {
            PL::C(items) => items,
            PL::P(_) => &[],
        }
    }
    // SearchResultEntry ::= [APPLICATION 4] SEQUENCE { objectName,
    //     attributes SEQUENCE OF SEQUENCE { type, vals SET OF value } }
    let Some(attributes) = children(&entry.0).get(1) else {
        return 0;
    };
    children(attributes)
        .iter()
        .find(|attribute| {
            matches!(children(attribute).first(),
                Some(StructureTag { payload: PL::P(t), .. }) if t.eq_ignore_ascii_case(name.as_bytes()))
        })
        .and_then(|attribute| children(attribute).get(1))
        .map_or(0, |values| children(values).len())
}

fn expect(want: usize, got: usize, what: &str) -> Result<(), OpError> {
    if want == 0 || want == got {
        Ok(())
    } else {
        Err(OpError::Result(format!(
            "{what}: got {got}, expected {want}"
        )))
    }
}

struct TotpUser {
    username: String,
    password: String,
    secret: Vec<u8>,
}

/// Users with TOTP devices. A code is accepted once per device and time
/// step, so each user binds at most once per 30 s step: with many binds per
/// second the file needs more users than binds per step.
///
/// The server remembers each device's last accepted step across runs, so
/// the steps used are kept in `<seed file>.steps` (JSON, username → step):
/// a run started within 30 s of the previous one does not reuse a code.
/// One client at a time per seed file.
struct TotpUsers {
    users: Vec<TotpUser>,
    /// The last step each user bound with (u64::MAX: never).
    last_step: Vec<AtomicU64>,
    cursor: AtomicUsize,
    /// `<seed file>.steps`.
    steps_path: PathBuf,
    /// Times a worker found every user used in the current step and waited
    /// for the next one (that wait is not measured).
    exhausted: AtomicU64,
}

impl TotpUsers {
    fn load(path: &PathBuf) -> Result<TotpUsers, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut users = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let l: crate::dataset::TotpSeedLine = serde_json::from_str(line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
            let secret = totp::base32_decode(&l.totp_secret_base32)
                .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
            users.push(TotpUser {
                username: l.username,
                password: l.password,
                secret,
            });
        }
        if users.is_empty() {
            return Err(format!("{}: no users", path.display()));
        }
        let mut steps_path = path.clone().into_os_string();
        steps_path.push(".steps");
        let steps_path = PathBuf::from(steps_path);
        let used: HashMap<String, u64> = match std::fs::read_to_string(&steps_path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", steps_path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(format!("reading {}: {e}", steps_path.display())),
        };
        let last_step = users
            .iter()
            .map(|u| AtomicU64::new(used.get(&u.username).copied().unwrap_or(u64::MAX)))
            .collect();
        Ok(TotpUsers {
            users,
            last_step,
            cursor: AtomicUsize::new(0),
            steps_path,
            exhausted: AtomicU64::new(0),
        })
    }

    /// Writes the last step each user bound with, for the next run.
    fn save_steps(&self) -> Result<(), String> {
        let used: HashMap<&str, u64> = self
            .users
            .iter()
            .zip(&self.last_step)
            .map(|(u, s)| (u.username.as_str(), s.load(Ordering::Relaxed)))
            .filter(|(_, s)| *s != u64::MAX)
            .collect();
        let text = serde_json::to_string(&used).map_err(|e| e.to_string())?;
        std::fs::write(&self.steps_path, text)
            .map_err(|e| format!("writing {}: {e}", self.steps_path.display()))
    }

    /// A user who has not bound in the current step (nor a later one), and
    /// its code; when
    /// every user has, the time until the next step.
    fn next(&self) -> Result<(&TotpUser, String), Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let step = totp::step(now.as_secs());
        for _ in 0..self.users.len() {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.users.len();
            let last = self.last_step[i].load(Ordering::Relaxed);
            let unused = last == u64::MAX || last < step;
            if unused
                && self.last_step[i]
                    .compare_exchange(last, step, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                let user = &self.users[i];
                return Ok((user, totp::code(&user.secret, step, 6)));
            }
        }
        self.exhausted.fetch_add(1, Ordering::Relaxed);
        let into_step = now.as_secs_f64() % 30.0;
        Err(Duration::from_secs_f64(30.0 - into_step + 0.01))
    }
}

#[cfg(test)]
mod tests {
    use super::{check_loopback, count_values, fill, host_port, Vars};
    use ldap3::asn1::{StructureTag, TagClass, PL};
    use ldap3::{ResultEntry, SearchEntry};

    fn tag(class: TagClass, id: u64, payload: PL) -> StructureTag {
        StructureTag { class, id, payload }
    }

    fn octets(value: &str) -> StructureTag {
        tag(TagClass::Universal, 4, PL::P(value.as_bytes().to_vec()))
    }

    fn attribute(name: &str, values: &[&str]) -> StructureTag {
        let set = values.iter().map(|v| octets(v)).collect();
        tag(
            TagClass::Universal,
            16,
            PL::C(vec![octets(name), tag(TagClass::Universal, 17, PL::C(set))]),
        )
    }

    #[test]
    fn counts_values_as_search_entry_does() {
        let members: Vec<String> = (1..=7).map(|i| format!("cn=user{i},ou=users")).collect();
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        let entry = tag(
            TagClass::Application,
            4,
            PL::C(vec![
                octets("cn=group001,ou=groups"),
                tag(
                    TagClass::Universal,
                    16,
                    PL::C(vec![
                        attribute("cn", &["group001"]),
                        attribute("Member", &members),
                    ]),
                ),
            ]),
        );
        assert_eq!(count_values(&ResultEntry::new(entry.clone()), "member"), 7);
        assert_eq!(count_values(&ResultEntry::new(entry.clone()), "cn"), 1);
        assert_eq!(count_values(&ResultEntry::new(entry.clone()), "mail"), 0);
        let built = SearchEntry::construct(ResultEntry::new(entry));
        assert_eq!(built.attrs["Member"].len(), 7);
    }

    #[test]
    fn fills_every_placeholder_and_refuses_unknown_ones() {
        let v = Vars {
            uid: "user00042",
            uid_number: 2043,
            user_dn: "cn=user00042,ou=users,dc=example,dc=com",
            group: "group007",
            gid_number: 4007,
            group_dn: "cn=group007,ou=groups,dc=example,dc=com",
            base: "dc=example,dc=com",
        };
        let filled = fill(
            "(&(uid={uid})(uidNumber={uidNumber})(member={userDn})(cn={group})\
             (gidNumber={gidNumber})(memberOf={groupDn}))",
            &v,
        );
        assert_eq!(
            filled.as_deref(),
            Ok(
                "(&(uid=user00042)(uidNumber=2043)(member=cn=user00042,ou=users,dc=example,dc=com)\
                (cn=group007)(gidNumber=4007)(memberOf=cn=group007,ou=groups,dc=example,dc=com))"
            )
        );
        assert_eq!(
            fill("ou=users,{base}", &v).as_deref(),
            Ok("ou=users,dc=example,dc=com")
        );
        assert_eq!(
            fill("(objectClass=*)", &v).as_deref(),
            Ok("(objectClass=*)")
        );
        assert!(fill("(uid={user})", &v).is_err());
        assert!(fill("(uid={uid)", &v).is_err());
    }

    #[test]
    fn host_and_port_with_the_scheme_default() {
        assert_eq!(host_port("ldap://127.0.0.1:3389"), "127.0.0.1:3389");
        assert_eq!(host_port("ldap://127.0.0.1"), "127.0.0.1:389");
        assert_eq!(host_port("ldaps://localhost/"), "localhost:636");
        assert_eq!(host_port("ldaps://[::1]:1636/dc=x"), "[::1]:1636");
        assert_eq!(host_port("ldap://[::1]"), "[::1]:389");
    }

    #[test]
    fn only_loopback() {
        assert!(check_loopback("ldap://127.0.0.1:3389").is_ok());
        assert!(check_loopback("ldap://localhost:1389").is_ok());
        assert!(check_loopback("ldap://[::1]:1389").is_ok());
        assert!(check_loopback("ldap://10.0.0.1:389").is_err());
        assert!(check_loopback("ldap://example.com").is_err());
        assert!(check_loopback("ldaps://10.0.0.1:636").is_err());
        assert!(check_loopback("ldapi:///").is_err());
        assert_eq!(check_loopback("ldap://127.0.0.1:3389"), Ok(false));
        assert_eq!(check_loopback("ldaps://127.0.0.1:636"), Ok(true));
        assert_eq!(check_loopback("ldaps://[::1]:636"), Ok(true));
    }
}
