//! `cordon serve`: the host. Opens the store and the audit log, loads (or makes, once) the
//! SSH host key, listens, and on SIGTERM or SIGINT ends every session and stops cleanly.

use crate::audit::Kind;
use crate::config::Config;
use crate::paths::DataDir;
use crate::service::Service;
use crate::ssh::Shared;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub fn serve(dir: DataDir, config_path: Option<&Path>) -> i32 {
    match run(dir, config_path) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon serve: {e}");
            1
        }
    }
}

fn run(dir: DataDir, config_path: Option<&Path>) -> Result<(), String> {
    crate::process::not_dumpable();
    crate::process::raise_open_files();
    let config = Config::load(config_path, &dir.root).map_err(|e| e.to_string())?;
    check_uid_range(&config)?;
    let (service, tightened) =
        Service::open(dir.clone(), config.clone()).map_err(|e| e.to_string())?;
    for t in &tightened {
        println!("cordon: {t}");
    }
    let key = service.host_key().map_err(|e| e.to_string())?;
    let fingerprint = key.public_key().fingerprint(russh::keys::HashAlg::Sha256);
    let has_users = service.has_users().map_err(|e| e.to_string())?;
    let shared = Shared::new(service.clone(), config.clone());

    let mut methods = russh::MethodSet::empty();
    methods.push(russh::MethodKind::PublicKey);
    if config.password_login {
        methods.push(russh::MethodKind::Password);
        // Passwords by prompt too, and the second factor's code after either.
        methods.push(russh::MethodKind::KeyboardInteractive);
    }
    let ssh_config = Arc::new(russh::server::Config {
        methods,
        keys: vec![key],
        // OpenSSH probes "none" first; answering at once keeps logins fast.
        auth_rejection_time: std::time::Duration::from_secs(1),
        auth_rejection_time_initial: Some(std::time::Duration::from_secs(0)),
        keepalive_interval: Some(config.keepalive),
        keepalive_max: 4,
        inactivity_timeout: None,
        nodelay: true,
        server_id: russh::SshId::Standard(
            format!("SSH-2.0-cordon_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        ..Default::default()
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen).await.map_err(|e| format!("listening on {}: {e}", config.listen))?;
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| config.listen.clone());
        // Among the hosts sharing the store: refused while another live host has this name.
        service.cluster_join().map_err(|e| e.to_string())?;
        service.host_started(&local).map_err(|e| e.to_string())?;
        println!("cordon: listening on {local} (SSH); host key {fingerprint}");
        println!(
            "cordon: data in {}; users' homes in {}, workspaces in {}",
            dir.root.display(),
            config.home_root.display(),
            config.workspace_root.display()
        );
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            println!("cordon: sessions run as uid {} + the user's id, never as root", config.uid_base);
        }
        if !config.recording_enabled {
            println!("cordon: WARNING: recordings are off ([recordings] enabled = false): sessions are not recorded");
        }
        if !has_users {
            println!("cordon: no users yet. Add the first admin with:");
            println!("    cordon --data-dir {} user add NAME --role admin --key \"$(cat ~/.ssh/id_ed25519.pub)\"", dir.root.display());
        }
        for place in crate::api::start(service.clone()).await? {
            println!("cordon: HTTP API on {place} (see /v1/openapi.json)");
        }
        // A convenience, not a guard: without it the host still serves SSH.
        if let Some(path) = &config.tui_socket {
            match crate::tui::socket::listen(service.clone(), path) {
                Ok(()) => println!("cordon: `cordon tui` connects through {}", path.display()),
                Err(e) => println!("cordon: WARNING: no TUI socket: {e}"),
            }
        }
        let (host, port) = local.rsplit_once(':').unwrap_or((&local, "2222"));
        println!("cordon: then connect with: ssh -p {port} NAME@{host}");
        let _ = std::io::stdout().flush();

        match service.start_uploads() {
            Ok(Some(place)) => println!("cordon: recordings are uploaded to {place}"),
            Ok(None) => {}
            Err(e) => println!("cordon: WARNING: recordings are not uploaded: {e}"),
        }
        if let Some(age) = config.retention {
            let purging = service.clone();
            tokio::spawn(async move {
                loop {
                    let svc = purging.clone();
                    let purged = tokio::task::spawn_blocking(move || svc.purge_recordings()).await.unwrap_or_default();
                    if !purged.is_empty() {
                        println!("cordon: purged {} recordings past the retention of {} s", purged.len(), age.as_secs());
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                }
            });
        }
        // The audit chain verified once in the background, so that the Audit view and
        // `GET /v1/audit/verify` later read only what was appended since.
        let warm = service.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = warm.verify_chain(false) {
                eprintln!("cordon: WARNING: the audit log does not verify: {e}");
            }
        });
        // Authority and limits: what a user may no longer do ends within a second.
        let maintained = service.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let svc = maintained.clone();
                let _ = tokio::task::spawn_blocking(move || svc.maintain()).await;
            }
        });
        tokio::spawn(crate::ssh::watch(shared.clone()));

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            "cordon is shutting down".to_string()
        };
        crate::ssh::serve(listener, ssh_config, shared, stop).await;
        let stopping = service.clone();
        let _ = tokio::task::spawn_blocking(move || stopping.host_stopping(Some(Kind::ServeStop))).await;
        println!("cordon: stopped");
        Ok::<(), String>(())
    })
}

/// Refuses to start when an account of this machine has a uid (or a group a gid) in the
/// range given to cordon users' sessions: that account would own their files.
fn check_uid_range(config: &Config) -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let (lo, hi) = (
        u64::from(config.uid_base),
        u64::from(config.uid_base) + u64::from(crate::config::MAX_USER_ID),
    );
    for file in ["/etc/passwd", "/etc/group"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines() {
            let mut f = line.split(':');
            let (name, id) = (
                f.next().unwrap_or(""),
                f.nth(1).and_then(|v| v.parse::<u64>().ok()),
            );
            if let Some(id) = id.filter(|id| (lo..=hi).contains(id)) {
                return Err(format!(
                    "{file}: {name} has id {id}, inside the ids cordon gives its users' sessions ({lo}..{hi}); set [sessions] uid_base elsewhere"
                ));
            }
        }
    }
    Ok(())
}
