//! `cordon serve`: the host. Opens the store and the audit log, loads (or makes, once) the
//! SSH host key, listens, and on SIGTERM or SIGINT ends every session and stops cleanly.

use crate::audit::AuditEvent;
use crate::config::Config;
use crate::paths::DataDir;
use crate::service::Service;
use crate::ssh::{Server, Shared};
use russh::keys::PrivateKey;
use russh::server::Server as _;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Loads the Ed25519 host key, generating it (mode 0600) on first start.
pub fn host_key(path: &Path) -> Result<PrivateKey, String> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(format!("{} is readable by others (mode {mode:o}); chmod 600 it", path.display()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        return PrivateKey::from_openssh(text.as_bytes()).map_err(|e| format!("{}: not an OpenSSH private key: {e}", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let seed = crate::secrets::random_bytes(32).map_err(|e| format!("generating the host key: {e}"))?;
    let mut s = [0u8; 32];
    s.copy_from_slice(&seed);
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&s);
    let key = PrivateKey::from(pair);
    let text = key.to_openssh(russh::keys::ssh_key::LineEnding::LF).map_err(|e| format!("encoding the host key: {e}"))?;
    crate::secrets::write_private(path, text.as_bytes())?;
    Ok(key)
}

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
    // The host holds keys: no core dumps, no ptrace by other users' processes.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let config = Config::load(config_path, &dir.root)?;
    let key = host_key(&dir.host_key())?;
    let fingerprint = key.public_key().fingerprint(russh::keys::HashAlg::Sha256);
    let service = Service::open(dir.clone(), config.clone())?;
    let (store, audit, hub) = (service.store.clone(), service.audit.clone(), service.hub.clone());
    let users = store.users().map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared {
        store: store.clone(),
        audit: audit.clone(),
        config: config.clone(),
        service: service.clone(),
        hashing: tokio::sync::Semaphore::new(2),
    });

    let mut methods = russh::MethodSet::empty();
    methods.push(russh::MethodKind::PublicKey);
    if config.password_login {
        methods.push(russh::MethodKind::Password);
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
        server_id: russh::SshId::Standard(format!("SSH-2.0-cordon_{}", env!("CARGO_PKG_VERSION")).into()),
        ..Default::default()
    });

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("starting the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen).await.map_err(|e| format!("listening on {}: {e}", config.listen))?;
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| config.listen.clone());
        let _ = audit
            .record(AuditEvent::new("serve.start", "cordon").with("listen", local.clone()).with("recording", config.recording_enabled));
        println!("cordon: listening on {local} (SSH); host key {fingerprint}");
        println!("cordon: data in {}; workspaces in {}", dir.root.display(), config.workspace_root.display());
        if !config.recording_enabled {
            println!("cordon: WARNING: recordings are off ([recordings] enabled = false): sessions are not recorded");
        }
        if users.is_empty() {
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

        if let Some(age) = config.retention {
            let (store, audit) = (store.clone(), audit.clone());
            tokio::spawn(async move {
                loop {
                    let purged = crate::record::purge(&store, &audit, age);
                    if !purged.is_empty() {
                        println!("cordon: purged {} recordings past the retention of {} s", purged.len(), age.as_secs());
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                }
            });
        }
        let limits_hub = hub.clone();
        let (limits_store, limits_audit) = (store.clone(), audit.clone());
        let (idle, max) = (config.idle_timeout, config.max_duration);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                limits_hub.enforce_limits(idle, max);
                // A user locked from the host's shell loses their sessions too.
                for s in limits_hub.list() {
                    if limits_store.user(&s.owner).ok().flatten().is_none_or(|u| u.locked) {
                        let _ = limits_audit.record(
                            AuditEvent::new("session.kill", "cordon")
                                .with("session", s.id)
                                .with("reason", "the owner is locked or removed"),
                        );
                        s.kill();
                    }
                }
            }
        });

        let mut server = Server { shared };
        let running = server.run_on_socket(ssh_config, &listener);
        let handle = running.handle();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(|e| e.to_string())?;
        tokio::select! {
            r = running => r.map_err(|e| format!("server: {e}"))?,
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        handle.shutdown("cordon is shutting down".into());
        hub.end_all();
        // Give session readers a moment to record each session's end.
        for _ in 0..50 {
            if hub.list().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = audit.record(AuditEvent::new("serve.stop", "cordon"));
        println!("cordon: stopped");
        Ok::<(), String>(())
    })
}
