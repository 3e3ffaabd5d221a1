//! The layout of `src/` (docs/architecture.md#layers): arrows point down. No file of `src/`
//! imports, directly or through others, a file that imports it, and the same holds between the
//! top-level modules (`http`, `graphql`, `service`, `store`, …). Test modules are left out: a
//! unit test may reach sideways.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Every module of `src/` (`a::b`) but the crate root, with its source, tests cut off.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix("src").expect("under src");
                let mut name = relative
                    .with_extension("")
                    .to_string_lossy()
                    .replace('/', "::");
                if let Some(parent) = name.strip_suffix("::mod") {
                    name = parent.to_owned();
                }
                if name == "lib" || name == "main" {
                    continue;
                }
                let source = std::fs::read_to_string(&path).expect("read");
                let source = match source.find("#[cfg(test)]\nmod tests") {
                    Some(at) => source[..at].to_owned(),
                    None => source,
                };
                out.insert(name, source);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("src"), &mut out);
    out
}

/// The paths a source names from the crate root: `crate::a::b` as written, and each path of a
/// `use crate::{…}` group, expanded; comments are ignored.
fn crate_paths(source: &str) -> Vec<Vec<String>> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        rest = &rest[at + "crate::".len()..];
        if preceded {
            continue;
        }
        if rest.starts_with('{') {
            let end = closing(rest);
            expand(&[], &rest[1..end], &mut paths);
            rest = &rest[end..];
        } else {
            let path = leading_path(rest);
            if rest[path.len()..].starts_with("::{") {
                let group = &rest[path.len() + 2..];
                let end = closing(group);
                let prefix: Vec<String> = path.split("::").map(str::to_owned).collect();
                expand(&prefix, &group[1..end], &mut paths);
            } else {
                paths.push(path.split("::").map(str::to_owned).collect());
            }
        }
    }
    paths
}

/// The index of the brace closing the one `text` starts with.
fn closing(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// `a::b::c` at the start of `text`.
fn leading_path(text: &str) -> &str {
    let mut end = 0;
    let bytes = text.as_bytes();
    while end < bytes.len() {
        let c = bytes[end] as char;
        if c.is_alphanumeric() || c == '_' {
            end += 1;
        } else if text[end..].starts_with("::")
            && text[end + 2..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            end += 2;
        } else {
            break;
        }
    }
    &text[..end]
}

/// Adds the paths of a `{…}` group's body under `prefix`.
fn expand(prefix: &[String], body: &str, paths: &mut Vec<Vec<String>>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let item = item.split(" as ").next().unwrap_or(item).trim();
        let path = leading_path(item);
        let mut full = prefix.to_vec();
        full.extend(
            path.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        if item[path.len()..].starts_with("::{") {
            let group = &item[path.len() + 2..];
            let end = closing(group);
            expand(&full, &group[1..end], paths);
        } else if !full.is_empty() {
            paths.push(full);
        }
    }
}

/// The module a path names: its longest prefix that is a module, if any.
fn module_of(path: &[String], modules: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

/// A cycle in `graph`, if it has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut found = stack[at..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                Some(_) => {}
                None => {
                    if let Some(found) = visit(next, graph, state, stack) {
                        return Some(found);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str())
            && let Some(found) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}

#[test]
fn no_import_cycle_between_the_files_or_the_folders_of_src() {
    let modules = modules();
    assert!(modules.contains_key("store::feed"), "src/ was read");
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, source) in &modules {
        // `super::` and `self::` as paths from the crate root.
        let parent = name.rsplit_once("::").map_or("", |(parent, _)| parent);
        let rooted = |m: &str| {
            if m.is_empty() {
                "crate::".to_owned()
            } else {
                format!("crate::{m}::")
            }
        };
        let source = source
            .replace("super::", &rooted(parent))
            .replace("self::", &rooted(name));
        for path in crate_paths(&source) {
            let Some(target) = module_of(&path, &modules) else {
                continue;
            };
            if &target == name || name.starts_with(&format!("{target}::")) {
                continue;
            }
            files
                .entry(name.clone())
                .or_default()
                .insert(target.clone());
            let (from, to) = (top(name), top(&target));
            if from != to {
                folders
                    .entry(from.to_owned())
                    .or_default()
                    .insert(to.to_owned());
            }
        }
    }
    assert!(
        files
            .get("store")
            .is_some_and(|d| d.contains("store::feed")),
        "the imports were read: {files:?}"
    );
    assert_eq!(cycle(&files), None, "a cycle between files of src/");
    assert_eq!(cycle(&folders), None, "a cycle between the modules of src/");
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}
