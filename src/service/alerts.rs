//! Alerts inside the host (issue 19): events from the faces and the host's own checks go
//! through the evaluator (`crate::alerts`); a rule that fires opens an incident (or joins
//! the recent one of the same rule and key), is written to the audit log (`alert.raised`),
//! goes to syslog and the webhook (queued: a login path never waits for a sink), and
//! applies its containment: an address blocked for a time (refused at SSH accept, at every
//! login and at every API request; stored, so it outlives a restart), or a user locked
//! (tokens revoked, sessions and commands ended; never the last active admin).
//!
//! Another part of the host (lockdown) writes into incidents through
//! [`Service::incident_record`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Error, Principal, Result, Service};
use crate::alerts::evaluate::{Evaluator, Fired};
use crate::alerts::webhook::Webhook;
use crate::alerts::{Alert, ContainAction, Rule, RuleConfig};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Action;
use crate::store::{Block, Incident, IncidentEvent};

/// An alert joins the incident of its rule and key when that had an event this recently.
pub const INCIDENT_JOIN: Duration = Duration::from_secs(24 * 3600);
/// The host's own checks (disk, memory, the audit chain, counters) run this often.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// The alerts' state in a running host.
pub struct Alerting {
    eval: Mutex<Evaluator>,
    /// Started at the first alert (a host-shell command that raises none starts no thread).
    webhook: Mutex<Option<Arc<Webhook>>>,
    syslog: Option<crate::audit::sinks::Sink>,
    /// Alerts raised per rule since the host started (Rule::ALL's order).
    counts: [AtomicU64; 8],
    checked: Mutex<Option<Instant>>,
    seen_recording_errors: AtomicU64,
    seen_sandbox_refusals: AtomicU64,
}

impl Alerting {
    pub fn new(config: &crate::alerts::AlertsConfig) -> Alerting {
        Alerting {
            eval: Mutex::new(Evaluator::default()),
            webhook: Mutex::new(None),
            syslog: config
                .syslog
                .clone()
                .map(|p| crate::audit::sinks::Sink::new(crate::audit::sinks::Target::Syslog(p))),
            counts: Default::default(),
            checked: Mutex::new(None),
            seen_recording_errors: AtomicU64::new(crate::record::ERRORS.load(Ordering::Relaxed)),
            seen_sandbox_refusals: AtomicU64::new(
                crate::sessions::SANDBOX_REFUSALS.load(Ordering::Relaxed),
            ),
        }
    }

    /// Alerts raised per rule, for /metrics.
    pub fn counts(&self) -> [(&'static str, u64); 8] {
        let mut out = [("", 0); 8];
        for (i, r) in Rule::ALL.into_iter().enumerate() {
            out[i] = (r.name(), self.counts[i].load(Ordering::Relaxed));
        }
        out
    }
}

/// The address of a peer (`IP`, `IP:PORT`, `[IPv6]:PORT`), if it is one: only addresses are
/// ever blocked (the unix socket and local logins never are).
pub fn peer_address(peer: &str) -> Option<IpAddr> {
    peer.parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| peer.parse::<IpAddr>())
        .ok()
        .map(|ip| match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        })
}

fn until_text(until: i64) -> String {
    crate::audit::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(until.max(0) as u64))
}

/// The words a blocked address is refused with.
pub fn block_message(b: &Block) -> String {
    format!(
        "requests from {} are blocked until {} (alert {}, incident {}); an admin can lift it with `cordon block rm {}`",
        b.address,
        until_text(b.until),
        b.rule,
        b.incident,
        b.address
    )
}

impl Service {
    /// Whether `peer` is blocked now: the refusal's words if so (audited, bounded per
    /// address). `face` says where it was refused (ssh, api, login). A database failure
    /// lets the caller through: the other checks still apply, and the host's log says it.
    pub fn blocked(&self, peer: &str, face: &str) -> Option<String> {
        let ip = peer_address(peer)?.to_string();
        match self.store.block_of(&ip, crate::tokens::now()) {
            Ok(Some(b)) => {
                self.record_bounded(
                    &format!("address.refused:{ip}"),
                    AuditEvent::new(Kind::AddressRefused, "anonymous")
                        .with("address", ip.clone())
                        .with("face", face.to_string())
                        .with("until", until_text(b.until)),
                );
                Some(block_message(&b))
            }
            Ok(None) => None,
            Err(e) => {
                eprintln!("cordon: alerts: checking whether {ip} is blocked: {e}");
                None
            }
        }
    }

    /// A password login failed for `name` (as offered, escaped) from `peer`.
    pub(super) fn alert_login_failed(&self, name: &str, peer: &str) {
        let address = peer_address(peer)
            .map(|a| a.to_string())
            .unwrap_or_else(|| peer.to_string());
        self.alert_count(Rule::FailedLoginsAddress, &address);
        self.alert_count(Rule::FailedLoginsUser, name);
    }

    /// A `run` command of `user` that the sandbox refused to start.
    pub(super) fn alert_sandbox_refused(&self, user: &str) {
        self.alert_count(Rule::SandboxRefusals, user);
    }

    /// The API answered a request with `status` (server errors count toward `api_errors`).
    pub fn api_answered(&self, status: u16) {
        self.alert_on(Rule::ApiErrors, |eval, cfg| {
            eval.rate(
                Rule::ApiErrors,
                status >= 500,
                cfg.threshold,
                cfg.min_requests,
                cfg.window,
                Instant::now(),
            )
        });
    }

    fn alert_count(&self, rule: Rule, key: &str) {
        self.alert_on(rule, |eval, cfg| {
            eval.count(rule, key, cfg.threshold, cfg.window, Instant::now())
        });
    }

    fn alert_level(&self, rule: Rule, key: &str, value: u64) {
        self.alert_on(rule, |eval, cfg| {
            eval.level(rule, key, value, cfg.threshold)
        });
    }

    /// One observation of `rule` given to the evaluator (`observe` says which kind), and
    /// the alert it raises fired; nothing when the rule is off.
    fn alert_on(
        &self,
        rule: Rule,
        observe: impl FnOnce(&mut Evaluator, &RuleConfig) -> Option<Fired>,
    ) {
        let Some(cfg) = self.config.alerts.rule(rule).cloned() else {
            return;
        };
        let fired = observe(
            &mut self.alerting.eval.lock().unwrap_or_else(|e| e.into_inner()),
            &cfg,
        );
        if let Some(f) = fired {
            self.fire(f, &cfg);
        }
    }

    /// The host's own checks, from [`Service::maintain`] (every 30 s): disk, memory, the
    /// audit chain (incrementally, from the last verified position), and the counters of
    /// recording failures and sandbox refusals.
    pub(super) fn alert_checks(&self) {
        {
            let mut last = self
                .alerting
                .checked
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let recordings = self
            .config
            .recordings_dir
            .clone()
            .unwrap_or_else(|| self.dir.root.join("recordings"));
        for path in [self.dir.root.clone(), recordings] {
            if let Some(pct) = crate::alerts::disk_percent(&path) {
                self.alert_level(Rule::Disk, &path.display().to_string(), pct);
            }
        }
        if let Some(pct) = crate::alerts::memory_percent() {
            self.alert_level(Rule::Memory, "host", pct);
        }
        if self.config.alerts.rule(Rule::AuditChain).is_some() {
            let broken = self.verify_chain(false).is_err();
            self.alert_level(Rule::AuditChain, "audit.log", u64::from(broken) * 100);
        }
        for (counter, seen, rule) in [
            (
                &crate::record::ERRORS,
                &self.alerting.seen_recording_errors,
                Rule::RecordingFailures,
            ),
            (
                &crate::sessions::SANDBOX_REFUSALS,
                &self.alerting.seen_sandbox_refusals,
                Rule::SandboxRefusals,
            ),
        ] {
            let now = counter.load(Ordering::Relaxed);
            let before = seen.swap(now, Ordering::Relaxed);
            // Each new one counted, at most a thousand a check (the evaluator keeps no more).
            for _ in 0..now.saturating_sub(before).min(1000) {
                self.alert_count(rule, "host");
            }
        }
    }

    /// A rule fired: the incident, the audit event, the containment, then the sinks.
    fn fire(&self, f: Fired, cfg: &RuleConfig) {
        let now = crate::tokens::now();
        if let Some(i) = Rule::ALL.iter().position(|r| *r == f.rule) {
            self.alerting.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        let rule = f.rule.name();
        let incident =
            match self
                .store
                .incident_for(rule, &f.key, now, now - INCIDENT_JOIN.as_secs() as i64)
            {
                Ok((id, _)) => id,
                Err(e) => {
                    eprintln!("cordon: alerts: opening an incident for {rule}: {e}");
                    0
                }
            };
        let unit = match f.rule {
            Rule::ApiErrors | Rule::Disk | Rule::Memory => "%",
            _ => "",
        };
        self.note(
            incident,
            "alert.raised",
            &format!(
                "{rule} for {} {}: {}{unit} (threshold {}{unit}, window {} s)",
                f.rule.key_kind(),
                f.key,
                f.count,
                cfg.threshold,
                cfg.window.as_secs()
            ),
        );
        let mut actions = Vec::new();
        for action in &cfg.actions {
            if let Some(done) = self.contain(*action, &f, cfg, incident, now) {
                actions.push(done);
            }
        }
        let alert = Alert {
            rule: rule.to_string(),
            severity: f.rule.severity().to_string(),
            key: f.key.clone(),
            count: f.count,
            threshold: cfg.threshold,
            window_seconds: cfg.window.as_secs(),
            host: crate::alerts::host_name(),
            time: crate::audit::now_rfc3339(),
            incident,
            actions: actions.clone(),
            test: false,
        };
        self.record(
            AuditEvent::new(Kind::AlertRaised, "cordon")
                .with("rule", rule)
                .with("severity", f.rule.severity())
                .with("key", f.key.clone())
                .with("count", f.count)
                .with("threshold", cfg.threshold)
                .with("window_seconds", cfg.window.as_secs())
                .with("incident", incident)
                .with("actions", actions),
        );
        if let Some(s) = &self.alerting.syslog {
            s.send(&alert.line());
        }
        if let Some(w) = self.webhook() {
            if let Ok(body) = serde_json::to_string(&alert) {
                w.send(body);
            }
        }
    }

    /// Applies one containment action; what was done, for the alert's `actions`.
    fn contain(
        &self,
        action: ContainAction,
        f: &Fired,
        cfg: &RuleConfig,
        incident: i64,
        now: i64,
    ) -> Option<String> {
        let rule = f.rule.name();
        match action {
            ContainAction::BlockAddress => {
                let ip = peer_address(&f.key)?.to_string();
                let until = now + cfg.block_for.as_secs() as i64;
                if let Err(e) = self.store.block_address(&ip, until, rule, incident) {
                    eprintln!("cordon: alerts: blocking {ip}: {e}");
                    self.note(
                        incident,
                        "address.block",
                        &format!("blocking {ip} failed: {e}"),
                    );
                    return None;
                }
                self.record(
                    AuditEvent::new(Kind::AddressBlock, "cordon")
                        .with("address", ip.clone())
                        .with("until", until_text(until))
                        .with("rule", rule)
                        .with("incident", incident),
                );
                self.note(
                    incident,
                    "address.block",
                    &format!("{ip} blocked until {}", until_text(until)),
                );
                Some("block_address".into())
            }
            ContainAction::LockUser => {
                let u = match self.store.user(&f.key) {
                    Ok(Some(u)) => u,
                    _ => {
                        self.note(incident, "user.lock", "no such user: nothing to lock");
                        return None;
                    }
                };
                if u.locked {
                    return None;
                }
                if self.last_admin(&u) {
                    self.note(
                        incident,
                        "user.lock",
                        &format!("{} not locked: the last active admin", u.name),
                    );
                    return None;
                }
                if let Err(e) = self.store.set_locked(&u.name, true) {
                    self.note(incident, "user.lock", &format!("locking failed: {e}"));
                    return None;
                }
                let _ = self.store.revoke_user_tokens(u.id, crate::tokens::now());
                let ended = self.end_everything_of(u.id);
                self.record(
                    AuditEvent::new(Kind::UserLock, "cordon")
                        .with("user", u.name.clone())
                        .with("sessions_ended", ended)
                        .with("rule", rule)
                        .with("incident", incident),
                );
                self.note(
                    incident,
                    "user.lock",
                    &format!(
                        "{} locked, {} ended",
                        u.name,
                        crate::text::count(ended, "session or command")
                    ),
                );
                Some("lock_user".into())
            }
        }
    }

    fn note(&self, incident: i64, what: &str, detail: &str) {
        if incident != 0 {
            if let Err(e) = self.store.incident_note(incident, what, detail) {
                eprintln!("cordon: alerts: incident {incident}: {e}");
            }
        }
    }

    /// The webhook's sender, started at first use (None: no webhook configured, or its
    /// thread could not start, said on stderr).
    fn webhook(&self) -> Option<Arc<Webhook>> {
        let cfg = self.config.alerts.webhook.clone()?;
        let mut w = self
            .alerting
            .webhook
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if w.is_none() {
            match Webhook::start(cfg) {
                Ok(started) => *w = Some(Arc::new(started)),
                Err(e) => eprintln!("cordon: alerts: the webhook's thread: {e}"),
            }
        }
        w.clone()
    }

    /// Opens (or joins, within a day) the incident of `rule` and `key` and adds `what` with
    /// `detail` to its timeline: for other parts of the host that act on incidents (lockdown).
    /// `rule` and `key` are free words (e.g. `lockdown`, `host`). Returns the incident's id.
    pub fn incident_record(&self, rule: &str, key: &str, what: &str, detail: &str) -> Result<i64> {
        let now = crate::tokens::now();
        let (id, _) =
            self.store
                .incident_for(rule, key, now, now - INCIDENT_JOIN.as_secs() as i64)?;
        self.store.incident_note(id, what, detail)?;
        Ok(id)
    }

    /// Sends a test alert through every sink (admins): each sink's name and outcome. Waits
    /// for the webhook's attempts (bounded by their timeouts and backoff): a host-shell
    /// command's call, never a login path's.
    pub fn alert_test(
        &self,
        p: &Principal,
    ) -> Result<Vec<(String, std::result::Result<String, String>)>> {
        let p = self.check(p, Action::ManageUsers, "alert test", |p| {
            format!("{} may not send test alerts", p.role.with_article())
        })?;
        let alert = Alert {
            rule: "test".into(),
            severity: "info".into(),
            key: "test".into(),
            count: 0,
            threshold: 0,
            window_seconds: 0,
            host: crate::alerts::host_name(),
            time: crate::audit::now_rfc3339(),
            incident: 0,
            actions: Vec::new(),
            test: true,
        };
        let mut results = vec![("audit log".to_string(), Ok("written".to_string()))];
        if let Some(s) = &self.alerting.syslog {
            results.push((
                "syslog".into(),
                s.try_send(&alert.line())
                    .map(|_| "sent".to_string())
                    .map_err(|e| e.to_string()),
            ));
        }
        if let Some(cfg) = self.config.alerts.webhook.clone() {
            let outcome = match (self.webhook(), serde_json::to_string(&alert)) {
                (Some(w), Ok(body)) => {
                    let mut wait = Duration::ZERO;
                    let mut backoff = cfg.backoff;
                    for _ in 0..cfg.attempts {
                        wait += cfg.timeout + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(300));
                    }
                    w.send_and_wait(body, wait + Duration::from_secs(5))
                        .map(|n| format!("delivered (attempt {n})"))
                }
                (None, _) => Err("the webhook's thread could not start".into()),
                (_, Err(e)) => Err(e.to_string()),
            };
            results.push((format!("webhook {}", cfg.url), outcome));
        }
        let summary: Vec<String> = results
            .iter()
            .map(|(sink, r)| match r {
                Ok(m) => format!("{sink}: {m}"),
                Err(e) => format!("{sink}: failed: {e}"),
            })
            .collect();
        self.record(
            p.stamp(AuditEvent::new(Kind::AlertTest, p.user.clone()))
                .with("results", summary),
        );
        Ok(results)
    }

    /// Addresses blocked now (admins and auditors).
    pub fn blocks(&self, p: &Principal) -> Result<Vec<Block>> {
        self.check(p, Action::ReadAudit, "blocks", |p| {
            format!("{} may not see blocked addresses", p.role.with_article())
        })?;
        Ok(self.store.blocks(crate::tokens::now())?)
    }

    /// Lifts an address's block (admins); audited and noted in its incident.
    pub fn unblock(&self, p: &Principal, address: &str) -> Result<Block> {
        let p = self.check(p, Action::ManageUsers, "unblock", |p| {
            format!("{} may not lift blocks", p.role.with_article())
        })?;
        let ip = peer_address(address)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "\"{}\" is not an IP address",
                    crate::text::printable(address)
                ))
            })?
            .to_string();
        let b = self
            .store
            .unblock_address(&ip, crate::tokens::now())?
            .ok_or_else(|| Error::NotFound(format!("{ip} is not blocked")))?;
        self.record(
            p.stamp(AuditEvent::new(Kind::AddressUnblock, p.user.clone()))
                .with("address", ip.clone())
                .with("incident", b.incident),
        );
        self.note(
            b.incident,
            "address.unblock",
            &format!("{ip} unblocked by {}", p.user),
        );
        Ok(b)
    }

    /// The latest `limit` incidents, newest first (admins and auditors).
    pub fn incidents(&self, p: &Principal, limit: usize) -> Result<Vec<Incident>> {
        self.check(p, Action::ReadAudit, "incidents", |p| {
            format!("{} may not see incidents", p.role.with_article())
        })?;
        Ok(self.store.incidents(limit.clamp(1, 10_000))?)
    }

    /// One incident and its timeline (admins and auditors).
    pub fn incident(&self, p: &Principal, id: i64) -> Result<(Incident, Vec<IncidentEvent>)> {
        self.check(p, Action::ReadAudit, "incident", |p| {
            format!("{} may not see incidents", p.role.with_article())
        })?;
        self.store
            .incident(id)?
            .ok_or_else(|| Error::NotFound(format!("no incident {id}")))
    }
}

/// For tests: a note on an incident by its id.
#[cfg(test)]
impl Service {
    /// Adds `what` with `detail` to incident `id`'s timeline (NotFound: no such incident).
    pub fn incident_note(&self, id: i64, what: &str, detail: &str) -> Result<()> {
        Ok(self.store.incident_note(id, what, detail)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    /// A service whose failed-login rules lock users and block addresses.
    fn service() -> (tempfile::TempDir, Arc<Service>) {
        let dir = tempfile::tempdir().unwrap();
        let data = crate::paths::DataDir::new(dir.path().join("data"));
        let file = dir.path().join("cordon.toml");
        std::fs::write(
            &file,
            "[alerts.failed_logins_user]\nactions = [\"lock_user\"]\n[alerts.failed_logins_address]\nactions = [\"block_address\"]\nblock_for = \"10m\"\n",
        )
        .unwrap();
        let config = crate::config::Config::load(Some(&file), &data.root).unwrap();
        let (svc, _) = Service::open(data, config).unwrap();
        (dir, svc)
    }

    #[test]
    fn failures_naming_the_last_admin_never_lock_them_out_but_block_the_address() {
        let (_d, svc) = service();
        let local = Principal::local_admin();
        svc.add_user(&local, "boss", Role::Admin, &[]).unwrap();
        for _ in 0..5 {
            svc.alert_login_failed("boss", "10.0.0.1:4242");
        }
        assert!(!svc.store.user("boss").unwrap().unwrap().locked);
        let why = svc.blocked("10.0.0.1:5555", "ssh").expect("blocked");
        assert!(why.contains("cordon block rm 10.0.0.1"), "{why}");
        assert!(svc.blocked("10.0.0.2:5555", "ssh").is_none());
        assert!(svc.blocked("unix", "api").is_none());
        let incidents = svc.incidents(&local, 10).unwrap();
        let user_incident = incidents
            .iter()
            .find(|i| i.rule == "failed_logins_user")
            .unwrap();
        let (_, timeline) = svc.incident(&local, user_incident.id).unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.detail.contains("the last active admin")),
            "{timeline:?}"
        );
        // Lifted by an admin, noted in the incident.
        svc.unblock(&local, "10.0.0.1").unwrap();
        assert!(svc.blocked("10.0.0.1:5555", "ssh").is_none());
        assert_eq!(
            svc.unblock(&local, "10.0.0.1").unwrap_err(),
            Error::NotFound("10.0.0.1 is not blocked".into())
        );
    }

    #[test]
    fn failures_naming_a_developer_lock_them_and_four_do_not() {
        let (_d, svc) = service();
        let local = Principal::local_admin();
        svc.add_user(&local, "boss", Role::Admin, &[]).unwrap();
        svc.add_user(&local, "alice", Role::Developer, &[]).unwrap();
        for i in 0..4 {
            svc.alert_login_failed("alice", &format!("10.0.1.{i}:1"));
        }
        assert!(!svc.store.user("alice").unwrap().unwrap().locked);
        svc.alert_login_failed("alice", "10.0.1.9:1");
        assert!(svc.store.user("alice").unwrap().unwrap().locked);
        // Spread over five addresses: none of them is blocked.
        assert!(svc.blocks(&local).unwrap().is_empty());
        assert_eq!(svc.alerting.counts()[1], ("failed_logins_user", 1));
    }

    #[test]
    fn another_part_of_the_host_can_open_and_extend_an_incident() {
        let (_d, svc) = service();
        let id = svc
            .incident_record("lockdown", "host", "lockdown.on", "by boss")
            .unwrap();
        svc.incident_note(id, "lockdown.off", "by boss").unwrap();
        let again = svc
            .incident_record("lockdown", "host", "lockdown.on", "again")
            .unwrap();
        assert_eq!(id, again, "joined within a day");
        let (_, t) = svc.incident(&Principal::local_admin(), id).unwrap();
        assert_eq!(t.len(), 3);
        assert!(svc.incident_note(id + 100, "x", "y").is_err());
    }

    #[test]
    fn a_peer_is_an_address_with_or_without_its_port_and_the_socket_is_none() {
        assert_eq!(peer_address("10.1.2.3:5555"), "10.1.2.3".parse().ok());
        assert_eq!(peer_address("10.1.2.3"), "10.1.2.3".parse().ok());
        assert_eq!(peer_address("[::1]:22"), "::1".parse().ok());
        assert_eq!(peer_address("::1"), "::1".parse().ok());
        assert_eq!(peer_address("::ffff:10.0.0.1"), "10.0.0.1".parse().ok());
        assert_eq!(peer_address("unix"), None);
        assert_eq!(peer_address("local uid 0"), None);
    }
}
