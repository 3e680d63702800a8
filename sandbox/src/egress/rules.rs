//! The profile's `[network] allow` and `deny` rules and the verdict they give one
//! destination: pure, no I/O, no name resolution.
//!
//! A rule is `HOST` or `HOST:PORT`. HOST is a name (`api.anthropic.com`), a wildcard
//! (`*.example.org`: any name beneath, not `example.org` itself) or an IP literal
//! (`10.0.0.5`, `[::1]`). PORT is a number or `*` (any port).
//!
//! - An allow rule without a port allows 443 only: the name was most likely written for
//!   HTTPS, and "any port" would open SSH, SMTP or a database on the same host without the
//!   profile saying so. Write `:80` or `:*` to say more.
//! - A deny rule without a port denies every port: a deny should never be narrower than
//!   its reader expects.
//! - Deny wins over allow, whatever the order.
//! - An IP literal destination is refused unless a rule names that very literal: no name
//!   pattern covers an address, so a client cannot bypass the names by dialling the IP.
//! - Names are lowercased and lose one trailing dot; non-ASCII names are refused (write
//!   the `xn--` form), as are names over 253 bytes or with a label over 63.
//! - An allow rule may come from a named domain set (`[network] include`, [`super::sets`])
//!   rather than the profile's own list: it matches the same way, and remembers the set so
//!   that every word about it (`profile check`, a verdict, the audit) can name it.

use super::sets::DomainSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Most rules a list may hold: every attempt is checked against all of them.
pub const MAX_RULES: usize = 1024;
/// Longest DNS name (RFC 1035), without the trailing dot.
pub const MAX_NAME: usize = 253;
/// Longest DNS label.
pub const MAX_LABEL: usize = 63;

/// Why a rule or a destination's host was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// Nothing was given.
    Empty,
    /// More than [`MAX_NAME`] bytes, or a label over [`MAX_LABEL`].
    TooLong,
    /// A character that no DNS name holds (non-ASCII included: write the `xn--` form).
    BadCharacter(char),
    /// An empty label (`a..b`, a leading dot).
    EmptyLabel,
    /// A `*` anywhere but as the whole first label.
    BadWildcard,
    /// The port is not a number from 1 to 65535, nor `*`.
    BadPort(String),
    /// A list longer than [`MAX_RULES`].
    TooMany,
    /// A wildcard over a top-level domain (`*.com`).
    TooBroad,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Empty => write!(f, "is empty"),
            RuleError::TooLong => write!(
                f,
                "is too long (a name holds at most {MAX_NAME} bytes, a label {MAX_LABEL})"
            ),
            RuleError::BadCharacter(c) if !c.is_ascii() => write!(
                f,
                "contains '{c}': write an internationalized name in its ASCII (xn--) form"
            ),
            RuleError::BadCharacter(c) => write!(f, "contains '{c}', which no host name holds"),
            RuleError::EmptyLabel => write!(f, "has an empty label (two dots, or a leading dot)"),
            RuleError::BadWildcard => write!(
                f,
                "has a '*' that is not the whole first label (write \"*.example.org\")"
            ),
            RuleError::BadPort(p) => write!(f, "has port \"{p}\": use 1 to 65535, or *"),
            RuleError::TooMany => write!(f, "holds more than {MAX_RULES} rules"),
            RuleError::TooBroad => write!(
                f,
                "covers a whole top-level domain; name the domain (\"*.example.org\")"
            ),
        }
    }
}

impl std::error::Error for RuleError {}

/// A destination's host: a name, normalized, or an address the client gave literally.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lowercased, without a trailing dot.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl Host {
    /// Parses what a client asked for (a CONNECT authority's host, a SOCKS5 domain name):
    /// an IP literal (IPv6 with or without brackets) or a name, normalized.
    pub fn parse(s: &str) -> Result<Host, RuleError> {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        normalize_name(s).map(Host::Name)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Ip(a) => write!(f, "{a}"),
        }
    }
}

/// Where a client asks to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The host, as the client named it.
    pub host: Host,
    /// The TCP port.
    pub port: u16,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What a rule's host part matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// This name only.
    Exact(String),
    /// Any name that ends in `.suffix` (the suffix itself not).
    Beneath(String),
    /// This literal address only.
    Ip(IpAddr),
}

/// Which list a rule is on: it decides what a rule without a port covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// `[network] allow` (and the sets `include` brings): no port means 443.
    Allow,
    /// `[network] deny`: no port means every port.
    Deny,
}

/// One allow or deny rule, normalized. Written and printed as `HOST[:PORT]`; serialized
/// the same way, without its set (a list of [`Rules`] keeps the sets beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Rule {
    pattern: Pattern,
    /// `None`: the default for the rule's list (443 for allow, any for deny); `Some(None)`:
    /// any port (`:*`); `Some(Some(p))`: port p.
    port: Option<Option<u16>>,
    /// The domain set it came from (`[network] include`); `None` when the profile wrote it.
    set: Option<&'static str>,
}

impl Rule {
    /// Parses `HOST`, `HOST:PORT`, `HOST:*`, `*.SUFFIX[:PORT]`, `IP[:PORT]`, `[IPv6][:PORT]`.
    pub fn parse(s: &str) -> Result<Rule, RuleError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(RuleError::Empty);
        }
        let (host, port) = split_port(s)?;
        let pattern = if let Some(ip) = parse_ip(host) {
            Pattern::Ip(ip)
        } else if let Some(rest) = host.strip_prefix("*.") {
            let suffix = normalize_name(rest)?;
            if !suffix.contains('.') {
                return Err(RuleError::TooBroad);
            }
            Pattern::Beneath(suffix)
        } else {
            Pattern::Exact(normalize_name(host)?)
        };
        Ok(Rule {
            pattern,
            port,
            set: None,
        })
    }

    /// The same rule, brought by the domain set `name`.
    pub(super) fn in_set(self, name: &'static str) -> Rule {
        Rule {
            set: Some(name),
            ..self
        }
    }

    /// The domain set this rule came from, if a profile included it rather than wrote it.
    pub fn set(&self) -> Option<&'static str> {
        self.set
    }

    /// The ports the rule covers on `list`, in words: "port 443", "port 8080", "every port".
    pub fn ports(&self, list: List) -> String {
        match (self.port, list) {
            (None, List::Allow) => "port 443".into(),
            (None, List::Deny) | (Some(None), _) => "every port".into(),
            (Some(Some(p)), _) => format!("port {p}"),
        }
    }

    fn matches_host(&self, host: &Host) -> bool {
        match (&self.pattern, host) {
            (Pattern::Exact(n), Host::Name(h)) => n == h,
            (Pattern::Beneath(suffix), Host::Name(h)) => h
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (Pattern::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        }
    }

    fn matches_port(&self, port: u16, default_any: bool) -> bool {
        match self.port {
            None => default_any || port == 443,
            Some(None) => true,
            Some(Some(p)) => p == port,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            Pattern::Exact(n) => f.write_str(n)?,
            Pattern::Beneath(n) => write!(f, "*.{n}")?,
            Pattern::Ip(IpAddr::V6(a)) => write!(f, "[{a}]")?,
            Pattern::Ip(a) => write!(f, "{a}")?,
        }
        match self.port {
            None => Ok(()),
            Some(None) => f.write_str(":*"),
            Some(Some(p)) => write!(f, ":{p}"),
        }
    }
}

// By hand rather than `try_from`: the derive would ask the input to outlive the set's
// `&'static str`.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let s = String::deserialize(d)?;
        Rule::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl From<Rule> for String {
    fn from(r: Rule) -> String {
        r.to_string()
    }
}

/// A profile's egress rules, both lists.
///
/// Serialized as `{"allow": [...], "deny": [...], "from_set": {"registry.npmjs.org": "npm"}}`:
/// `allow` is every allowed rule as a string, whatever its origin, so that a reader of the
/// JSON sees the whole list in one place; `from_set` (left out when empty) says which of
/// them a set brought.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RulesJson", into = "RulesJson")]
pub struct Rules {
    /// Destinations allowed (unless denied): the profile's own rules, then those of the
    /// sets it includes.
    pub allow: Vec<Rule>,
    /// Destinations denied, whatever allows them.
    pub deny: Vec<Rule>,
}

/// [`Rules`] as JSON.
#[derive(Clone, Serialize, Deserialize)]
struct RulesJson {
    #[serde(default)]
    allow: Vec<Rule>,
    #[serde(default)]
    deny: Vec<Rule>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    from_set: BTreeMap<String, String>,
}

impl From<Rules> for RulesJson {
    fn from(r: Rules) -> RulesJson {
        let from_set = r
            .allow
            .iter()
            .filter_map(|a| Some((a.to_string(), a.set?.to_string())))
            .collect();
        RulesJson {
            allow: r.allow,
            deny: r.deny,
            from_set,
        }
    }
}

impl From<RulesJson> for Rules {
    fn from(j: RulesJson) -> Rules {
        let mut allow = j.allow;
        for a in &mut allow {
            // Only a set cordon knows: the name is kept as the static one.
            a.set = j
                .from_set
                .get(&a.to_string())
                .and_then(|name| super::sets::find(name))
                .map(|s| s.name);
        }
        Rules {
            allow,
            deny: j.deny,
        }
    }
}

/// The decision on one destination, and what made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This allow rule matched, and no deny rule did.
    Allowed(Rule),
    /// This deny rule matched.
    Denied(Rule),
    /// The destination is an IP literal that no rule names.
    IpLiteral,
    /// No rule names the destination.
    NoRule,
    /// No rule names it, and the session's owner was asked (`[network] unknown = "ask"`).
    Answered(Answer),
    /// No rule names it, and no answer came: the reason (the wait ran out, no one to ask).
    Unanswered(String),
}

/// What the session's owner answered about a destination no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// This connection (and those waiting on the same question) may be made.
    Once,
    /// Connections to this host and port may be made for the rest of the session.
    Session,
    /// Refused, and not asked again in this session: a program that retries in a loop
    /// must not turn into a stream of questions.
    Deny,
}

impl Answer {
    /// The answer's name on the wire and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Answer::Once => "once",
            Answer::Session => "session",
            Answer::Deny => "deny",
        }
    }

    /// Parses `once`, `session` or `deny`.
    pub fn parse(s: &str) -> Option<Answer> {
        [Answer::Once, Answer::Session, Answer::Deny]
            .into_iter()
            .find(|a| a.name() == s)
    }
}

impl Verdict {
    /// Whether the connection may be made.
    pub fn allowed(&self) -> bool {
        matches!(
            self,
            Verdict::Allowed(_) | Verdict::Answered(Answer::Once | Answer::Session)
        )
    }

    /// The rule that decided, as written in the profile (none for a default refusal).
    pub fn rule(&self) -> Option<&Rule> {
        match self {
            Verdict::Allowed(r) | Verdict::Denied(r) => Some(r),
            Verdict::IpLiteral
            | Verdict::NoRule
            | Verdict::Answered(_)
            | Verdict::Unanswered(_) => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allowed(r) => match r.set {
                Some(set) => write!(f, "allow {r} from set {set}"),
                None => write!(f, "allow {r}"),
            },
            Verdict::Denied(r) => write!(f, "deny {r}"),
            Verdict::IpLiteral => write!(f, "an IP address that no rule names"),
            Verdict::NoRule => write!(f, "no rule names it"),
            Verdict::Answered(Answer::Once) => write!(f, "allowed once by the session's owner"),
            Verdict::Answered(Answer::Session) => {
                write!(f, "allowed for this session by the session's owner")
            }
            Verdict::Answered(Answer::Deny) => write!(f, "refused by the session's owner"),
            Verdict::Unanswered(why) => write!(f, "no rule names it, and {why}"),
        }
    }
}

impl Rules {
    /// Parses both lists; an error says which list and which entry.
    pub fn parse(
        allow: &[String],
        deny: &[String],
    ) -> Result<Rules, (&'static str, String, RuleError)> {
        let list = |key: &'static str, items: &[String]| {
            if items.len() > MAX_RULES {
                return Err((key, String::new(), RuleError::TooMany));
            }
            items
                .iter()
                .map(|s| Rule::parse(s).map_err(|e| (key, s.clone(), e)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Rules {
            allow: list("allow", allow)?,
            deny: list("deny", deny)?,
        })
    }

    /// Adds the hosts of `set` as allow rules after those already here, each remembering
    /// the set. A host already allowed by the very same rule is not repeated: the profile's
    /// own rule is the one that decides, and words name it.
    pub fn include(&mut self, set: &'static DomainSet) {
        for rule in set.rules() {
            if !self
                .allow
                .iter()
                .any(|a| a.pattern == rule.pattern && a.port == rule.port)
            {
                self.allow.push(rule);
            }
        }
    }

    /// The sets whose hosts are among the allow rules, in the order they were included.
    pub fn sets(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for set in self.allow.iter().filter_map(|a| a.set) {
            if !out.contains(&set) {
                out.push(set);
            }
        }
        out
    }

    /// The verdict on `dest`: a matching deny rule, else a matching allow rule, else a
    /// refusal that says why.
    pub fn decide(&self, dest: &Destination) -> Verdict {
        let matching = |rules: &[Rule], default_any: bool| {
            rules
                .iter()
                .find(|r| r.matches_host(&dest.host) && r.matches_port(dest.port, default_any))
                .cloned()
        };
        if let Some(r) = matching(&self.deny, true) {
            return Verdict::Denied(r);
        }
        if let Some(r) = matching(&self.allow, false) {
            return Verdict::Allowed(r);
        }
        match dest.host {
            Host::Ip(_) => Verdict::IpLiteral,
            Host::Name(_) => Verdict::NoRule,
        }
    }
}

/// `host` and its port part (`None` when absent, `Some(None)` for `*`).
fn split_port(s: &str) -> Result<(&str, Option<Option<u16>>), RuleError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        // [IPv6] or [IPv6]:PORT
        match rest.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, tail)) => match tail.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return Err(RuleError::BadCharacter(']')),
            },
            None => return Err(RuleError::BadCharacter('[')),
        }
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address: no port can follow without brackets.
        (s, None)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some("*") => Some(None),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(Some(n)),
            _ => return Err(RuleError::BadPort(p.to_string())),
        },
    };
    Ok((host, port))
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// A DNS name lowercased, one trailing dot removed, checked for length and characters.
/// `_` is accepted (service names such as `_dmarc` hold it).
fn normalize_name(s: &str) -> Result<String, RuleError> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(RuleError::Empty);
    }
    if s.len() > MAX_NAME {
        return Err(RuleError::TooLong);
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*')))
    {
        return Err(RuleError::BadCharacter(c));
    }
    if s.contains('*') {
        return Err(RuleError::BadWildcard);
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(RuleError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(RuleError::TooLong);
        }
    }
    Ok(s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> Rules {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Rules::parse(&v(allow), &v(deny)).unwrap()
    }

    fn dest(host: &str, port: u16) -> Destination {
        Destination {
            host: Host::parse(host).unwrap(),
            port,
        }
    }

    fn verdict(r: &Rules, host: &str, port: u16) -> String {
        r.decide(&dest(host, port)).to_string()
    }

    #[test]
    fn an_allow_rule_without_a_port_allows_443_and_no_other_port() {
        let r = rules(&["api.anthropic.com"], &[]);
        assert_eq!(
            verdict(&r, "api.anthropic.com", 443),
            "allow api.anthropic.com"
        );
        assert_eq!(verdict(&r, "api.anthropic.com", 80), "no rule names it");
        assert_eq!(verdict(&r, "api.anthropic.com", 22), "no rule names it");
    }

    #[test]
    fn a_port_or_a_star_after_the_host_says_which_ports() {
        let r = rules(&["a.test:8080", "b.test:*"], &[]);
        assert!(r.decide(&dest("a.test", 8080)).allowed());
        assert!(!r.decide(&dest("a.test", 443)).allowed());
        assert!(r.decide(&dest("b.test", 22)).allowed());
        assert!(r.decide(&dest("b.test", 443)).allowed());
    }

    #[test]
    fn a_wildcard_covers_every_name_beneath_but_not_the_domain_itself() {
        let r = rules(&["*.example.org:443"], &[]);
        assert_eq!(
            verdict(&r, "www.example.org", 443),
            "allow *.example.org:443"
        );
        assert!(r.decide(&dest("a.b.example.org", 443)).allowed());
        assert!(!r.decide(&dest("example.org", 443)).allowed());
        assert!(!r.decide(&dest("badexample.org", 443)).allowed());
        assert!(!r.decide(&dest("example.org.evil.com", 443)).allowed());
    }

    #[test]
    fn deny_wins_over_allow_whatever_the_order_and_on_every_port_by_default() {
        let r = rules(
            &["*.evil.com:*", "good.test"],
            &["*.evil.com", "good.test:8443"],
        );
        assert_eq!(verdict(&r, "x.evil.com", 443), "deny *.evil.com");
        assert_eq!(verdict(&r, "x.evil.com", 22), "deny *.evil.com");
        assert_eq!(verdict(&r, "good.test", 443), "allow good.test");
        assert_eq!(verdict(&r, "good.test", 8443), "deny good.test:8443");
    }

    #[test]
    fn an_ip_literal_is_refused_unless_a_rule_names_that_literal() {
        let r = rules(&["10.0.0.5:8080", "[::1]:443", "*.example.org:*"], &[]);
        assert_eq!(verdict(&r, "10.0.0.5", 8080), "allow 10.0.0.5:8080");
        assert_eq!(
            verdict(&r, "10.0.0.5", 443),
            "an IP address that no rule names"
        );
        assert_eq!(
            verdict(&r, "10.0.0.6", 8080),
            "an IP address that no rule names"
        );
        assert!(r.decide(&dest("[::1]", 443)).allowed());
        assert!(r.decide(&dest("::1", 443)).allowed());
        // A name rule never covers an address, even one the name resolves to.
        assert!(!r.decide(&dest("93.184.216.34", 443)).allowed());
    }

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        let r = rules(&["API.Anthropic.COM."], &[]);
        assert_eq!(r.allow[0].to_string(), "api.anthropic.com");
        assert!(r.decide(&dest("Api.Anthropic.Com.", 443)).allowed());
        assert_eq!(
            Host::parse("WWW.Example.ORG.").unwrap(),
            Host::Name("www.example.org".into())
        );
    }

    #[test]
    fn non_ascii_odd_characters_bad_wildcards_and_bad_ports_are_refused() {
        let bad = |s: &str| Rule::parse(s).unwrap_err();
        assert!(matches!(bad("bücher.de"), RuleError::BadCharacter('ü')));
        assert!(bad("bücher.de").to_string().contains("xn--"));
        assert!(matches!(bad("a b.test"), RuleError::BadCharacter(' ')));
        assert!(matches!(bad("a/b"), RuleError::BadCharacter('/')));
        assert_eq!(bad("a..b"), RuleError::EmptyLabel);
        assert_eq!(bad(".a"), RuleError::EmptyLabel);
        assert_eq!(bad("*"), RuleError::BadWildcard);
        assert_eq!(bad("a.*.test"), RuleError::BadWildcard);
        assert_eq!(bad("*.com"), RuleError::TooBroad);
        assert_eq!(bad("a.test:0"), RuleError::BadPort("0".into()));
        assert_eq!(bad("a.test:70000"), RuleError::BadPort("70000".into()));
        assert_eq!(bad("a.test:+1"), RuleError::BadPort("+1".into()));
        assert_eq!(bad("a.test:"), RuleError::BadPort("".into()));
        assert_eq!(bad(""), RuleError::Empty);
        assert!(Host::parse("evil.com/x").is_err());
    }

    #[test]
    fn lengths_are_bounded_by_dns_limits_and_lists_by_max_rules() {
        let label = "a".repeat(64);
        assert_eq!(
            Rule::parse(&format!("{label}.test")).unwrap_err(),
            RuleError::TooLong
        );
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(long.len() > MAX_NAME);
        assert_eq!(Rule::parse(&long).unwrap_err(), RuleError::TooLong);
        let ok = vec!["abcdefghi"; 25].join(".");
        assert!(Rule::parse(&ok).is_ok());
        let many = vec!["a.test".to_string(); MAX_RULES + 1];
        assert_eq!(Rules::parse(&many, &[]).unwrap_err().2, RuleError::TooMany);
        let (key, entry, _) = Rules::parse(&[], &["ok.test".into(), "b@d".into()]).unwrap_err();
        assert_eq!((key, entry.as_str()), ("deny", "b@d"));
    }

    #[test]
    fn rules_print_as_written_and_survive_a_round_trip_through_json() {
        let r = rules(
            &["a.test", "*.b.test:80", "10.0.0.5:8080", "[::1]:*"],
            &["c.test"],
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"allow":["a.test","*.b.test:80","10.0.0.5:8080","[::1]:*"],"deny":["c.test"]}"#
        );
        assert_eq!(serde_json::from_str::<Rules>(&json).unwrap(), r);
    }

    fn npm() -> &'static DomainSet {
        crate::egress::sets::find("npm").unwrap()
    }

    #[test]
    fn an_included_set_allows_its_hosts_on_443_and_the_verdict_names_the_set() {
        let mut r = rules(&["api.anthropic.com"], &[]);
        r.include(npm());
        assert_eq!(
            verdict(&r, "registry.npmjs.org", 443),
            "allow registry.npmjs.org from set npm"
        );
        assert_eq!(verdict(&r, "registry.npmjs.org", 80), "no rule names it");
        assert_eq!(
            verdict(&r, "api.anthropic.com", 443),
            "allow api.anthropic.com"
        );
        let allowed = r.decide(&dest("registry.yarnpkg.com", 443));
        assert_eq!(allowed.rule().and_then(Rule::set), Some("npm"));
        assert_eq!(
            allowed.rule().map(|x| x.to_string()),
            Some("registry.yarnpkg.com".into()),
            "the rule itself is written as the host"
        );
        assert_eq!(r.sets(), ["npm"]);
    }

    #[test]
    fn a_deny_rule_wins_over_a_host_an_included_set_allows() {
        let mut r = rules(&[], &["registry.yarnpkg.com"]);
        r.include(npm());
        assert_eq!(
            verdict(&r, "registry.yarnpkg.com", 443),
            "deny registry.yarnpkg.com"
        );
        assert!(r.decide(&dest("registry.npmjs.org", 443)).allowed());
    }

    #[test]
    fn a_host_the_profile_already_allows_the_same_way_is_not_repeated_by_a_set() {
        let mut r = rules(&["registry.npmjs.org", "registry.yarnpkg.com:*"], &[]);
        r.include(npm());
        r.include(npm());
        let shown: Vec<(String, Option<&str>)> =
            r.allow.iter().map(|a| (a.to_string(), a.set())).collect();
        assert_eq!(
            shown,
            [
                ("registry.npmjs.org".to_string(), None),
                ("registry.yarnpkg.com:*".to_string(), None),
                ("registry.yarnpkg.com".to_string(), Some("npm")),
            ]
        );
        assert_eq!(
            verdict(&r, "registry.npmjs.org", 443),
            "allow registry.npmjs.org",
            "the profile's own rule decides"
        );
    }

    #[test]
    fn the_ports_a_rule_covers_depend_on_its_list_when_it_names_none() {
        let port = |s: &str, list| Rule::parse(s).unwrap().ports(list);
        assert_eq!(port("a.test", List::Allow), "port 443");
        assert_eq!(port("a.test", List::Deny), "every port");
        assert_eq!(port("a.test:*", List::Allow), "every port");
        assert_eq!(port("a.test:8080", List::Deny), "port 8080");
    }

    #[test]
    fn the_json_lists_every_allowed_rule_as_a_string_and_says_which_a_set_brought() {
        let mut r = rules(&["a.test"], &["c.test"]);
        r.include(npm());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"allow":["a.test","registry.npmjs.org","registry.yarnpkg.com"],"deny":["c.test"],"from_set":{"registry.npmjs.org":"npm","registry.yarnpkg.com":"npm"}}"#
        );
        assert_eq!(serde_json::from_str::<Rules>(&json).unwrap(), r);
        let unknown = r#"{"allow":["a.test"],"from_set":{"a.test":"maven"}}"#;
        let back = serde_json::from_str::<Rules>(unknown).unwrap();
        assert_eq!(back.allow[0].set(), None, "only a set cordon knows");
    }

    #[test]
    fn a_refusal_names_no_rule_and_an_allowance_names_its_rule() {
        let r = rules(&["a.test"], &["b.test"]);
        assert_eq!(
            r.decide(&dest("a.test", 443)).rule().map(|x| x.to_string()),
            Some("a.test".into())
        );
        assert_eq!(
            r.decide(&dest("b.test", 443)).rule().map(|x| x.to_string()),
            Some("b.test".into())
        );
        assert_eq!(r.decide(&dest("c.test", 443)), Verdict::NoRule);
    }
}
