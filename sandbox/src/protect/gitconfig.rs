//! The paths a repository's `.git/config` makes git read or run from the workspace: the
//! hooks directory it names (`core.hooksPath`, which husky and others point into the
//! project) and the files it includes (`include.path`, `includeIf.*.path`). Pure: text in,
//! values out. Only what git itself would take as those keys is returned; what cannot be
//! parsed is skipped, as git would refuse such a file anyway.

/// A path named by `.git/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The key (`core.hooksPath`, `include.path`).
    pub key: &'static str,
    /// The value as written (unquoted).
    pub value: String,
}

/// The `core.hooksPath` (the last one, as git takes it) and every include path in `text`.
pub fn named_paths(text: &str) -> Vec<Named> {
    let mut out = Vec::new();
    let mut hooks: Option<String> = None;
    let mut section = String::new();
    for raw in text.lines() {
        let mut line = raw.trim();
        if line.starts_with('[') {
            let Some(end) = line.find(']') else {
                continue;
            };
            let header = &line[1..end];
            // `[core]`, `[include]`, `[includeIf "gitdir:..."]`: the name before any subsection.
            section = header
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            line = line[end + 1..].trim();
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = unquote(value);
        match (section.as_str(), key.as_str()) {
            ("core", "hookspath") => hooks = Some(value),
            ("include" | "includeif", "path") => out.push(Named {
                key: "include.path",
                value,
            }),
            _ => {}
        }
    }
    if let Some(value) = hooks {
        out.push(Named {
            key: "core.hooksPath",
            value,
        });
    }
    out
}

/// A value without its comment and quotes: `"a b" # c` is `a b`.
fn unquote(v: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = v.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(match n {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
            }
            '#' | ';' if !quoted => break,
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_path_and_includes_are_found_in_their_sections_whatever_the_case_and_quoting() {
        let text = "[core]\n\trepositoryformatversion = 0\n\thooksPath = .husky/_ # husky\n\
                    [remote \"origin\"]\n\tpath = not-this\n\
                    [include]\n\tpath = ../shared.gitconfig\n\
                    [includeIf \"gitdir:~/work/\"]\n\tpath = \"/abs/with space\"\n\
                    [Core]\n\tHOOKSPATH = \"hooks dir\"\n";
        let found = named_paths(text);
        assert_eq!(
            found,
            vec![
                Named {
                    key: "include.path",
                    value: "../shared.gitconfig".into()
                },
                Named {
                    key: "include.path",
                    value: "/abs/with space".into()
                },
                Named {
                    key: "core.hooksPath",
                    value: "hooks dir".into()
                },
            ],
            "the last hooksPath wins, as in git"
        );
    }

    #[test]
    fn a_config_without_them_names_nothing() {
        assert!(named_paths("[core]\n\tbare = false\n[user]\n\tname = x\n").is_empty());
    }
}
