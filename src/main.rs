//! `cordon`: the command line. Parses arguments and hands each command to its module; no
//! policy is decided here.

mod accounts;
mod alerts;
mod api;
mod audit;
mod auth;
mod changes;
mod claude;
mod cli;
mod cluster;
mod config;
mod evidence;
mod files;
mod filter;
mod keys;
mod masking;
mod nofollow;
mod objects;
mod paths;
mod places;
mod process;
mod record;
mod redact;
mod secrets;
mod serve;
mod service;
mod session_id;
mod sessions;
mod ssh;
mod store;
mod text;
mod tls_roots;
mod tokens;
mod tui;
mod vault;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// A terminal session host for AI coding agents: confined, recorded, audited.
///
/// With no command: an embedded host with the TUI on this terminal (no daemon, no setup;
/// sessions end when it does). `cordon serve` runs the host for SSH clients.
#[derive(Parser)]
#[command(name = "cordon", version, about, long_about)]
struct Cli {
    /// Where cordon keeps its state (default: $CORDON_DATA_DIR, /var/lib/cordon for root,
    /// else ~/.local/share/cordon).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The host's configuration (TOML; docs/config.md). Default: $CORDON_CONFIG, else
    /// /etc/cordon/cordon.toml (as root) or ~/.config/cordon/cordon.toml, if it exists.
    /// The host-shell commands read it too: where homes and workspaces are.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `cordon sandbox`'s arguments.
#[derive(clap::Args)]
struct SandboxArgs {
    /// Profile name (searched in $CORDON_PROFILE_PATH, ~/.config/cordon/profiles,
    /// /etc/cordon/profiles, then the shipped set) or path to a .toml file.
    #[arg(short, long, default_value = "default")]
    profile: String,
    /// The workspace directory ({workspace} in profiles). Default: the current directory.
    #[arg(short, long)]
    workspace: Option<PathBuf>,
    /// Print the resolved policy as JSON on stderr before running.
    #[arg(long)]
    print_policy: bool,
    /// Also hide this path inside the sandbox (may be repeated).
    #[arg(long, value_name = "PATH")]
    hide: Vec<PathBuf>,
    /// Run the command as this user id (never 0). Switching uid needs root; an
    /// unprivileged cordon accepts only its own uid.
    #[arg(long, value_name = "UID")]
    uid: Option<u32>,
    /// The group id to run as (never 0). Default: the uid.
    #[arg(long, value_name = "GID", requires = "uid")]
    gid: Option<u32>,
    /// The user name the command sees (`id -un`, /etc/passwd). Default: $USER, else
    /// "sandbox".
    #[arg(long, value_name = "NAME", requires = "uid")]
    user_name: Option<String>,
    /// The home directory seen inside ({home} in profiles). Default: $HOME, except for
    /// a profile that writes the whole home (claude), which gets your cordon home
    /// (<home_root>/<account>), never your account's own.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Follow no symbolic link in the workspace or the home: refuse a workspace or home
    /// whose path holds one, and skip (with a note) any grant that is a link or has one
    /// on its way. For homes and workspaces other people write, as a host's are.
    #[arg(long)]
    no_links: bool,
    /// Read the values of the profile's `[env] secrets` from this inherited descriptor
    /// (what a cordon host does: never through arguments or the environment). A secret
    /// the profile names but the descriptor lacks is said on stderr, once.
    #[arg(long, value_name = "FD")]
    secrets_fd: Option<i32>,
    /// Network mode "proxy": write each connection attempt (host, port, verdict, rule,
    /// bytes each way, duration) as a JSON line to this inherited descriptor.
    #[arg(long, value_name = "FD")]
    events_fd: Option<i32>,
    /// Network mode "proxy" with `unknown = "ask"`: read the owner's answers to the
    /// questions announced on --events-fd from this inherited descriptor, one JSON line
    /// each (`{"ask": 1, "answer": "once"}`; once, session or deny).
    #[arg(long, value_name = "FD", requires = "events_fd")]
    answers_fd: Option<i32>,
    /// Network mode "proxy": do not note refused connections on standard error (a host
    /// does this for terminal sessions: the attempts are audited and on the recording's
    /// timeline, and a note would draw over a full-screen program).
    #[arg(long)]
    no_egress_notes: bool,
    #[command(flatten)]
    flags: FlagArgs,
    /// The command and its arguments (default: the profile's command): after `--`, or from
    /// the first word that is not an option or an option's value; everything after it is
    /// the command's.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Ad-hoc grants on top of the profile, validated like its own fields (docs/profiles.md,
/// "Ad-hoc flags"). Paths are taken from the current directory and followed through no
/// symbolic link.
#[derive(clap::Args)]
struct FlagArgs {
    /// Also let the command read PATH (may be repeated).
    #[arg(long = "ro", value_name = "PATH")]
    ro: Vec<PathBuf>,
    /// Also let the command read and write PATH, never executable (may be repeated); not
    /// /, a hidden path or a protected one.
    #[arg(long = "rw", value_name = "PATH")]
    rw: Vec<PathBuf>,
    /// Also let the command execute PROGRAM: a name found on the profile's PATH, or a path
    /// (may be repeated).
    #[arg(long = "exec", value_name = "PROGRAM")]
    exec: Vec<String>,
    /// Set NAME=VALUE in the command's environment, over the profile's (may be repeated).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// The network instead of the profile's: none, host, ports:PORT[,PORT...],
    /// proxy[:HOST[:PORT],...]; or allow:HOST[:PORT],... to add hosts to a proxy profile's
    /// (may be repeated).
    #[arg(long = "net", value_name = "FORM")]
    net: Vec<String>,
    /// Start the command in DIR (a directory a grant shows).
    #[arg(long = "chdir", value_name = "DIR")]
    chdir: Option<PathBuf>,
}

impl From<FlagArgs> for sandbox::profile::Flags {
    fn from(f: FlagArgs) -> Self {
        sandbox::profile::Flags {
            read: f.ro,
            write: f.rw,
            exec: f.exec,
            env: f.env,
            net: f.net,
            chdir: f.chdir,
        }
    }
}

/// `cordon sandbox` alone: a host starts one per session, and building the parsers of
/// every other command too cost about a third of a millisecond of each start. The same
/// arguments, help and errors as through [`Cli`].
#[derive(Parser)]
#[command(name = "cordon")]
struct SandboxCli {
    /// Where cordon keeps its state (default: $CORDON_DATA_DIR, /var/lib/cordon for root,
    /// else ~/.local/share/cordon).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The host's configuration (TOML; docs/config.md). Default: $CORDON_CONFIG, else
    /// /etc/cordon/cordon.toml (as root) or ~/.config/cordon/cordon.toml, if it exists.
    /// The host-shell commands read it too: where homes and workspaces are.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: SandboxOnly,
}

#[derive(Subcommand)]
enum SandboxOnly {
    /// Run a command confined under a profile (like bubblewrap or landrun, with profiles).
    ///
    /// The command's exit status is cordon's. When cordon itself refuses to start the
    /// command it exits 125 (126: not allowed to execute, 127: not found) and says which
    /// confinement step failed and why; 124 means the profile's time limit ended it.
    Sandbox(SandboxArgs),
}

impl Cli {
    /// Parses the process's arguments, `cordon sandbox ...` without the other commands.
    fn parse_fast() -> Cli {
        if std::env::args_os().nth(1).is_some_and(|a| a == "sandbox") {
            let SandboxCli {
                data_dir,
                config,
                command: SandboxOnly::Sandbox(args),
            } = SandboxCli::parse();
            return Cli {
                data_dir,
                config,
                command: Some(Command::Sandbox(args)),
            };
        }
        Cli::parse()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a command confined under a profile (like bubblewrap or landrun, with profiles).
    ///
    /// The command's exit status is cordon's. When cordon itself refuses to start the
    /// command it exits 125 (126: not allowed to execute, 127: not found) and says which
    /// confinement step failed and why; 124 means the profile's time limit ended it.
    Sandbox(SandboxArgs),
    /// Run the host: SSH on 127.0.0.1:2222 by default, sessions in confined PTYs.
    Serve,
    /// The TUI of a running `cordon serve`, through its local socket, as your OS account.
    Tui {
        /// The socket (default: the configuration's [tui] socket).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Inspect profiles.
    Profile {
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// Users, their roles and SSH keys.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Session recordings: list, inspect, verify, export, the files each session changed.
    Rec {
        #[command(subcommand)]
        action: RecAction,
    },
    /// Secrets for sessions (API keys): a profile's `[env] secrets` names those its sessions
    /// receive. Values come from standard input, never the command line; never shown.
    Secret {
        #[command(subcommand)]
        action: SecretAction,
    },
    /// API tokens: issue a pair for a user, or rotate the signing key.
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
    /// Keys: rotate the recording, secrets or master key; show their ages; back them up
    /// and restore them (docs/security.md, "Keys").
    Key {
        #[command(subcommand)]
        action: KeyCmd,
    },
    /// Claude Code: `cordon claude import` carries your settings into your cordon home.
    Claude {
        #[command(subcommand)]
        action: ClaudeAction,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Alerts ([alerts]): `cordon alert test` sends a test alert through every sink.
    Alert {
        #[command(subcommand)]
        action: AlertAction,
    },
    /// Addresses blocked by alerts' containment: list them, lift one.
    Block {
        #[command(subcommand)]
        action: BlockAction,
    },
    /// Incidents opened by alerts, with their timelines.
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
    },
    /// Evidence bundles: export one (signed), or verify one anywhere.
    Evidence {
        #[command(subcommand)]
        action: cli::evidence::EvidenceAction,
    },
    /// Lockdown: only admins may log in; running sessions frozen or ended.
    Lockdown {
        #[command(subcommand)]
        action: cli::lockdown::LockdownAction,
    },
    /// What this machine can enforce: Landlock, seccomp, namespaces, cgroups.
    Doctor {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a completion script for a shell (install.sh installs them).
    Completions {
        /// bash, zsh or fish.
        shell: cli::completions::Shell,
    },
}

#[derive(Subcommand)]
enum AlertAction {
    /// Send a test alert through every configured sink (audit log, syslog, webhook) and
    /// say how each went; exit status 1 if one failed.
    Test,
}

#[derive(Subcommand)]
enum BlockAction {
    /// The addresses blocked now, until when, by which rule and incident.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Lift the block of an address (audited, noted in its incident).
    Rm { address: String },
}

#[derive(Subcommand)]
enum IncidentAction {
    /// The latest incidents, newest first.
    Ls {
        /// How many at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One incident and its timeline.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user, optionally with keys.
    Add {
        name: String,
        /// admin, developer, auditor or viewer.
        #[arg(long, default_value = "developer")]
        role: auth::Role,
        /// An SSH public key (authorized_keys line); may be repeated.
        #[arg(long = "key", value_name = "LINE")]
        keys: Vec<String>,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and their keys.
    Remove { name: String },
    /// Change a user's role.
    Role { name: String, role: auth::Role },
    /// Set a user's password from standard input (one line), or --clear it.
    Passwd {
        name: String,
        #[arg(long)]
        clear: bool,
    },
    /// Refuse a user's new logins.
    Lock { name: String },
    /// Allow a locked user again.
    Unlock { name: String },
    /// A user's SSH keys.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// A user's second factor (TOTP) for password logins.
    Totp {
        #[command(subcommand)]
        action: TotpAction,
    },
}

#[derive(Subcommand)]
enum TotpAction {
    /// Start an enrolment: the QR code, the secret, then a code to confirm; recovery codes.
    Enroll { name: String },
    /// Confirm a pending enrolment with a code from the app.
    Confirm { name: String, code: String },
    /// Whether a user has a second factor, and how many recovery codes are left.
    Status { name: String },
    /// Remove a user's second factor (a lost device); they enrol again.
    Reset { name: String },
}

#[derive(Subcommand)]
enum ClaudeAction {
    /// Copy Claude Code's settings (settings.json without env and apiKeyHelper, CLAUDE.md,
    /// agents/, commands/, and the preferences of .claude.json: no account, key, MCP server
    /// or project state) into a user's cordon home, as their account. Audited.
    Import {
        /// The cordon user (default: the one named like this OS account).
        #[arg(long)]
        user: Option<String>,
        /// The directory holding .claude/ and .claude.json (default: $HOME).
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// Add a key: an authorized_keys line, or --file with one key per line.
    Add {
        name: String,
        /// The key line (`ssh-ed25519 AAAA... comment`).
        line: Option<String>,
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// List a user's keys.
    List {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a key by fingerprint (SHA256:..., or a unique prefix of at least 12 characters).
    Remove { name: String, fingerprint: String },
}

/// Whose secrets: `--user NAME`, or the global ones (the default here: the host's shell has
/// none of its own).
#[derive(clap::Args)]
struct SecretScope {
    /// A user's secrets (theirs override global ones of the same name).
    #[arg(long, value_name = "NAME", conflicts_with = "global")]
    user: Option<String>,
    /// The global secrets, which every user's sessions receive (the default).
    #[arg(long)]
    global: bool,
}

#[derive(Subcommand)]
enum SecretAction {
    /// Set a secret from standard input (piped: all of it, one trailing newline dropped;
    /// a terminal: a prompt that does not echo). 8 to 1024 bytes of UTF-8 on one line.
    Set {
        #[command(flatten)]
        scope: SecretScope,
        /// An environment variable name (ANTHROPIC_API_KEY); not one the sandbox sets.
        key: String,
    },
    /// Names, scope and dates of the secrets (never their values).
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        scope: SecretScope,
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret.
    #[command(alias = "remove")]
    Rm {
        #[command(flatten)]
        scope: SecretScope,
        key: String,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// An access token (1 hour) and a refresh token (30 days) for USER, as JSON.
    Issue { user: String },
    /// Sign new tokens with a new key; tokens signed before stay valid until they expire.
    Rotate,
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Make a new recording key current (the default), or with --secrets a new secrets
    /// key (stored secrets sealed again), or with --master a new master key (every data key
    /// re-wrapped, nothing re-encrypted).
    Rotate {
        /// Rotate the master key: generated in place of its file, or taken from
        /// --new-key-file.
        #[arg(long, conflicts_with = "secrets")]
        master: bool,
        /// With --master: the new master key's file (64 hex characters, mode 0600).
        #[arg(long, requires = "master", value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        /// Rotate the key that seals secrets for sessions.
        #[arg(long)]
        secrets: bool,
    },
    /// The master key's source and the age of each key against its rotation period; exits
    /// 3 when one is overdue.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Write every data key to FILE, sealed with a passphrase (standard input, or asked
    /// twice on a terminal).
    Backup {
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Add a backup's keys to this data directory (the passphrase on standard input, or
    /// asked on a terminal).
    Restore {
        file: PathBuf,
        /// Keep this directory's audit, secrets and host keys but make the backup's
        /// current (what they sealed here will not open with them).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum RecAction {
    /// List recordings, newest first.
    Ls {
        #[arg(long)]
        user: Option<String>,
        /// Only recordings started since: a duration (2h, 7d) or a date (2026-11-22[T14:00]).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A recording's catalog entry and its verification.
    Info { id: String },
    /// Check recordings: complete, live (still being recorded), interrupted (the host stopped), or
    /// damaged (with where).
    Verify {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Replay a recording in the terminal (space pauses, . steps, + and - change speed, arrows
    /// seek 5 s, q quits).
    Play {
        id: String,
        /// Playback speed (2 = twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Shorten every pause to at most this many seconds.
        #[arg(long, value_name = "SECONDS")]
        idle_limit: Option<f64>,
        /// Start at this many seconds into the recording (as `rec search` reports).
        #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
        at: f64,
    },
    /// Print the screen as it was at a moment (seeks from the nearest keyframe).
    Screen {
        id: String,
        /// Seconds into the recording.
        #[arg(long, value_name = "SECONDS")]
        at: f64,
    },
    /// What the recorded session created, changed and deleted in its workspace, with sizes
    /// (the summary kept at its end).
    Files {
        id: String,
        /// The summary as JSON (as the API answers it).
        #[arg(long)]
        json: bool,
    },
    /// Find text that appeared on screen, across recordings: recording, time and line.
    Search {
        pattern: String,
        /// Search the command lines of the programs sessions started, not their screens.
        #[arg(long)]
        exec: bool,
        #[arg(long)]
        user: Option<String>,
        /// Only recordings started since: a duration (2h, 7d) or a date.
        #[arg(long)]
        since: Option<String>,
    },
    /// What the session did: the programs it started (with their arguments, directory and
    /// verdict) and their exits, its connections and its markers, in order.
    Events {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Put a recording under legal hold: it is never purged.
    Hold { id: String },
    /// Lift a legal hold.
    Release { id: String },
    /// Export a recording: asciicast-v2 or asciicast-v3 (for asciinema), or --raw output bytes.
    Export {
        id: String,
        #[arg(long, default_value = "asciicast-v2")]
        format: String,
        /// The exact bytes the session wrote.
        #[arg(long)]
        raw: bool,
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the chain: exits 1 and names the first bad line if anything was altered.
    Verify {
        /// Also check that every event of a forwarded copy (a file sink, or a syslog or
        /// journal export) is in the log, and name the first one missing.
        #[arg(long, value_name = "COPY")]
        against: Option<PathBuf>,
    },
    /// Show the latest events.
    Tail {
        /// How many to show first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep showing new events.
        #[arg(short, long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ProfileAction {
    /// Validate a profile, resolve it, and print the effective rules.
    Check {
        /// Profile name or path to a .toml file.
        profile: String,
        #[arg(short, long)]
        workspace: Option<PathBuf>,
        /// Print the resolved policy as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        flags: FlagArgs,
    },
    /// Say in plain words what a session under the profile can read, write, run and reach;
    /// with a PATH, whether that file may run and which profile key decides (exit 0: it
    /// may, 1: it may not).
    Explain {
        profile: String,
        #[arg(short, long)]
        workspace: Option<PathBuf>,
        /// A file to ask about: may a session under the profile execute it?
        path: Option<PathBuf>,
        #[command(flatten)]
        flags: FlagArgs,
    },
    /// List the profiles visible in the search order, and where each comes from.
    List,
    /// List the named domain sets a profile in network mode "proxy" can include
    /// (`[network] include = ["npm"]`), with each host and why it is there.
    Sets,
}

/// The running account's cordon home (`<home_root>/<account>`), where `cordon sandbox` puts
/// profiles that write the home directory; none when the configuration does not load.
fn cordon_home(dir: &paths::DataDir, config: Option<&std::path::Path>) -> Option<PathBuf> {
    config::Config::load(config, &dir.root)
        .ok()
        .map(|c| c.home_root.join(accounts::current()))
}

/// `--config`, else `$CORDON_CONFIG`, else the usual place if a file is there.
fn config_path(explicit: Option<PathBuf>) -> Option<PathBuf> {
    if explicit.is_some() {
        return explicit;
    }
    if let Some(p) = std::env::var_os("CORDON_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    // SAFETY: geteuid cannot fail.
    let usual = if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/etc/cordon/cordon.toml")
    } else {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        base.join("cordon/cordon.toml")
    };
    usual.is_file().then_some(usual)
}

fn main() {
    let cli = Cli::parse_fast();
    let dir = paths::DataDir::new(paths::data_dir(cli.data_dir.as_deref()));
    let config = config_path(cli.config);
    let config = config.as_deref();
    let host_command = !matches!(
        cli.command,
        Some(
            Command::Sandbox(_)
                | Command::Profile { .. }
                | Command::Doctor { .. }
                | Command::Completions { .. }
                | Command::Evidence {
                    action: cli::evidence::EvidenceAction::Verify { .. }
                }
        )
    );
    if host_command {
        crate::process::private_files();
    }
    let admin = |f: &dyn Fn(&cli::Admin) -> i32| match cli::Admin::open(dir.clone(), config) {
        Ok(a) => f(&a),
        Err(e) => {
            eprintln!("cordon: {e}");
            1
        }
    };
    let code = match cli.command {
        Some(Command::User { action }) => match action {
            UserAction::Add { name, role, keys } => {
                admin(&|a| cli::users::user_add(a, &name, role, &keys))
            }
            UserAction::List { json } => admin(&|a| cli::users::user_list(a, json)),
            UserAction::Remove { name } => admin(&|a| cli::users::user_remove(a, &name)),
            UserAction::Role { name, role } => admin(&|a| cli::users::user_role(a, &name, role)),
            UserAction::Passwd { name, clear } => {
                admin(&|a| cli::users::user_passwd(a, &name, clear))
            }
            UserAction::Totp { action } => match action {
                TotpAction::Enroll { name } => admin(&|a| cli::totp::enroll(a, &name)),
                TotpAction::Confirm { name, code } => {
                    admin(&|a| cli::totp::confirm(a, &name, &code))
                }
                TotpAction::Status { name } => admin(&|a| cli::totp::status(a, &name)),
                TotpAction::Reset { name } => admin(&|a| cli::totp::reset(a, &name)),
            },
            UserAction::Lock { name } => admin(&|a| cli::users::user_lock(a, &name, true)),
            UserAction::Unlock { name } => admin(&|a| cli::users::user_lock(a, &name, false)),
            UserAction::Key {
                action: KeyAction::Add { name, line, file },
            } => {
                let lines: Vec<String> = match (line, file) {
                    (Some(l), None) => vec![l],
                    (None, Some(f)) => match std::fs::read_to_string(&f) {
                        Ok(t) => t
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(String::from)
                            .collect(),
                        Err(e) => {
                            eprintln!("cordon: reading {}: {e}", f.display());
                            std::process::exit(1);
                        }
                    },
                    _ => {
                        eprintln!("cordon: give a key line or --file FILE");
                        std::process::exit(2);
                    }
                };
                admin(&|a| {
                    lines
                        .iter()
                        .map(|l| cli::users::key_add(a, &name, l))
                        .max()
                        .unwrap_or(0)
                })
            }
            UserAction::Key {
                action: KeyAction::List { name, json },
            } => admin(&|a| cli::users::key_list(a, &name, json)),
            UserAction::Key {
                action: KeyAction::Remove { name, fingerprint },
            } => admin(&|a| cli::users::key_remove(a, &name, &fingerprint)),
        },
        Some(Command::Alert {
            action: AlertAction::Test,
        }) => admin(&cli::alerts::test),
        Some(Command::Block { action }) => match action {
            BlockAction::Ls { json } => admin(&|a| cli::alerts::blocks(a, json)),
            BlockAction::Rm { address } => admin(&|a| cli::alerts::unblock(a, &address)),
        },
        Some(Command::Incident { action }) => match action {
            IncidentAction::Ls { limit, json } => {
                admin(&|a| cli::alerts::incidents(a, limit, json))
            }
            IncidentAction::Show { id, json } => admin(&|a| cli::alerts::incident(a, id, json)),
        },
        Some(Command::Secret { action }) => match action {
            SecretAction::Set { scope, key } => {
                admin(&|a| cli::secrets::set(a, scope.user.as_deref(), &key))
            }
            SecretAction::List { scope, json } => {
                admin(&|a| cli::secrets::list(a, scope.user.as_deref(), json))
            }
            SecretAction::Rm { scope, key } => {
                admin(&|a| cli::secrets::remove(a, scope.user.as_deref(), &key))
            }
        },
        Some(Command::Token {
            action: TokenCmd::Issue { user },
        }) => admin(&|a| cli::users::token_issue(a, &user)),
        Some(Command::Token {
            action: TokenCmd::Rotate,
        }) => admin(&|a| cli::users::token_rotate(a)),
        Some(Command::Key { action }) => match action {
            KeyCmd::Rotate {
                master: true,
                new_key_file,
                ..
            } => admin(&|a| cli::keys::rotate_master(a, new_key_file.as_deref())),
            KeyCmd::Rotate { secrets: true, .. } => admin(&|a| cli::keys::rotate_secrets(a)),
            KeyCmd::Rotate { .. } => admin(&|a| cli::recordings::rotate(a)),
            KeyCmd::Status { json } => admin(&|a| cli::keys::status(a, json)),
            KeyCmd::Backup { output } => admin(&|a| cli::keys::backup(a, &output)),
            KeyCmd::Restore { file, replace } => cli::keys::restore(&dir, config, &file, replace),
        },
        Some(Command::Rec { action }) => match action {
            RecAction::Ls { user, since, json } => {
                admin(&|a| cli::recordings::ls(a, user.as_deref(), since.as_deref(), json))
            }
            RecAction::Info { id } => admin(&|a| cli::recordings::info(a, &id)),
            RecAction::Play {
                id,
                speed,
                idle_limit,
                at,
            } => admin(&|a| {
                cli::recordings::play(
                    a,
                    &id,
                    &record::play::PlayOptions {
                        speed,
                        idle_limit,
                        at,
                    },
                )
            }),
            RecAction::Screen { id, at } => admin(&|a| cli::recordings::screen(a, &id, at)),
            RecAction::Files { id, json } => admin(&|a| cli::recordings::files(a, &id, json)),
            RecAction::Search {
                pattern,
                exec,
                user,
                since,
            } => admin(&|a| {
                cli::recordings::search(a, &pattern, exec, user.as_deref(), since.as_deref())
            }),
            RecAction::Events { id, json } => admin(&|a| cli::recordings::events(a, &id, json)),
            RecAction::Hold { id } => admin(&|a| cli::recordings::hold(a, &id, true)),
            RecAction::Release { id } => admin(&|a| cli::recordings::hold(a, &id, false)),
            RecAction::Verify { id, all } => {
                if id.is_none() && !all {
                    eprintln!("cordon: give a recording id or --all");
                    2
                } else {
                    admin(&|a| cli::recordings::verify(a, id.as_deref()))
                }
            }
            RecAction::Export {
                id,
                format,
                raw,
                output,
            } => {
                let fmt = if raw { "raw".to_string() } else { format };
                admin(&|a| cli::recordings::export(a, &id, &fmt, output.as_deref()))
            }
        },
        Some(Command::Evidence { action }) => match action {
            cli::evidence::EvidenceAction::Export {
                sessions,
                user,
                since,
                output,
            } => admin(&|a| {
                cli::evidence::export(a, &sessions, user.as_deref(), since.as_deref(), &output)
            }),
            cli::evidence::EvidenceAction::Verify {
                file,
                expect_key,
                extract,
            } => cli::evidence::verify(&file, expect_key.as_deref(), extract.as_deref()),
        },
        Some(Command::Lockdown { action }) => admin(&|a| cli::lockdown::run(a, &action)),
        Some(Command::Audit {
            action: AuditAction::Verify { against },
        }) => match config::Config::load(config, &dir.root) {
            Ok(c) => cli::audit::verify(&dir, &c, against.as_deref()),
            Err(e) => cli::fail(e),
        },
        Some(Command::Audit {
            action:
                AuditAction::Tail {
                    lines,
                    follow,
                    json,
                },
        }) => cli::audit::tail(&dir, lines, follow, json),
        Some(Command::Sandbox(SandboxArgs {
            profile,
            workspace,
            print_policy,
            hide,
            uid,
            gid,
            user_name,
            home,
            no_links,
            secrets_fd,
            events_fd,
            answers_fd,
            no_egress_notes,
            flags,
            command,
        })) => {
            let identity = uid.map(|uid| sandbox::Identity {
                uid,
                gid: gid.unwrap_or(uid),
                name: user_name
                    .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
                    .unwrap_or_else(|| "sandbox".into()),
            });
            let options = cli::sandbox::SandboxOptions {
                workspace,
                print_policy,
                hide,
                home,
                identity,
                no_links,
                secrets_fd,
                events_fd,
                answers_fd,
                egress_notes: !no_egress_notes,
                flags: flags.into(),
                cordon_home: None,
                cordon_home_from: Some((dir.clone(), config.map(PathBuf::from))),
            };
            cli::sandbox::sandbox(&profile, options, command)
        }
        Some(Command::Claude {
            action: ClaudeAction::Import { user, from },
        }) => admin(&|a| cli::claude::import(a, user.clone(), from.clone())),
        Some(Command::Serve) => serve::serve(dir.clone(), config),
        Some(Command::Tui { socket }) => match socket.map(Ok).unwrap_or_else(|| {
            config::Config::load(config, &dir.root)
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    c.tui_socket.ok_or_else(|| {
                        "the configuration turns the TUI socket off ([tui] socket = \"\")"
                            .to_string()
                    })
                })
        }) {
            Ok(path) => tui::client(&path),
            Err(e) => {
                eprintln!("cordon tui: {e}");
                1
            }
        },
        Some(Command::Profile {
            action:
                ProfileAction::Check {
                    profile,
                    workspace,
                    json,
                    flags,
                },
        }) => cli::sandbox::profile_check(
            &profile,
            workspace,
            json,
            flags.into(),
            cordon_home(&dir, config),
        ),
        Some(Command::Profile {
            action:
                ProfileAction::Explain {
                    profile,
                    workspace,
                    path,
                    flags,
                },
        }) => cli::sandbox::profile_explain(
            &profile,
            workspace,
            path.as_deref(),
            flags.into(),
            cordon_home(&dir, config),
        ),
        Some(Command::Profile {
            action: ProfileAction::List,
        }) => cli::sandbox::profile_list(),
        Some(Command::Profile {
            action: ProfileAction::Sets,
        }) => cli::sandbox::profile_sets(),
        Some(Command::Doctor { json }) => cli::sandbox::doctor(json, &dir, config),
        Some(Command::Completions { shell }) => {
            cli::completions::print(shell, &mut <Cli as clap::CommandFactory>::command())
        }
        None => tui::embedded(dir.clone(), config),
    };
    std::process::exit(code);
}
