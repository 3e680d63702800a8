//! Where in a profile's text an error lies: the line and the dotted key a person reads,
//! from the byte spans toml gives (an error's, and every key's and value's in its spanned
//! document).
//!
//! The document is parsed again only when there is an error to place. Each file is validated
//! on its own before merging, so an error always lies in the text of the file that holds it,
//! even for a key that a parent profile named by `extends` sets: nothing here looks across
//! files.

use toml::de::{DeTable, DeValue};

/// The line (from 1) holding byte `offset` of `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where the key at `path` (`["limits", "memory"]`) is set, for errors found after
/// parsing.
pub(super) fn line_of_key(text: &str, path: &[&str]) -> Option<usize> {
    let (doc, _) = DeTable::parse_recoverable(text);
    let (last, tables) = path.split_last()?;
    let mut table = doc.get_ref();
    for name in tables {
        match table.get(*name)?.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    let (key, _) = table.get_key_value(*last)?;
    Some(line_of(text, key.span().start))
}

/// The dotted key whose key or value holds byte `offset` (where toml placed an error): the
/// innermost one, so that a key inside an inline table or a `[table]` is named in full.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    // Recovering parses what it can around a syntax error, so those are named too.
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut path = Vec::new();
    if find_key(doc.get_ref(), offset, &mut path) {
        return Some(path.join("."));
    }
    key_on_line(text, offset)
}

/// Pushes onto `path` the keys down to the innermost entry whose key or value holds
/// `offset`; false, with `path` as it was, when none does.
fn find_key(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    // A span is inclusive at its end: toml places a missing value as an empty span there.
    let holds = |span: std::ops::Range<usize>| span.start <= offset && offset <= span.end;
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        let inner = match value.get_ref() {
            DeValue::Table(t) => find_key(t, offset, path),
            DeValue::Array(items) => items.iter().any(
                |item| matches!(item.get_ref(), DeValue::Table(t) if find_key(t, offset, path)),
            ),
            _ => false,
        };
        if inner || holds(key.span()) || holds(value.span()) {
            return true;
        }
        path.pop();
    }
    false
}

/// The key set on the line holding `offset`, prefixed with the nearest `[table]` above.
///
/// Only for errors the document holds no span for. The one that matters is a repeated key:
/// toml keeps the first definition and drops the repeat, so the repeat's span is in no entry,
/// and for a dotted repeat (`b.x = 2` after `a.x = 1`) only the line says which table it is
/// in. A scan of lines can be fooled (multi-line values, inline tables, a comment after a
/// header), which is why everything the document can place is placed from it.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let upto = &text[..offset.min(text.len())];
    let line_start = upto.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split('=')
        .next()
        .map(str::trim)
        .filter(|k| !k.is_empty() && !k.starts_with('['))?;
    let table = upto[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, needle: &str) -> Option<String> {
        key_at(text, text.find(needle).expect("needle in text"))
    }

    #[test]
    fn a_value_in_a_multi_line_array_is_named_by_its_array() {
        let text = "[network]\nmode = \"ports\"\nconnect = [\n  443,\n  70000,\n]\n";
        assert_eq!(at(text, "70000").as_deref(), Some("network.connect"));
    }

    #[test]
    fn a_key_in_an_inline_table_is_named_in_full() {
        assert_eq!(
            at("limits = { memroy = \"1G\" }\n", "memroy").as_deref(),
            Some("limits.memroy")
        );
        assert_eq!(
            at("[limts]\nmemory = 1\n", "limts").as_deref(),
            Some("limts")
        );
    }

    #[test]
    fn a_repeated_key_is_named_from_its_line_since_toml_drops_the_repeat() {
        let text = "b.x = 1\na.x = 1\nb.x = 2\n";
        assert_eq!(
            key_at(text, text.rfind('x').unwrap()).as_deref(),
            Some("b.x")
        );
        let text = "[limits]\nprocesses = 1\nprocesses = 2\n";
        assert_eq!(
            key_at(text, text.rfind("processes").unwrap()).as_deref(),
            Some("limits.processes")
        );
    }

    #[test]
    fn keys_in_inline_tables_dotted_keys_and_commented_headers_have_lines() {
        assert_eq!(
            line_of_key(
                "description = \"x\"\nlimits = { memory = \"1M\" }\n",
                &["limits", "memory"]
            ),
            Some(2)
        );
        assert_eq!(
            line_of_key(
                "description = \"x\"\nenv.set.\"1BAD\" = \"2\"\n",
                &["env", "set", "1BAD"]
            ),
            Some(2)
        );
        assert_eq!(
            line_of_key("[limits] # mine\nprocesses = 0\n", &["limits", "processes"]),
            Some(2)
        );
        assert_eq!(
            line_of_key("[limits]\nprocesses = 0\n", &["limits", "memory"]),
            None
        );
    }

    #[test]
    fn a_table_header_inside_a_multi_line_string_is_only_text() {
        let text =
            "description = \"\"\"\n[limits]\nprocesses = 1\n\"\"\"\n[limits]\nprocesses = 0\n";
        assert_eq!(line_of_key(text, &["limits", "processes"]), Some(6));
    }
}
