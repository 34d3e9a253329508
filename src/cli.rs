//! The command line: `portcullis [--config FILE] [--data-dir DIR] COMMAND`
//! (DESIGN.md section 6), parsed with clap and carried out here.
//!
//! `serve` resolves the settings, starts logging and hands over to
//! [`crate::server::serve`]. The `user` and `group` commands become
//! [`AdminRequest`]s: sent to a running server over its admin socket, or,
//! when none runs, executed against the store opened in this process. Their
//! answer is an [`AdminAnswer`]: its JSON document is printed with `--json`,
//! or its views are rendered as short text (`render`). Errors are one line
//! on stderr and exit code 1; usage errors exit with 2 (clap's convention,
//! and [`UsageError`] for those found after parsing).

mod mfa;
mod migrate;
mod migrate_store;
mod render;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::account::password::MAX_PASSWORD_LEN;
use crate::admin::socket::AdminClient;
use crate::admin::{
    bootstrap, execute, AdminAnswer, AdminContext, AdminError, AdminRequest, Password,
};
use crate::auth::password::Hasher;
use crate::config::{Config, Overrides};
use crate::server::Opening;
use crate::store::{Store, StoreError};

/// LDAP v3 directory server with MFA-aware bind.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version)]
pub struct Cli {
    /// TOML config file (default: $PORTCULLIS_CONFIG, else built-in defaults).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides data_dir and PORTCULLIS_DATA_DIR).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (LDAP, admin socket) until SIGTERM or ctrl-c.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage second factors (TOTP, static tokens) and the MFA policy.
    #[command(subcommand)]
    Mfa(mfa::MfaCommand),
    /// Manage app passwords (for systems that cannot send a code).
    #[command(subcommand)]
    AppPassword(mfa::AppPasswordCommand),
    /// Manage API tokens (`Authorization: Bearer` on the portal's JSON API).
    #[command(subcommand)]
    Token(mfa::TokenCommand),
    /// List and end sessions: LDAP connections bound as a user.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Import users and groups from LDIF (e.g. slapcat output) or a JSON
    /// backup, as one all-or-nothing change (through the running server,
    /// or into the store when none runs).
    Import(migrate::ImportArgs),
    /// Export the directory as LDIF or as a JSON backup, from one
    /// consistent snapshot (of the running server, or of the store when
    /// none runs).
    Export(migrate::ExportArgs),
    /// Copy the whole store into an empty PostgreSQL database or a new
    /// sled data directory, and check the counts per kind.
    ///
    /// Everything is copied with its credentials: users with password
    /// hashes, groups, memberships, settings, MFA devices (a used code stays
    /// used), app passwords, API tokens and portal sessions. A sled source
    /// must be stopped. Every instance of the target then needs this data
    /// directory's server.key. `--json` prints the counts as one object.
    MigrateStore(migrate_store::MigrateStoreArgs),
}

#[derive(Debug, Args, Default, PartialEq)]
pub struct ServeArgs {
    /// LDAP listener, e.g. 127.0.0.1:3389.
    #[arg(long, value_name = "ADDR")]
    pub ldap_addr: Option<String>,
    /// LDAPS listener, e.g. 127.0.0.1:6636.
    #[arg(long, value_name = "ADDR")]
    pub ldaps_addr: Option<String>,
    /// Portal (HTTP) listener, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// Base DN of the served tree, e.g. dc=example,dc=com.
    #[arg(long, value_name = "DN")]
    pub base_dn: Option<String>,
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum UserCommand {
    /// Create a user (without --password-stdin it cannot bind until
    /// `user passwd` sets a password).
    Add {
        /// Username.
        #[arg(value_name = "NAME")]
        username: String,
        /// Full name (displayName).
        #[arg(long = "name", value_name = "FULL")]
        full_name: Option<String>,
        /// Email address (mail).
        #[arg(long, value_name = "E")]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password, read from the first line of standard input.
    Passwd {
        /// Username.
        #[arg(value_name = "NAME")]
        username: String,
        /// Read the password from the first line of standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Show a user.
    Show {
        /// Username.
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// List all users.
    List,
    /// Allow a user to bind again.
    Enable {
        /// Username.
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// Refuse every bind of a user, at once.
    Disable {
        /// Username.
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// Delete a user, its credentials and its memberships.
    Delete {
        /// Username.
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// Set an attribute (displayName, mail, sn, givenName, loginShell, …,
    /// or goauthentik.io/user/can-change-username|name|email true|false).
    SetAttr {
        /// Username.
        #[arg(value_name = "NAME")]
        username: String,
        /// Attribute name, e.g. loginShell.
        #[arg(value_name = "KEY")]
        key: String,
        /// Attribute value.
        #[arg(value_name = "VALUE", allow_hyphen_values = true)]
        value: String,
    },
    /// Remove an attribute.
    UnsetAttr {
        /// Username.
        #[arg(value_name = "NAME")]
        username: String,
        /// Attribute name, e.g. loginShell.
        #[arg(value_name = "KEY")]
        key: String,
    },
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum SessionCommand {
    /// LDAP connections bound as a user (any user, or USER's), with their
    /// address, bind time and last request.
    List {
        #[arg(value_name = "USER")]
        username: Option<String>,
    },
    /// Close a session: the LDAP connection is dropped at once.
    End {
        /// Session id, as `session list` shows it.
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand, PartialEq)]
pub enum GroupCommand {
    /// Create a group.
    Add {
        /// Group name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Description of the group.
        #[arg(long, value_name = "D", allow_hyphen_values = true)]
        description: Option<String>,
    },
    /// Delete a group and every membership to and from it.
    Delete {
        /// Group name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Show a group.
    Show {
        /// Group name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List all groups.
    List,
    /// Make a user a direct member of a group.
    AddMember {
        /// Group name.
        #[arg(value_name = "GROUP")]
        group: String,
        /// Username.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Remove a user from a group.
    RemoveMember {
        /// Group name.
        #[arg(value_name = "GROUP")]
        group: String,
        /// Username.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Make CHILD a member of PARENT (nested groups).
    AddChild {
        /// The group that gains or loses a member.
        #[arg(value_name = "PARENT")]
        parent: String,
        /// The member group.
        #[arg(value_name = "CHILD")]
        child: String,
    },
    /// Remove CHILD from PARENT.
    RemoveChild {
        /// The group that gains or loses a member.
        #[arg(value_name = "PARENT")]
        parent: String,
        /// The member group.
        #[arg(value_name = "CHILD")]
        child: String,
    },
    /// Set an attribute that steers the portal for the group's members:
    /// goauthentik.io/user/can-change-username|name|email true|false.
    SetAttr {
        /// Group name.
        #[arg(value_name = "GROUP")]
        group: String,
        /// Attribute name.
        #[arg(value_name = "KEY")]
        key: String,
        /// Attribute value.
        #[arg(value_name = "VALUE")]
        value: String,
    },
    /// Remove an attribute of the group.
    UnsetAttr {
        /// Group name.
        #[arg(value_name = "GROUP")]
        group: String,
        /// Attribute name.
        #[arg(value_name = "KEY")]
        key: String,
    },
}

/// Carries out a parsed command line. Errors are printed as one line on
/// stderr (`error: …`) and give exit code 1.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = format!("{e:#}").replace(['\n', '\r'], " ");
            eprintln!("error: {text}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A command line that parsed but says something impossible, found after
/// clap (which would repeat the value, e.g. a URL with its password):
/// exit code 2, as clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides {
        data_dir: cli.data_dir,
        ..Overrides::default()
    };
    match cli.command {
        Command::Serve(args) => {
            overrides.ldap_addr = args.ldap_addr;
            overrides.ldaps_addr = args.ldaps_addr;
            overrides.http_addr = args.http_addr;
            overrides.base_dn = args.base_dn;
            let config = load_config(cli.config.as_deref(), &overrides)?;
            init_logging(&config.log.level, config.log.json)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("while starting the async runtime")?;
            runtime.block_on(crate::server::serve(config))
        }
        Command::User(cmd) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            let req = user_request(cmd, &mut io::stdin().lock())?;
            admin(&config, req, cli.json)
        }
        Command::Group(cmd) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            admin(&config, group_request(cmd), cli.json)
        }
        Command::Mfa(cmd) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            admin(&config, mfa::mfa_request(cmd), cli.json)
        }
        Command::AppPassword(cmd) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            admin(&config, mfa::app_password_request(cmd), cli.json)
        }
        Command::Token(cmd) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            admin(&config, mfa::token_request(cmd), cli.json)
        }
        Command::Session(cmd) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            let req = match cmd {
                SessionCommand::List { username } => AdminRequest::SessionList { username },
                SessionCommand::End { id } => AdminRequest::SessionEnd { id },
            };
            admin(&config, req, cli.json)
        }
        Command::Import(args) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            let _ = init_logging("warn", config.log.json);
            migrate::run_import(&config, args, cli.json)
        }
        Command::Export(args) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            let _ = init_logging("warn", config.log.json);
            migrate::run_export(&config, args)
        }
        Command::MigrateStore(args) => {
            let config = load_config(cli.config.as_deref(), &overrides)?;
            let _ = init_logging("warn", config.log.json);
            migrate_store::run(&config, args, cli.json)
        }
    }
}

fn load_config(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("PORTCULLIS_") {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| anyhow!("environment variable {name} is not valid UTF-8"))?;
        env.push((name.to_string(), value));
    }
    Ok(Config::load(file, env.into_iter(), overrides)?)
}

/// Logs to stderr, as text or one JSON object per line.
pub fn init_logging(level: &str, json: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| anyhow!("invalid log.level `{level}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal());
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow!("cannot start logging: {e}"))
}

fn user_request(cmd: UserCommand, stdin: &mut impl BufRead) -> anyhow::Result<AdminRequest> {
    Ok(match cmd {
        UserCommand::Add {
            username,
            full_name,
            email,
            password_stdin,
        } => AdminRequest::UserAdd {
            username,
            full_name,
            email,
            password: if password_stdin {
                Some(read_password(stdin)?)
            } else {
                None
            },
        },
        UserCommand::Passwd { username, .. } => AdminRequest::UserPasswd {
            username,
            password: read_password(stdin)?,
        },
        UserCommand::Show { username } => AdminRequest::UserShow { username },
        UserCommand::List => AdminRequest::UserList,
        UserCommand::Enable { username } => AdminRequest::UserEnable { username },
        UserCommand::Disable { username } => AdminRequest::UserDisable { username },
        UserCommand::Delete { username } => AdminRequest::UserDelete { username },
        UserCommand::SetAttr {
            username,
            key,
            value,
        } => AdminRequest::UserSetAttr {
            username,
            key,
            value,
        },
        UserCommand::UnsetAttr { username, key } => AdminRequest::UserUnsetAttr { username, key },
    })
}

fn group_request(cmd: GroupCommand) -> AdminRequest {
    match cmd {
        GroupCommand::Add { name, description } => AdminRequest::GroupAdd { name, description },
        GroupCommand::Delete { name } => AdminRequest::GroupDelete { name },
        GroupCommand::Show { name } => AdminRequest::GroupShow { name },
        GroupCommand::List => AdminRequest::GroupList,
        GroupCommand::AddMember { group, user } => AdminRequest::GroupAddMember { group, user },
        GroupCommand::RemoveMember { group, user } => {
            AdminRequest::GroupRemoveMember { group, user }
        }
        GroupCommand::AddChild { parent, child } => AdminRequest::GroupAddChild { parent, child },
        GroupCommand::SetAttr { group, key, value } => {
            AdminRequest::GroupSetAttr { group, key, value }
        }
        GroupCommand::UnsetAttr { group, key } => AdminRequest::GroupUnsetAttr { group, key },
        GroupCommand::RemoveChild { parent, child } => {
            AdminRequest::GroupRemoveChild { parent, child }
        }
    }
}

/// Reads one line (without its `\n` or `\r\n`) of at most
/// [`MAX_PASSWORD_LEN`] bytes; refuses an empty one.
fn read_password(input: &mut impl BufRead) -> anyhow::Result<Password> {
    if io::stdin().is_terminal() {
        eprint!("password (shown as typed): ");
        let _ = io::stderr().flush();
    }
    let mut buf = Vec::new();
    input
        .by_ref()
        .take(MAX_PASSWORD_LEN as u64 + 2)
        .read_until(b'\n', &mut buf)
        .context("while reading the password from standard input")?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.len() > MAX_PASSWORD_LEN {
        bail!("the password is longer than {MAX_PASSWORD_LEN} bytes");
    }
    if buf.is_empty() {
        bail!("no password on standard input (empty passwords are not allowed)");
    }
    let password =
        String::from_utf8(buf).map_err(|_| anyhow!("the password is not valid UTF-8"))?;
    Ok(Password::new(password))
}

/// How long a command waits for a store held by a process that is starting
/// or finishing (another command, or `serve` before its socket is up).
const STORE_BUSY_WAIT: Duration = Duration::from_secs(3);

/// How a command reaches the directory: the running server's admin
/// socket, or, when no server runs, the store opened in this process.
enum Reach {
    Server(AdminClient),
    Store(Store),
}

/// Connects to the running server, or opens the store for `opening` when
/// none runs (waiting a little for a store held by a process that is
/// starting or finishing).
fn reach(config: &Config, opening: Opening) -> anyhow::Result<Reach> {
    let socket = config.admin_socket_path();
    let deadline = Instant::now() + STORE_BUSY_WAIT;
    loop {
        match AdminClient::connect(&socket) {
            Ok(client) => return Ok(Reach::Server(client)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::InvalidInput
                ) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                    "cannot connect to the admin socket {} (does the server run as another user?)",
                    socket.display()
                )
                })
            }
        }
        match crate::server::open_store_as(config, opening) {
            Ok(store) => return Ok(Reach::Store(store)),
            Err(e) if looks_locked(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) if looks_locked(&e) => {
                bail!(
                    "the store at {} is in use; is `portcullis serve` running with another data dir? ({e})",
                    config.data_dir.display()
                )
            }
            Err(e) => {
                bail!(
                    "cannot open the store at {}: {e}",
                    config.data_dir.display()
                )
            }
        }
    }
}

/// Sends `req` to the running server, or executes it on the store opened
/// here when no server runs; then prints the answer.
fn admin(config: &Config, req: AdminRequest, json: bool) -> anyhow::Result<()> {
    // Store warnings and the like; the answer itself goes to stdout.
    let _ = init_logging("warn", config.log.json);
    let answer = match reach(config, Opening::Offline)? {
        Reach::Server(mut client) => client.call_typed(&req).with_context(|| {
            format!(
                "while talking to the server over {}",
                config.admin_socket_path().display()
            )
        })?,
        Reach::Store(store) => execute_locally(config, store, req.clone())?,
    };
    let answer = answer.map_err(|e: AdminError| anyhow!(e))?;
    let text = if json {
        let mut text = serde_json::to_string_pretty(&answer.to_json()?)?;
        text.push('\n');
        text
    } else {
        render::render(&req, &answer)
    };
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // The reader (`| head`) has all it wanted.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("while writing to standard output"),
    }
}

/// The store reports another process's lock as a backend error; its text is
/// all there is to recognise it by.
fn looks_locked(e: &StoreError) -> bool {
    let StoreError::Backend(detail) = e else {
        return false;
    };
    let detail = detail.to_lowercase();
    [
        "lock",
        "temporarily unavailable",
        "would block",
        "os error 11",
    ]
    .iter()
    .any(|needle| detail.contains(needle))
}

fn execute_locally(
    config: &Config,
    store: Store,
    req: AdminRequest,
) -> anyhow::Result<Result<AdminAnswer, AdminError>> {
    let hasher = Hasher::new(&config.auth).context("while setting up password hashing")?;
    let key =
        crate::auth::keys::ServerKey::load_or_create(&config.data_dir).with_context(|| {
            format!(
                "while loading the server key in {}",
                config.data_dir.display()
            )
        })?;
    // As `serve` does: one process at a time bootstraps a shared store,
    // and only with the store's key.
    let startup = crate::server::start_up(&store, &key, config)?;
    if let Some(password) = bootstrap(&store, &hasher, config)? {
        eprintln!(
            "initial admin password: {password} (also written to {})",
            config.initial_password_path().display()
        );
    }
    drop(startup);
    let ctx = AdminContext::new(store, hasher, config).with_server_key(key);
    Ok(execute(&ctx, req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    pub(super) fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["portcullis"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    pub(super) fn parse_err(args: &[&str]) -> clap::error::ErrorKind {
        let mut argv = vec!["portcullis"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{args:?} parsed as {cli:?}"),
            Err(e) => e.kind(),
        }
    }

    fn user(args: &[&str]) -> UserCommand {
        match parse(args).command {
            Command::User(cmd) => cmd,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn group(args: &[&str]) -> GroupCommand {
        match parse(args).command {
            Command::Group(cmd) => cmd,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    pub(super) fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options() {
        let cli = parse(&["--config", "c.toml", "--data-dir", "/d", "user", "list"]);
        assert_eq!(cli.config, Some(PathBuf::from("c.toml")));
        assert_eq!(cli.data_dir, Some(PathBuf::from("/d")));
        assert!(!cli.json);
        // Also accepted after the command.
        let cli = parse(&["user", "list", "--data-dir", "/e", "--config", "d.toml"]);
        assert_eq!(cli.data_dir, Some(PathBuf::from("/e")));
        assert_eq!(cli.config, Some(PathBuf::from("d.toml")));
    }

    #[test]
    fn serve() {
        let cli = parse(&["serve"]);
        assert!(matches!(cli.command, Command::Serve(ref a) if *a == ServeArgs::default()));
        let cli = parse(&[
            "--data-dir",
            "/d",
            "serve",
            "--ldap-addr",
            "127.0.0.1:1389",
            "--ldaps-addr",
            "127.0.0.1:1636",
            "--http-addr",
            "127.0.0.1:1080",
            "--base-dn",
            "dc=x,dc=y",
        ]);
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(
            args,
            ServeArgs {
                ldap_addr: Some(s("127.0.0.1:1389")),
                ldaps_addr: Some(s("127.0.0.1:1636")),
                http_addr: Some(s("127.0.0.1:1080")),
                base_dn: Some(s("dc=x,dc=y")),
            }
        );
    }

    #[test]
    fn user_commands() {
        assert_eq!(
            user(&["user", "add", "alice"]),
            UserCommand::Add {
                username: s("alice"),
                full_name: None,
                email: None,
                password_stdin: false
            }
        );
        assert_eq!(
            user(&[
                "user",
                "add",
                "alice",
                "--name",
                "Alice Liddell",
                "--email",
                "alice@example.com",
                "--password-stdin"
            ]),
            UserCommand::Add {
                username: s("alice"),
                full_name: Some(s("Alice Liddell")),
                email: Some(s("alice@example.com")),
                password_stdin: true
            }
        );
        assert_eq!(
            user(&["user", "passwd", "alice", "--password-stdin"]),
            UserCommand::Passwd {
                username: s("alice"),
                password_stdin: true
            }
        );
        assert_eq!(
            user(&["user", "show", "alice"]),
            UserCommand::Show {
                username: s("alice")
            }
        );
        assert_eq!(user(&["user", "list"]), UserCommand::List);
        assert_eq!(
            user(&["user", "enable", "alice"]),
            UserCommand::Enable {
                username: s("alice")
            }
        );
        assert_eq!(
            user(&["user", "disable", "alice"]),
            UserCommand::Disable {
                username: s("alice")
            }
        );
        assert_eq!(
            user(&["user", "delete", "alice"]),
            UserCommand::Delete {
                username: s("alice")
            }
        );
        assert_eq!(
            user(&["user", "set-attr", "alice", "loginShell", "/bin/zsh"]),
            UserCommand::SetAttr {
                username: s("alice"),
                key: s("loginShell"),
                value: s("/bin/zsh")
            }
        );
        assert_eq!(
            user(&["user", "set-attr", "alice", "description", "-x-"]),
            UserCommand::SetAttr {
                username: s("alice"),
                key: s("description"),
                value: s("-x-")
            }
        );
        assert_eq!(
            user(&["user", "unset-attr", "alice", "loginShell"]),
            UserCommand::UnsetAttr {
                username: s("alice"),
                key: s("loginShell")
            }
        );
    }

    #[test]
    fn group_commands() {
        assert_eq!(
            group(&["group", "add", "staff"]),
            GroupCommand::Add {
                name: s("staff"),
                description: None
            }
        );
        assert_eq!(
            group(&["group", "add", "staff", "--description", "All staff"]),
            GroupCommand::Add {
                name: s("staff"),
                description: Some(s("All staff"))
            }
        );
        assert_eq!(
            group(&["group", "delete", "staff"]),
            GroupCommand::Delete { name: s("staff") }
        );
        assert_eq!(
            group(&["group", "show", "staff"]),
            GroupCommand::Show { name: s("staff") }
        );
        assert_eq!(group(&["group", "list"]), GroupCommand::List);
        assert_eq!(
            group(&["group", "add-member", "staff", "alice"]),
            GroupCommand::AddMember {
                group: s("staff"),
                user: s("alice")
            }
        );
        assert_eq!(
            group(&["group", "remove-member", "staff", "alice"]),
            GroupCommand::RemoveMember {
                group: s("staff"),
                user: s("alice")
            }
        );
        assert_eq!(
            group(&["group", "add-child", "staff", "devs"]),
            GroupCommand::AddChild {
                parent: s("staff"),
                child: s("devs")
            }
        );
        assert_eq!(
            group(&["group", "remove-child", "staff", "devs"]),
            GroupCommand::RemoveChild {
                parent: s("staff"),
                child: s("devs")
            }
        );
    }

    #[test]
    fn json_after_the_arguments_of_every_command() {
        let forms: &[&[&str]] = &[
            &["user", "add", "alice"],
            &["user", "add", "alice", "--name", "A", "--password-stdin"],
            &["user", "passwd", "alice", "--password-stdin"],
            &["user", "show", "alice"],
            &["user", "list"],
            &["user", "enable", "alice"],
            &["user", "disable", "alice"],
            &["user", "delete", "alice"],
            &["user", "set-attr", "alice", "sn", "Liddell"],
            &["user", "unset-attr", "alice", "sn"],
            &["group", "add", "staff"],
            &["group", "add", "staff", "--description", "d"],
            &["group", "delete", "staff"],
            &["group", "show", "staff"],
            &["group", "list"],
            &["group", "add-member", "staff", "alice"],
            &["group", "remove-member", "staff", "alice"],
            &["group", "add-child", "staff", "devs"],
            &["group", "remove-child", "staff", "devs"],
            &["serve"],
        ];
        for form in forms {
            assert!(!parse(form).json, "{form:?} without --json");
            let mut with = form.to_vec();
            with.push("--json");
            assert!(parse(&with).json, "{with:?}");
            let mut before = vec!["--json"];
            before.extend_from_slice(form);
            assert!(parse(&before).json, "{before:?}");
        }
        // Between the command and its arguments too.
        assert_eq!(
            user(&["user", "show", "--json", "alice"]),
            UserCommand::Show {
                username: s("alice")
            }
        );
    }

    #[test]
    fn usage_errors() {
        use clap::error::ErrorKind;
        assert_eq!(
            parse_err(&["user", "passwd", "alice"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse_err(&["user", "add"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse_err(&["user", "set-attr", "alice", "sn"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse_err(&["group", "add-member", "staff"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(parse_err(&["user", "frob"]), ErrorKind::InvalidSubcommand);
        assert_eq!(
            parse_err(&["token", "add", "alice"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse_err(&["session", "end"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(parse_err(&["import"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            parse_err(&["user", "show", "alice", "--ldap-addr", "x"]),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse_err(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        // Usage errors exit with 2.
        let err = Cli::try_parse_from(["portcullis", "user"]).expect_err("must fail");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn import_and_export_flags() {
        let Command::Export(args) = parse(&["export", "--with-secrets", "--force"]).command else {
            panic!("not export")
        };
        assert!(args.with_secrets && args.force && args.output.is_none());
        let Command::Export(args) = parse(&["export", "--format", "json", "-o", "b.json"]).command
        else {
            panic!("not export")
        };
        assert!(!args.force && args.format == migrate::Format::Json);
        assert_eq!(args.output, Some(PathBuf::from("b.json")));
        let Command::Import(args) = parse(&["import", "-", "--dry-run", "--force"]).command else {
            panic!("not import")
        };
        assert!(args.dry_run && args.force && args.file == Path::new("-"));
    }

    #[test]
    fn request_from_command() {
        let mut stdin = io::Cursor::new(b"pw\n".to_vec());
        let req = user_request(
            UserCommand::Add {
                username: s("alice"),
                full_name: Some(s("A")),
                email: None,
                password_stdin: true,
            },
            &mut stdin,
        )
        .expect("request");
        assert_eq!(
            req,
            AdminRequest::UserAdd {
                username: s("alice"),
                full_name: Some(s("A")),
                email: None,
                password: Some(Password::new(s("pw")))
            }
        );
        // Without --password-stdin, stdin is not read.
        let mut stdin = io::Cursor::new(b"pw\n".to_vec());
        let req = user_request(
            UserCommand::Add {
                username: s("bob"),
                full_name: None,
                email: None,
                password_stdin: false,
            },
            &mut stdin,
        )
        .expect("request");
        assert!(matches!(req, AdminRequest::UserAdd { password: None, .. }));
        assert_eq!(stdin.position(), 0);
        assert_eq!(
            group_request(GroupCommand::AddChild {
                parent: s("p"),
                child: s("c")
            }),
            AdminRequest::GroupAddChild {
                parent: s("p"),
                child: s("c")
            }
        );
    }

    fn password_from(input: &[u8]) -> anyhow::Result<String> {
        read_password(&mut io::Cursor::new(input.to_vec())).map(|p| p.expose().to_string())
    }

    #[test]
    fn password_from_stdin() {
        assert_eq!(password_from(b"s3cret\n").expect("pw"), "s3cret");
        assert_eq!(password_from(b"s3cret\r\n").expect("pw"), "s3cret");
        assert_eq!(password_from(b"s3cret").expect("pw"), "s3cret");
        assert_eq!(
            password_from(b" spaced ;x\nsecond line\n").expect("pw"),
            " spaced ;x"
        );
        assert!(password_from(b"").is_err());
        assert!(password_from(b"\n").is_err());
        assert!(password_from(b"\r\n").is_err());
        assert!(password_from(b"\xff\xfe\n").is_err());
        let max = vec![b'a'; MAX_PASSWORD_LEN];
        assert_eq!(password_from(&max).expect("pw").len(), MAX_PASSWORD_LEN);
        let mut max_crlf = max.clone();
        max_crlf.extend_from_slice(b"\r\n");
        assert_eq!(
            password_from(&max_crlf).expect("pw").len(),
            MAX_PASSWORD_LEN
        );
        let too_long = vec![b'a'; MAX_PASSWORD_LEN + 1];
        assert!(password_from(&too_long).is_err());
        let mut too_long_line = too_long.clone();
        too_long_line.push(b'\n');
        assert!(password_from(&too_long_line).is_err());
        assert!(password_from(&vec![b'a'; 1 << 20]).is_err());
    }

    #[test]
    fn lock_errors_are_recognised() {
        assert!(looks_locked(&StoreError::Backend(s(
            "could not acquire lock on \"data/db\": Os { code: 11, kind: WouldBlock, message: \"Resource temporarily unavailable\" }"
        ))));
        assert!(!looks_locked(&StoreError::Backend(s("corrupted"))));
        assert!(!looks_locked(&StoreError::Invalid(s("lock"))));
    }
}
