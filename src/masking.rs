//! The one masker for secrets in command lines: what a user typed after `--password`, in
//! `--token=...`, in `API_TOKEN=...`, in `https://user:pass@host`, after `Authorization:
//! Bearer`, or glued to mysql's `-p`. It is applied wherever a command is stored or shown
//! (the recording catalog and header, listings, the API, the TUI, the audit log); only the
//! command that runs gets the real arguments.
//!
//! It works on words: an argument holding spaces (`sh -c '...'`, a header) is masked word
//! by word too, so a secret inside a script is caught the same way. A masked value becomes
//! `***`; what surrounds it (the flag, the name, the URL) stays, so an auditor still reads
//! what was done.

/// Parts of a flag or variable name (split at `-` and `_`) that make its value a secret:
/// `--password`, `--api-token`, `GITHUB_TOKEN`, `--auth` (but not `--author`).
const SECRET_PARTS: [&str; 12] = [
    "password",
    "passwd",
    "passphrase",
    "pass",
    "secret",
    "token",
    "apikey",
    "auth",
    "credential",
    "credentials",
    "pat",
    "pwd",
];
/// Two-part names that are secrets together: `--api-key`, `PRIVATE_KEY`.
const SECRET_PAIRS: [(&str, &str); 4] = [
    ("api", "key"),
    ("access", "key"),
    ("private", "key"),
    ("secret", "key"),
];

/// Tools whose `-pSECRET` (glued) or `-p SECRET` is a password.
const DASH_P_TOOLS: [&str; 6] = [
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mariadb",
    "mariadb-dump",
    "sshpass",
];

const MASK: &str = "***";

/// Whether a flag's or a variable's name says its value is a secret.
fn looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(['-', '_']).filter(|p| !p.is_empty()).collect();
    parts.iter().any(|p| {
        SECRET_PARTS.contains(p)
            || p.ends_with("password")
            || p.ends_with("token")
            || p.ends_with("secret")
    }) || parts
        .windows(2)
        .any(|w| SECRET_PAIRS.contains(&(w[0], w[1])))
}

/// `NAME=VALUE` where NAME is a variable name that looks secret: `*_KEY`, `*_TOKEN`,
/// `*SECRET*`, `*PASSWORD*`, `*_PAT`, ...
fn secret_variable(name: &str) -> bool {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid && (name.to_ascii_uppercase().ends_with("_KEY") || looks_secret(name))
}

/// `scheme://user:password@host...` with the password masked, anywhere in `word`.
fn mask_url_credentials(word: &str) -> Option<String> {
    let start = word.find("://")? + 3;
    let rest = &word[start..];
    let at = rest.find('@')?;
    let userinfo = &rest[..at];
    if userinfo.contains('/') {
        return None;
    }
    let colon = userinfo.find(':')?;
    Some(format!(
        "{}{}:{MASK}{}",
        &word[..start],
        &userinfo[..colon],
        &rest[at..]
    ))
}

/// What the next word is, given the words before it.
#[derive(Default, PartialEq, Eq)]
enum Next {
    #[default]
    Plain,
    /// A secret (after `--password`, `Bearer`, `-p` of a known tool).
    Secret,
    /// After `Authorization:`: a scheme (`Bearer`, `Basic`) and then a secret, or the
    /// secret itself.
    Credentials,
    /// After curl's `-u`/`--user`: `user:password`.
    UserPassword,
}

/// The state carried from word to word: what the next word is, and which tool the command
/// line started with.
#[derive(Default)]
struct Masker {
    next: Next,
    /// A tool whose `-p` takes a password was named, and its options follow.
    tool: Option<String>,
    /// A word was seen (the first is the program, never an option).
    started: bool,
}

impl Masker {
    fn word(&mut self, w: &str) -> String {
        match std::mem::take(&mut self.next) {
            Next::Secret if !w.is_empty() => return MASK.into(),
            Next::Credentials
                if ["bearer", "basic", "token", "digest"]
                    .contains(&w.to_ascii_lowercase().as_str()) =>
            {
                self.next = Next::Secret;
                return w.into();
            }
            Next::Credentials => return MASK.into(),
            Next::UserPassword => {
                if let Some((user, _)) = w.split_once(':') {
                    return format!("{user}:{MASK}");
                }
            }
            _ => {}
        }
        let first = !self.started;
        self.started = true;
        // The tool whose options these are: the last known one named, until the next
        // command of a script (`;`, `&&`, `||`, `|`).
        let base = w.rsplit('/').next().unwrap_or(w);
        if DASH_P_TOOLS.contains(&base) {
            self.tool = Some(base.to_string());
            return w.into();
        }
        if [";", "&&", "||", "|"].contains(&w) || w.ends_with(';') {
            self.tool = None;
        }
        let tool_takes_p = self.tool.is_some();
        if let Some(masked) = mask_url_credentials(w) {
            return masked;
        }
        let lower = w.to_ascii_lowercase();
        // `Authorization: Bearer X`, `Bearer X`.
        if lower
            .trim_start_matches(['\'', '"'])
            .ends_with("authorization:")
        {
            self.next = Next::Credentials;
            return w.into();
        }
        if lower == "bearer" {
            self.next = Next::Secret;
            return w.into();
        }
        if !first && (w == "-u" || w == "--user") {
            self.next = Next::UserPassword;
            return w.into();
        }
        if let Some(flag) = w
            .strip_prefix("--")
            .or_else(|| w.strip_prefix('-').filter(|f| f.len() > 1 && !tool_takes_p))
        {
            if let Some((name, _)) = flag.split_once('=') {
                if looks_secret(name) {
                    return format!("{}={MASK}", &w[..w.len() - flag.len() + name.len()]);
                }
                return w.into();
            }
            if looks_secret(flag) {
                self.next = Next::Secret;
            }
            return w.into();
        }
        if tool_takes_p {
            if w == "-p" {
                self.next = Next::Secret;
                return w.into();
            }
            if w.len() > 2 && w.starts_with("-p") {
                return format!("-p{MASK}");
            }
        }
        if let Some((name, value)) = w.split_once('=') {
            if secret_variable(name) && !value.is_empty() {
                return format!("{name}={MASK}");
            }
        }
        w.into()
    }

    /// A text of several words, its separators kept.
    fn text(&mut self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut word = String::new();
        for c in s.chars() {
            if c.is_whitespace() {
                if !word.is_empty() {
                    out.push_str(&self.word(&word));
                    word.clear();
                }
                out.push(c);
            } else {
                word.push(c);
            }
        }
        if !word.is_empty() {
            out.push_str(&self.word(&word));
        }
        out
    }
}

/// A command line (words separated by spaces) with its secrets masked.
pub fn mask_text(s: &str) -> String {
    Masker::default().text(s)
}

/// An argument vector with its secrets masked, argument by argument (an argument holding
/// spaces is masked word by word).
pub fn mask_argv(argv: &[String]) -> Vec<String> {
    let mut m = Masker::default();
    argv.iter()
        .map(|a| {
            if a.chars().any(char::is_whitespace) {
                m.text(a)
            } else {
                m.word(a)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        mask_argv(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_that_carry_secrets_are_masked_in_both_forms() {
        assert_eq!(
            mask_text("deploy --password hunter2 --verbose"),
            "deploy --password *** --verbose"
        );
        assert_eq!(
            mask_text("gh auth --token=ghp_abc123 x"),
            "gh auth --token=*** x"
        );
        assert_eq!(
            mask_text("tool --api-key sk-live-1 --client-secret=s3"),
            "tool --api-key *** --client-secret=***"
        );
        assert_eq!(mask_text("tool -password hunter2"), "tool -password ***");
    }

    #[test]
    fn variables_that_look_secret_are_masked() {
        assert_eq!(
            mask_text("API_TOKEN=sk-live-123 make deploy"),
            "API_TOKEN=*** make deploy"
        );
        assert_eq!(
            mask_text("env AWS_SECRET_ACCESS_KEY=abc OPENAI_API_KEY=sk DB_PASSWORD=x GH_PAT=y PATH=/bin ls"),
            "env AWS_SECRET_ACCESS_KEY=*** OPENAI_API_KEY=*** DB_PASSWORD=*** GH_PAT=*** PATH=/bin ls"
        );
    }

    #[test]
    fn urls_keep_their_user_and_host_but_not_the_password() {
        assert_eq!(
            mask_text("git clone https://bob:s3cret@github.com/x/y.git"),
            "git clone https://bob:***@github.com/x/y.git"
        );
        assert_eq!(
            mask_text("psql postgres://app:pw@db:5432/app"),
            "psql postgres://app:***@db:5432/app"
        );
        assert_eq!(
            mask_text("curl https://example.com/a@b"),
            "curl https://example.com/a@b",
            "an @ in the path is not a password"
        );
    }

    #[test]
    fn authorization_headers_are_masked() {
        assert_eq!(
            argv(&[
                "curl",
                "-H",
                "Authorization: Bearer eyJhbGc.x.y",
                "https://api"
            ]),
            ["curl", "-H", "Authorization: Bearer ***", "https://api"]
        );
        assert_eq!(
            mask_text("curl -H 'Authorization: Basic dXNlcjpwYXNz'"),
            "curl -H 'Authorization: Basic ***"
        );
    }

    #[test]
    fn user_and_password_pairs_keep_the_user() {
        assert_eq!(
            mask_text("curl -u alice:hunter2 https://x"),
            "curl -u alice:*** https://x"
        );
        assert_eq!(
            mask_text("curl --user alice:hunter2 https://x"),
            "curl --user alice:*** https://x"
        );
    }

    #[test]
    fn names_that_only_contain_a_secret_word_are_not_secrets() {
        assert_eq!(
            mask_text("git commit --author Alice -m x"),
            "git commit --author Alice -m x"
        );
        assert_eq!(mask_text("AUTHOR=alice make"), "AUTHOR=alice make");
    }

    #[test]
    fn known_tools_dash_p_is_a_password() {
        assert_eq!(
            mask_text("mysql -u root -phunter2 db"),
            "mysql -u root -p*** db"
        );
        assert_eq!(
            mask_text("sshpass -p hunter2 ssh host"),
            "sshpass -p *** ssh host"
        );
        assert_eq!(
            mask_text("/usr/bin/mysqldump -pX db"),
            "/usr/bin/mysqldump -p*** db"
        );
        assert_eq!(
            mask_text("ls -p dir"),
            "ls -p dir",
            "other tools' -p is not a password"
        );
        assert_eq!(
            mask_text("sh -c true && mysql -phunter2 && ls -p x"),
            "sh -c true && mysql -p*** && ls -p x"
        );
    }

    #[test]
    fn a_secret_inside_a_script_argument_is_masked_too() {
        assert_eq!(
            argv(&["sh", "-c", "deploy --password hunter2 && echo done"]),
            ["sh", "-c", "deploy --password *** && echo done"]
        );
    }

    #[test]
    fn ordinary_commands_are_left_alone() {
        for c in [
            "make test",
            "cargo build --release",
            "git commit -m 'fix the token parser'",
            "ls -la /tmp",
            "claude",
        ] {
            assert_eq!(mask_text(c), c);
        }
    }
}
