//! `[alerts]` of the configuration: one table per rule (enabled, threshold, window,
//! containment actions), the webhook and syslog. Every key has a default (the
//! specification's thresholds); a rule may only take the actions its key can carry
//! (`block_address` on an address, `lock_user` on a user).

use super::Rule;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `[alerts]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    syslog: Option<bool>,
    syslog_socket: Option<PathBuf>,
    webhook: Option<WebhookFile>,
    failed_logins_address: Option<RuleFile>,
    failed_logins_user: Option<RuleFile>,
    api_errors: Option<RuleFile>,
    disk: Option<RuleFile>,
    memory: Option<RuleFile>,
    recording_failures: Option<RuleFile>,
    audit_chain: Option<RuleFile>,
    sandbox_refusals: Option<RuleFile>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    enabled: Option<bool>,
    threshold: Option<u64>,
    window: Option<String>,
    min_requests: Option<u64>,
    actions: Option<Vec<String>>,
    block_for: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    url: Option<String>,
    secret_file: Option<PathBuf>,
    timeout: Option<String>,
    attempts: Option<u32>,
    backoff: Option<String>,
    ca_file: Option<PathBuf>,
}

/// A containment action a rule may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainAction {
    /// Refuse every connection and request from the address for `block_for`.
    BlockAddress,
    /// Lock the user (tokens revoked, sessions and commands ended).
    LockUser,
}

impl ContainAction {
    pub fn name(self) -> &'static str {
        match self {
            ContainAction::BlockAddress => "block_address",
            ContainAction::LockUser => "lock_user",
        }
    }
}

/// One rule, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    pub enabled: bool,
    /// Events in the window (a percent for `api_errors`, `disk` and `memory`).
    pub threshold: u64,
    pub window: Duration,
    /// `api_errors`: answers in the window below which no rate is judged.
    pub min_requests: u64,
    pub actions: Vec<ContainAction>,
    pub block_for: Duration,
}

/// The webhook, when `[alerts.webhook] url` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// The HMAC key, read at each delivery (so it can be rotated); no file, no signature
    /// is refused: a webhook is always signed.
    pub secret_file: PathBuf,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
    /// PEM roots for https (default: the system's bundle).
    pub ca_file: Option<PathBuf>,
}

/// `[alerts]`, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    pub rules: BTreeMap<Rule, RuleConfig>,
    pub webhook: Option<WebhookConfig>,
    /// Alerts also go to syslog (journald reads the same socket).
    pub syslog: Option<PathBuf>,
}

/// A key of `[alerts]` cordon does not take: which, and why.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {why}")]
pub struct AlertsConfigError {
    pub key: String,
    pub why: String,
}

fn bad(key: String, why: impl std::fmt::Display) -> AlertsConfigError {
    AlertsConfigError {
        key,
        why: why.to_string(),
    }
}

/// The specification's thresholds: (threshold, window, enabled).
fn defaults(rule: Rule) -> (u64, &'static str, bool) {
    match rule {
        Rule::FailedLoginsAddress | Rule::FailedLoginsUser => (5, "5m", true),
        Rule::ApiErrors => (5, "5m", true),
        Rule::Disk => (85, "5m", true),
        Rule::Memory => (90, "5m", true),
        Rule::RecordingFailures => (1, "5m", true),
        Rule::AuditChain => (1, "5m", true),
        Rule::SandboxRefusals => (10, "5m", true),
    }
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig::load(AlertsFile::default()).expect("the defaults load")
    }
}

impl AlertsConfig {
    pub fn load(file: AlertsFile) -> Result<AlertsConfig, AlertsConfigError> {
        let dur = |key: String, v: Option<&str>, default: &str| {
            sandbox::profile::parse_duration(v.unwrap_or(default))
                .map(Duration::from_secs)
                .map_err(|e| bad(key, e))
        };
        let mut rules = BTreeMap::new();
        for rule in Rule::ALL {
            let f = match rule {
                Rule::FailedLoginsAddress => &file.failed_logins_address,
                Rule::FailedLoginsUser => &file.failed_logins_user,
                Rule::ApiErrors => &file.api_errors,
                Rule::Disk => &file.disk,
                Rule::Memory => &file.memory,
                Rule::RecordingFailures => &file.recording_failures,
                Rule::AuditChain => &file.audit_chain,
                Rule::SandboxRefusals => &file.sandbox_refusals,
            }
            .clone()
            .unwrap_or_default();
            let key = |k: &str| format!("alerts.{}.{k}", rule.name());
            let (threshold, window, enabled) = defaults(rule);
            let threshold = f.threshold.unwrap_or(threshold);
            if threshold == 0 {
                return Err(bad(key("threshold"), "must be at least 1"));
            }
            if matches!(rule, Rule::ApiErrors | Rule::Disk | Rule::Memory) && threshold > 100 {
                return Err(bad(key("threshold"), "is a percent: at most 100"));
            }
            let window = dur(key("window"), f.window.as_deref(), window)?;
            if window.is_zero() {
                return Err(bad(key("window"), "must be at least 1s"));
            }
            let mut actions = Vec::new();
            for a in f.actions.unwrap_or_default() {
                let action = match a.as_str() {
                    "block_address" => ContainAction::BlockAddress,
                    "lock_user" => ContainAction::LockUser,
                    other => {
                        return Err(bad(
                            key("actions"),
                            format!("\"{other}\" is not an action (block_address, lock_user)"),
                        ))
                    }
                };
                let fits = match action {
                    ContainAction::BlockAddress => rule.key_kind() == "address",
                    ContainAction::LockUser => rule.key_kind() == "user",
                };
                if !fits {
                    return Err(bad(
                        key("actions"),
                        format!(
                            "{} needs a rule counted per {}, and {} is counted per {}",
                            action.name(),
                            if action == ContainAction::BlockAddress {
                                "address"
                            } else {
                                "user"
                            },
                            rule.name(),
                            rule.key_kind()
                        ),
                    ));
                }
                if !actions.contains(&action) {
                    actions.push(action);
                }
            }
            let block_for = dur(key("block_for"), f.block_for.as_deref(), "1h")?;
            if block_for.is_zero() {
                return Err(bad(key("block_for"), "must be at least 1s"));
            }
            rules.insert(
                rule,
                RuleConfig {
                    enabled: f.enabled.unwrap_or(enabled),
                    threshold,
                    window,
                    min_requests: f.min_requests.unwrap_or(20).max(1),
                    actions,
                    block_for,
                },
            );
        }
        let webhook = match file.webhook {
            None => None,
            Some(w) => match w.url {
                None => None,
                Some(u) if u.is_empty() => None,
                Some(url) => {
                    super::webhook::Target::parse(&url)
                        .map_err(|e| bad("alerts.webhook.url".into(), e))?;
                    let secret_file = w.secret_file.ok_or_else(|| {
                        bad(
                            "alerts.webhook.secret_file".into(),
                            "a webhook needs a secret to sign with: name a file holding it (e.g. `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`)",
                        )
                    })?;
                    if !secret_file.is_absolute() {
                        return Err(bad(
                            "alerts.webhook.secret_file".into(),
                            format!("\"{}\" is not an absolute path", secret_file.display()),
                        ));
                    }
                    let attempts = w.attempts.unwrap_or(5);
                    if !(1..=20).contains(&attempts) {
                        return Err(bad(
                            "alerts.webhook.attempts".into(),
                            "must be between 1 and 20",
                        ));
                    }
                    Some(WebhookConfig {
                        url,
                        secret_file,
                        timeout: dur("alerts.webhook.timeout".into(), w.timeout.as_deref(), "10s")?
                            .max(Duration::from_secs(1)),
                        attempts,
                        backoff: dur("alerts.webhook.backoff".into(), w.backoff.as_deref(), "2s")?
                            .max(Duration::from_secs(1)),
                        ca_file: w.ca_file,
                    })
                }
            },
        };
        let syslog = file.syslog.unwrap_or(false).then(|| {
            file.syslog_socket
                .unwrap_or_else(|| PathBuf::from("/dev/log"))
        });
        Ok(AlertsConfig {
            rules,
            webhook,
            syslog,
        })
    }

    /// The rule's configuration when it is on.
    pub fn rule(&self, rule: Rule) -> Option<&RuleConfig> {
        self.rules.get(&rule).filter(|r| r.enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<AlertsConfig, AlertsConfigError> {
        AlertsConfig::load(toml::from_str(text).unwrap())
    }

    #[test]
    fn the_defaults_are_the_specifications_thresholds() {
        let c = AlertsConfig::default();
        let r = |rule| c.rules[&rule].clone();
        assert_eq!(r(Rule::FailedLoginsAddress).threshold, 5);
        assert_eq!(r(Rule::FailedLoginsUser).window, Duration::from_secs(300));
        assert_eq!(r(Rule::ApiErrors).threshold, 5);
        assert_eq!(r(Rule::Disk).threshold, 85);
        assert_eq!(r(Rule::Memory).threshold, 90);
        assert!(r(Rule::FailedLoginsAddress).actions.is_empty());
        assert!(c.webhook.is_none() && c.syslog.is_none());
    }

    #[test]
    fn an_action_a_rules_key_cannot_carry_is_refused_naming_the_key() {
        let e = load("[failed_logins_user]\nactions = [\"block_address\"]\n").unwrap_err();
        assert_eq!(e.key, "alerts.failed_logins_user.actions");
        let e = load("[disk]\nactions = [\"lock_user\"]\n").unwrap_err();
        assert_eq!(e.key, "alerts.disk.actions");
        let e = load("[failed_logins_address]\nactions = [\"nuke\"]\n").unwrap_err();
        assert!(e.why.contains("not an action"));
        let c =
            load("[failed_logins_address]\nactions = [\"block_address\"]\nblock_for = \"2h\"\n")
                .unwrap();
        let r = &c.rules[&Rule::FailedLoginsAddress];
        assert_eq!(r.actions, vec![ContainAction::BlockAddress]);
        assert_eq!(r.block_for, Duration::from_secs(7200));
    }

    #[test]
    fn a_webhook_without_a_secret_or_with_a_strange_url_is_refused() {
        let e = load("[webhook]\nurl = \"http://127.0.0.1:9/x\"\n").unwrap_err();
        assert_eq!(e.key, "alerts.webhook.secret_file");
        let e = load("[webhook]\nurl = \"ftp://x/\"\nsecret_file = \"/s\"\n").unwrap_err();
        assert_eq!(e.key, "alerts.webhook.url");
        let e = load("[api_errors]\nthreshold = 150\n").unwrap_err();
        assert_eq!(e.key, "alerts.api_errors.threshold");
    }
}
