//! `cordon`: the command line. Parses arguments and hands each command to its module; no
//! policy is decided here.

mod commands;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// A terminal session host for AI coding agents: confined, recorded, audited.
#[derive(Parser)]
#[command(name = "cordon", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command confined under a profile (like bubblewrap or landrun, with profiles).
    ///
    /// The command's exit status is cordon's. When cordon itself refuses to start the
    /// command it exits 125 (126: not allowed to execute, 127: not found) and says which
    /// confinement step failed and why; 124 means the profile's time limit ended it.
    Sandbox {
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
        /// The command and its arguments. Default: the profile's command.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Inspect profiles.
    Profile {
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// What this machine can enforce: Landlock, seccomp, namespaces, cgroups.
    Doctor {
        /// Machine-readable output.
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
    },
    /// Say in plain words what a session under the profile can read, write, run and reach.
    Explain {
        profile: String,
        #[arg(short, long)]
        workspace: Option<PathBuf>,
    },
    /// List the profiles visible in the search order, and where each comes from.
    List,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Sandbox { profile, workspace, print_policy, command }) => {
            commands::sandbox(&profile, workspace, print_policy, command)
        }
        Some(Command::Profile { action: ProfileAction::Check { profile, workspace, json } }) => {
            commands::profile_check(&profile, workspace, json)
        }
        Some(Command::Profile { action: ProfileAction::Explain { profile, workspace } }) => commands::profile_explain(&profile, workspace),
        Some(Command::Profile { action: ProfileAction::List }) => commands::profile_list(),
        Some(Command::Doctor { json }) => commands::doctor(json),
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            2
        }
    };
    std::process::exit(code);
}
