//! Dependencies point one way (docs/ARCHITECTURE.md): faces (the command line, the TUI, SSH,
//! the API, serve) → the service → the core (sessions, recordings, places, tokens, the store,
//! the audit log, ...) → the sandbox crate. This reads every `crate::` path in `src/` and
//! checks that no module uses one above it, and that the core has no cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const FACES: &[&str] = &["main", "serve", "cli", "tui", "ssh", "api"];
const SERVICE: &str = "service";
/// Faces that use another face: `main` dispatches to all, `serve` starts SSH, the API and the
/// TUI's socket, and SSH runs the TUI on a shell request.
const COMPOSE: &[(&str, &str)] = &[
    ("serve", "ssh"),
    ("serve", "api"),
    ("serve", "tui"),
    ("ssh", "tui"),
];

/// Which top-level module each `src/` file belongs to, and the top-level modules it names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            // Tests of a module may reach anything; only the code that ships is checked.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let uses = out.entry(top.clone()).or_default();
            uses.extend(named(code).into_iter().filter(|n| *n != top));
        }
    }
    out
}

/// The top-level modules a text names through `crate::`, grouped imports included
/// (`use crate::{audit::Kind, store};`).
fn named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0, 0);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(&group[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

fn layer(module: &str) -> u8 {
    if FACES.contains(&module) {
        2
    } else if module == SERVICE {
        1
    } else {
        0
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let mut wrong = Vec::new();
    for (from, uses) in edges() {
        for to in uses {
            let across = layer(&from) == 2
                && layer(&to) == 2
                && from != "main"
                && !COMPOSE.contains(&(from.as_str(), to.as_str()));
            if layer(&to) > layer(&from) || across {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies pointing up or across faces: {wrong:?}"
    );
}

#[test]
fn the_core_has_no_cycles() {
    let all = edges();
    let core: BTreeMap<&String, BTreeSet<&String>> = all
        .iter()
        .filter(|(m, _)| layer(m) == 0)
        .map(|(m, uses)| {
            (
                m,
                uses.iter()
                    .filter(|u| layer(u) == 0 && all.contains_key(*u))
                    .collect(),
            )
        })
        .collect();
    // Kahn's algorithm: repeatedly take the modules that use nothing left.
    let mut left = core.clone();
    loop {
        let free: Vec<&String> = left
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| !left.contains_key(u)))
            .map(|(m, _)| *m)
            .collect();
        if free.is_empty() {
            break;
        }
        for m in free {
            left.remove(m);
        }
    }
    assert!(
        left.is_empty(),
        "a cycle among {:?}",
        left.keys().collect::<Vec<_>>()
    );
}

#[test]
fn the_check_reads_paths_and_grouped_imports() {
    let found = named("use crate::store::Store;\nuse crate::{audit::{AuditEvent, Kind}, service,\n  tokens::Claims};\nlet x = crate::text::safe(y);");
    assert_eq!(
        found,
        ["audit", "service", "store", "text", "tokens"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[test]
fn the_check_sees_the_modules_it_is_about() {
    let all = edges();
    for m in ["service", "sessions", "store", "ssh", "api", "tui", "cli"] {
        assert!(
            all.contains_key(m),
            "{m} not found: {:?}",
            all.keys().collect::<Vec<_>>()
        );
    }
    assert!(all["ssh"].contains("service"), "faces use the service");
}
