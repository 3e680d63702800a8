//! The manual covers the command line: every command and long flag of the clap tree
//! ([`crate::Cli`]) appears in man/cordon.1, each flag in the entry of its command, so that
//! the page cannot fall behind the parser (tests only).

use clap::CommandFactory;

const PAGE: &str = include_str!("../../man/cordon.1");

/// A line of roff as its reader sees it: the request (`.B`, `.RB`, ...) taken off, dashes
/// and fonts unescaped, quotes dropped.
fn as_read(line: &str) -> String {
    let text = match line.strip_prefix('.') {
        Some(request) => request.split_once(' ').map_or("", |(_, rest)| rest),
        None => line,
    };
    let mut out = text.replace("\\-", "-").replace("\\(dq", "");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        out = out.replace(font, "");
    }
    out.replace('"', "")
}

/// The items (`.TP`) of the COMMANDS section, each as the lines a reader sees; an item's
/// nested list (`.RS` ... `.RE`, the options of `sandbox`) belongs to it.
fn entries(page: &str) -> Vec<Vec<String>> {
    let section = page
        .split("\n.SH COMMANDS\n")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .unwrap_or("");
    let mut items: Vec<Vec<String>> = Vec::new();
    let mut depth = 0;
    for line in section.lines() {
        if line.starts_with(".RS") {
            depth += 1;
        } else if line.starts_with(".RE") {
            depth -= 1;
        } else if line == ".TP" && depth == 0 {
            items.push(Vec::new());
            continue;
        }
        if let Some(item) = items.last_mut() {
            item.push(as_read(line));
        }
    }
    items
}

/// Whether `text` holds `word` whole (not as the start of a longer flag or name).
fn holds(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let after = text[i + word.len()..].chars().next();
        let before = text[..i].chars().next_back();
        !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// The long flags a command defines itself (globals are checked at the root).
fn long_flags(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set())
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version"))
        .map(|l| format!("--{l}"))
        .collect()
}

/// Every command below `cmd`, as its words after `cordon` (`["rec", "ls"]`).
fn commands(cmd: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut p = path.to_vec();
        p.push(sub.get_name().to_string());
        out.push((p.clone(), sub.clone()));
        commands(sub, &p, out);
    }
}

#[test]
fn every_command_and_long_flag_is_in_the_manual_entry_of_its_command() {
    let cli = crate::Cli::command();
    let whole = as_read(&PAGE.lines().collect::<Vec<_>>().join("\n"));
    let mut missing: Vec<String> = Vec::new();
    for a in cli.get_arguments().filter_map(|a| a.get_long()) {
        if !holds(&whole, &format!("--{a}")) {
            missing.push(format!("cordon --{a}"));
        }
    }
    let items = entries(PAGE);
    let mut all = Vec::new();
    commands(&cli, &[], &mut all);
    assert!(all.len() > 40, "the walk found {} commands", all.len());
    for (path, cmd) in &all {
        let name = path.join(" ");
        // The entry of a command: in an item whose head names its top command (not `serve`'s,
        // which names SSH's), from the first line that starts with its words to the item's end.
        let starts = |l: &str, words: &str| l.trim_start().starts_with(words) && holds(l, words);
        let span = items.iter().find_map(|item| {
            if !item.first().is_some_and(|head| starts(head, &path[0])) {
                return None;
            }
            let start = item.iter().position(|l| starts(l, &name))?;
            Some(item[start..].join("\n"))
        });
        let Some(span) = span else {
            missing.push(format!("cordon {name}: no entry in COMMANDS"));
            continue;
        };
        for flag in long_flags(cmd) {
            if !holds(&span, &flag) {
                missing.push(format!("cordon {name} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "man/cordon.1 does not document:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_check_finds_a_flag_whole_and_reads_roff_as_a_reader_does() {
    assert!(holds("[--json] x", "--json"));
    assert!(!holds("--json-lines", "--json"));
    assert!(!holds("x--jsonx", "--json"));
    assert_eq!(as_read(".RB [ \\-\\-no\\-links ]"), "[ --no-links ]");
    assert_eq!(as_read(".B \"rec ls\""), "rec ls");
    let items =
        entries("x\n.SH COMMANDS\n.TP\n.B a\n.RS\n.TP\n.B \\-\\-x\n.RE\n.TP\n.B b\n.SH NEXT\n");
    assert_eq!(items, vec![vec!["a", "", "", "--x", ""], vec!["b"]]);
}
