//! Ad-hoc flags: what `cordon sandbox --ro --rw --exec --env --net --chdir` adds on top of
//! a profile, read as one more file at the end of its `extends` chain: the same validation
//! (a bad value names its flag where a file's would name its key) and the same merge (lists
//! appended, `[env] set` overridden, the network table replaced).
//!
//! Pure, like the rest of the format: the paths arrive resolved (absolute, canonical,
//! reached without following a link: [`crate::policy::flags`] does that), and the policy
//! refuses a flag where it would skip a profile entry with a note (hidden, protected, not on
//! PATH): a person who typed a flag wants it, or wants to know why not.

use super::{
    layer, validate, EnvSection, ExecSection, FsSection, NetMode, NetSection, Profile,
    ProfileError, ProfileFile,
};
use crate::error::{Refusal, Step};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The flags as given, paths resolved ([`crate::policy::flags::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--ro PATH`: readable (and its programs executable if the allowlist says so).
    pub read: Vec<PathBuf>,
    /// `--rw PATH`: readable and writable, `noexec` as every write grant.
    pub write: Vec<PathBuf>,
    /// `--exec PROGRAM`: a name found on the profile's PATH, or a path, as in `[exec] allow`.
    pub exec: Vec<String>,
    /// `--env NAME=VALUE`: set in the command's environment, over the profile's `[env] set`.
    pub env: Vec<String>,
    /// `--net FORM`: `none`, `host`, `ports:PORT,...`, `proxy[:HOST,...]`, `allow:HOST,...`.
    pub net: Vec<String>,
    /// `--chdir DIR`: where the command starts.
    pub chdir: Option<PathBuf>,
}

/// Where flags stand in a profile's `sources` and in messages.
pub const ORIGIN: &str = "command line";

/// The network forms `--net` takes, for messages.
pub const NET_FORMS: &str = "none, host, ports:PORT[,PORT...], proxy[:HOST[:PORT],...], or allow:HOST[:PORT],... (hosts added to a proxy profile's)";

impl Flags {
    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        *self == Flags::default()
    }

    /// The flags as a command line would say them, for the profile's sources.
    pub fn words(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let paths = |flag: &str, list: &[PathBuf], out: &mut Vec<String>| {
            out.extend(list.iter().map(|p| format!("{flag} {}", p.display())));
        };
        paths("--ro", &self.read, &mut out);
        paths("--rw", &self.write, &mut out);
        out.extend(self.exec.iter().map(|e| format!("--exec {e}")));
        // Names only: a value may be a secret, and the sources are kept in the policy cache
        // (the values are in the policy's environment, computed on every run).
        out.extend(
            self.env
                .iter()
                .map(|e| format!("--env {}", e.split_once('=').map_or(e.as_str(), |(k, _)| k))),
        );
        out.extend(self.net.iter().map(|n| format!("--net {n}")));
        if let Some(d) = &self.chdir {
            out.push(format!("--chdir {}", d.display()));
        }
        out.join(" ")
    }

    /// Whether `entry` of the merged exec allowlist came from `--exec`.
    pub fn execs(&self, entry: &str) -> bool {
        self.exec.iter().any(|e| e == entry)
    }
}

/// A refusal of one flag's value: `--net ports:x: "x" is not a port`.
pub fn refuse(flag: &str, value: impl std::fmt::Display, why: impl std::fmt::Display) -> Refusal {
    Refusal::new(Step::Profile, format!("{flag} {value}: {why}"))
}

/// `NAME=VALUE` split at its first `=`; the name is checked by the profile's validation.
fn parse_env(raw: &str) -> Result<(String, String), Refusal> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| {
            refuse("--env", raw, "give NAME=VALUE (NAME= for an empty value)")
                .hint("to pass a variable from your environment, add it to [env] pass in a profile that extends this one")
        })
}

/// What `--net` does to the profile's network.
#[derive(Debug, Clone)]
enum NetChange {
    /// No `--net`.
    Keep,
    /// A mode: the whole `[network]` table replaced, as a child profile's would be.
    Replace(NetSection),
    /// Only `allow:` forms: hosts added to a proxy profile's own.
    Allow(Vec<String>),
}

/// Reads every `--net` form: at most one mode (`ports:` and `proxy:` may repeat, their
/// lists joined), and `allow:` lists, which add to the mode's hosts.
fn parse_net(forms: &[String]) -> Result<NetChange, Refusal> {
    let mut mode: Option<(NetMode, &str)> = None;
    let mut connect: Vec<u16> = Vec::new();
    let mut allow: Vec<String> = Vec::new();
    let mut added: Vec<String> = Vec::new();
    let items = |rest: &str| -> Vec<String> {
        rest.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    for form in forms {
        let (word, rest) = match form.split_once(':') {
            Some((w, r)) => (w, Some(r)),
            None => (form.as_str(), None),
        };
        let m = match (word, rest) {
            ("none", None) => NetMode::None,
            ("host", None) => NetMode::Host,
            ("ports", Some(list)) => {
                let ports = items(list);
                if ports.is_empty() {
                    return Err(refuse(
                        "--net",
                        form,
                        "name at least one TCP port: ports:443",
                    ));
                }
                for p in ports {
                    connect.push(p.parse().map_err(|_| {
                        refuse("--net", form, format!("\"{p}\" is not a port (1 to 65535)"))
                    })?);
                }
                NetMode::Ports
            }
            ("proxy", rest) => {
                allow.extend(rest.map(items).unwrap_or_default());
                NetMode::Proxy
            }
            ("allow", Some(list)) => {
                let hosts = items(list);
                if hosts.is_empty() {
                    return Err(refuse(
                        "--net",
                        form,
                        "name at least one host: allow:example.com",
                    ));
                }
                added.extend(hosts);
                continue;
            }
            _ => {
                return Err(refuse(
                    "--net",
                    form,
                    format!("not a network form: {NET_FORMS}"),
                ))
            }
        };
        match mode {
            Some((before, first)) if before != m => {
                return Err(Refusal::new(
                    Step::Profile,
                    format!("--net {first} and --net {form} ask for two network modes"),
                )
                .hint("give one mode; allow:HOST adds hosts to proxy mode"))
            }
            _ => mode = Some((m, form)),
        }
    }
    Ok(match mode {
        Some((mode, _)) => {
            allow.extend(added);
            NetChange::Replace(NetSection {
                mode,
                connect,
                bind: Vec::new(),
                udp: false,
                allow,
                deny: Vec::new(),
                unknown: None,
                ask_wait: None,
                include: Vec::new(),
            })
        }
        None if !added.is_empty() => NetChange::Allow(added),
        None => NetChange::Keep,
    })
}

/// A validation error of the flags' layer, named by its flag instead of its key.
fn named_by_flag(e: ProfileError) -> Refusal {
    let key = e.key.unwrap_or_default();
    let flag = match key.split('.').collect::<Vec<_>>().as_slice() {
        ["filesystem", "read"] => "--ro",
        ["filesystem", "write"] => "--rw",
        ["exec", ..] => "--exec",
        ["env", ..] => "--env",
        ["network", ..] => "--net",
        _ => "a flag",
    };
    Refusal::new(Step::Profile, format!("{flag}: {}", e.message))
}

impl Profile {
    /// This profile with `flags` on top, validated as a profile file is: their paths added
    /// to the grants, their programs to the allowlist, their variables over `[env] set`,
    /// their network instead of the profile's (or, for `allow:` alone, its hosts added to a
    /// proxy profile's). The flags are kept in [`Profile::flags`], and their words in
    /// [`Profile::sources`], so that the policy shows them and its cache tells them apart.
    pub fn with_flags(mut self, flags: &Flags) -> Result<Profile, Refusal> {
        if flags.is_empty() {
            return Ok(self);
        }
        let text = |flag: &str, list: &[PathBuf]| -> Result<Vec<String>, Refusal> {
            list.iter()
                .map(|p| {
                    let s = p.to_str().ok_or_else(|| {
                        refuse(
                            flag,
                            p.display(),
                            "cordon takes paths in UTF-8, as profiles write them",
                        )
                    })?;
                    // A profile's paths expand these; a flag's path means what it says.
                    if s.contains("{home}") || s.contains("{workspace}") {
                        return Err(refuse(
                            flag,
                            s,
                            "a path given by a flag cannot hold {home} or {workspace}",
                        ));
                    }
                    Ok(s.to_string())
                })
                .collect()
        };
        let mut set = BTreeMap::new();
        for raw in &flags.env {
            let (k, v) = parse_env(raw)?;
            set.insert(k, v);
        }
        let net = parse_net(&flags.net)?;
        let file = ProfileFile {
            filesystem: FsSection {
                read: text("--ro", &flags.read)?,
                write: text("--rw", &flags.write)?,
                ..FsSection::default()
            },
            exec: ExecSection {
                allow: flags.exec.clone(),
                ..ExecSection::default()
            },
            network: match &net {
                NetChange::Replace(section) => Some(section.clone()),
                _ => None,
            },
            env: EnvSection {
                set,
                ..EnvSection::default()
            },
            ..ProfileFile::default()
        };
        validate(ORIGIN, "", &file).map_err(named_by_flag)?;
        if let NetChange::Allow(hosts) = &net {
            if self.network.mode != NetMode::Proxy {
                return Err(refuse(
                    "--net",
                    format!("allow:{}", hosts.join(",")),
                    format!(
                        "adds hosts to network mode proxy, and profile \"{}\" is in mode {}",
                        self.name,
                        serde_json::to_string(&self.network.mode).unwrap_or_default()
                    ),
                )
                .hint("give --net proxy:HOST,... for a network of only those hosts, or a profile in mode proxy (claude)"));
            }
            let more = crate::egress::Rules::parse(hosts, &[])
                .map_err(|(_, entry, e)| refuse("--net", format!("allow:{entry}"), e))?;
            for rule in more.allow {
                if !self.network.egress.allow.contains(&rule) {
                    self.network.egress.allow.push(rule);
                }
            }
        }
        let names: Vec<String> = file.env.set.keys().cloned().collect();
        layer(&mut self, format!("{ORIGIN} ({})", flags.words()), file);
        if self.network.mode == NetMode::Proxy {
            if let Some(k) = names.iter().find(|k| {
                crate::egress::ENVIRONMENT
                    .iter()
                    .any(|(ours, _)| k.eq_ignore_ascii_case(ours))
            }) {
                return Err(refuse(
                    "--env",
                    k,
                    "network mode proxy sets it: the session's proxies are its only way out",
                ));
            }
        }
        self.flags = Some(flags.clone());
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Search;

    fn default() -> Profile {
        Search::shipped_only().load("default").unwrap()
    }

    fn net(forms: &[&str]) -> Result<Profile, Refusal> {
        default().with_flags(&Flags {
            net: forms.iter().map(|s| s.to_string()).collect(),
            ..Flags::default()
        })
    }

    #[test]
    fn no_flags_leave_the_profile_as_it_was() {
        let before = format!("{:?}", default());
        let after = format!("{:?}", default().with_flags(&Flags::default()).unwrap());
        assert_eq!(before, after);
    }

    #[test]
    fn flags_are_one_more_layer_appended_and_named_among_the_sources() {
        let p = default()
            .with_flags(&Flags {
                read: vec!["/opt/data".into()],
                write: vec!["/srv/out".into()],
                exec: vec!["mytool".into()],
                env: vec!["GREETING=a=b".into(), "EMPTY=".into()],
                ..Flags::default()
            })
            .unwrap();
        assert_eq!(p.read.last().map(String::as_str), Some("/opt/data"));
        assert_eq!(p.write.last().map(String::as_str), Some("/srv/out"));
        assert_eq!(p.exec.last().map(String::as_str), Some("mytool"));
        assert_eq!(p.env_set.get("GREETING").map(String::as_str), Some("a=b"));
        assert_eq!(p.env_set.get("EMPTY").map(String::as_str), Some(""));
        assert_eq!(
            p.sources.last().map(String::as_str),
            Some("command line (--ro /opt/data --rw /srv/out --exec mytool --env GREETING --env EMPTY)")
        );
        assert!(p.flags.is_some());
    }

    #[test]
    fn an_env_flag_overrides_the_profiles_value_and_a_bad_name_is_refused_naming_the_flag() {
        let p = default()
            .with_flags(&Flags {
                env: vec!["PATH=/opt/bin:/usr/bin".into()],
                ..Flags::default()
            })
            .unwrap();
        assert_eq!(p.env_set["PATH"], "/opt/bin:/usr/bin");
        for bad in ["1X=y", "A B=c", "=v", "NOEQUALS"] {
            let r = default()
                .with_flags(&Flags {
                    env: vec![bad.into()],
                    ..Flags::default()
                })
                .unwrap_err();
            assert!(r.reason.starts_with("--env"), "{bad}: {r}");
        }
    }

    #[test]
    fn net_takes_the_modes_profiles_have_and_replaces_the_network_table() {
        assert_eq!(net(&["none"]).unwrap().network.mode, NetMode::None);
        assert_eq!(net(&["host"]).unwrap().network.mode, NetMode::Host);
        let p = net(&["ports:8443,443", "ports:443"]).unwrap();
        assert_eq!(
            (p.network.mode, p.network.connect),
            (NetMode::Ports, vec![443, 8443])
        );
        let p = net(&["proxy:api.example.com", "allow:*.example.org:8443"]).unwrap();
        assert_eq!(p.network.mode, NetMode::Proxy);
        let shown: Vec<String> = p
            .network
            .egress
            .allow
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(shown, ["api.example.com", "*.example.org:8443"]);
        let claude = Search::shipped_only().load("claude").unwrap();
        let p = claude
            .clone()
            .with_flags(&Flags {
                net: vec!["proxy:api.example.com".into()],
                ..Flags::default()
            })
            .unwrap();
        assert!(
            p.network.egress.sets().is_empty(),
            "a mode replaces the profile's hosts, as a child's [network] does"
        );
    }

    #[test]
    fn allow_adds_to_a_proxy_profiles_hosts_and_is_refused_elsewhere() {
        let claude = Search::shipped_only().load("claude").unwrap();
        let before = claude.network.egress.allow.len();
        let p = claude
            .with_flags(&Flags {
                net: vec!["allow:example.com,example.com".into()],
                ..Flags::default()
            })
            .unwrap();
        assert_eq!(p.network.egress.allow.len(), before + 1);
        assert!(!p.network.egress.sets().is_empty(), "its sets are kept");
        let r = net(&["allow:example.com"]).unwrap_err();
        assert!(r.reason.contains("mode proxy"), "{r}");
        assert!(r.hint.unwrap().contains("--net proxy:"));
    }

    #[test]
    fn a_bad_net_form_is_refused_naming_the_flag_and_the_forms() {
        for (forms, says) in [
            (&["nope"][..], "not a network form"),
            (&["ports:"][..], "at least one TCP port"),
            (&["ports:x"][..], "\"x\" is not a port"),
            (&["ports:70000"][..], "not a port"),
            (&["ports:0"][..], "port 0"),
            (&["none", "host"][..], "two network modes"),
            (&["proxy:bücher.de"][..], "xn--"),
            (&["none:x"][..], "not a network form"),
        ] {
            let r = net(forms).unwrap_err();
            assert!(r.reason.contains("--net"), "{forms:?}: {r}");
            assert!(r.reason.contains(says), "{forms:?}: {r}");
        }
    }

    #[test]
    fn an_env_flag_cannot_move_the_proxies_of_a_proxy_session() {
        let claude = Search::shipped_only().load("claude").unwrap();
        let r = claude
            .with_flags(&Flags {
                env: vec!["https_proxy=http://evil.test:8080".into()],
                ..Flags::default()
            })
            .unwrap_err();
        assert!(r.reason.contains("--env https_proxy"), "{r}");
    }

    #[test]
    fn a_flag_path_that_a_profile_would_expand_is_refused() {
        let r = default()
            .with_flags(&Flags {
                write: vec!["/tmp/{home}/x".into()],
                ..Flags::default()
            })
            .unwrap_err();
        assert!(r.reason.starts_with("--rw /tmp/{home}/x"), "{r}");
    }
}
