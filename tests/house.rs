//! The house rules that a compiler does not enforce, checked on the source tree:
//! - inside every crate, imports between files flow one way: no file imports one that (directly or
//!   through others) imports it;
//! - crates flow one way too: `src/` → service crates → `tradeflow-core`, and no service crate
//!   depends on another.
//!
//! A file's imports are its `crate::…` and `super::…` paths outside comments and outside its inline
//! `#[cfg(test)]` module; each resolves to the longest module path that is a file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const SERVICES: [&str; 4] = ["producer", "ingestor", "aggregator", "dashboard"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → ["a", "b"]; `src/a/mod.rs` → ["a"]; `src/lib.rs` / `src/main.rs` → [].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its inline test module.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every `crate::a::b…` / `super::a…` path in `code`, as absolute module paths (segments).
fn paths_in(code: &str, module: &[String], is_mod_rs: bool) -> Vec<Vec<String>> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').count();
    let mut out = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            // `super` of a `mod.rs` or of `a/b.rs` is the parent of the file's module.
            let mut m = module.to_vec();
            if !is_mod_rs || !m.is_empty() {
                m.pop();
            }
            m
        }),
    ] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut path = base.clone();
            let mut tail = rest;
            let mut group = false;
            loop {
                let n = ident(tail);
                if n == 0 {
                    // `crate::{a, b}`: each member of the group.
                    if let Some(members) = tail.strip_prefix('{') {
                        group = true;
                        for member in members.split('}').next().unwrap_or("").split(',') {
                            let member = member.trim();
                            let n = ident(member);
                            if n > 0 {
                                let mut p = path.clone();
                                p.push(member[..n].to_string());
                                out.push(p);
                            }
                        }
                    }
                    break;
                }
                path.push(tail[..n].to_string());
                tail = &tail[n..];
                match tail.strip_prefix("::") {
                    Some(t) => tail = t,
                    None => break,
                }
            }
            if !group {
                out.push(path);
            }
        }
    }
    out
}

/// A cycle in `graph`, if there is one (as the files along it).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(node, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// File → the files of the same crate it imports.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Vec<String>, String> =
        files.iter().map(|f| (module_of(src, f), f.display().to_string())).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let name = file.display().to_string();
        let text = fs::read_to_string(file).unwrap_or_default();
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
        let mut targets = BTreeSet::new();
        for path in paths_in(&code_of(&text), &module, is_mod_rs) {
            let target = (0..=path.len()).rev().find_map(|n| modules.get(&path[..n]));
            if let Some(target) = target.filter(|t| **t != name) {
                targets.insert(target.clone());
            }
        }
        graph.insert(name, targets);
    }
    graph
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_file_imports_one_that_imports_it() {
    let root = root();
    let mut crates: Vec<PathBuf> = SERVICES.iter().map(|s| root.join(s).join("src")).collect();
    crates.push(root.join("tradeflow-core/src"));
    crates.push(root.join("src"));
    for src in crates {
        let graph = import_graph(&src);
        assert!(graph.len() > 1, "no source files found under {}", src.display());
        if let Some(cycle) = find_cycle(&graph) {
            panic!("imports go round in a circle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_cycle_check_sees_a_circle() {
    // The checker itself: a planted circle (a → b → a) and a one-way pair are told apart.
    let a = "use crate::b::Thing;\nfn f() { crate::b::g() }";
    let b = "use crate::{a::Other, c};";
    assert_eq!(paths_in(&code_of(a), &["a".into()], false), vec![vec!["b", "Thing"], vec!["b", "g"]]);
    assert_eq!(paths_in(&code_of(b), &["b".into()], false), vec![vec!["a"], vec!["c"]]);
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry(from.to_string()).or_default().insert(to.to_string());
            g.entry(to.to_string()).or_default();
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(["a", "b", "c", "a"].iter().map(|s| s.to_string()).collect())
    );
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
}

/// The `tradeflow-*` crates a manifest depends on (any dependency table).
fn workspace_deps(manifest: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(manifest).unwrap_or_default();
    let mut deps = BTreeSet::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.contains("dependencies]") && !line.starts_with("[workspace");
            continue;
        }
        if in_deps && let Some(name) = line.split(['=', '.', ' ']).next().filter(|n| n.starts_with("tradeflow-")) {
            deps.insert(name.to_string());
        }
    }
    deps
}

#[test]
fn crates_depend_one_way() {
    let root = root();
    let core = workspace_deps(&root.join("tradeflow-core/Cargo.toml"));
    assert!(core.is_empty(), "tradeflow-core depends on {core:?}: it is the bottom of the house");
    for service in SERVICES {
        let deps = workspace_deps(&root.join(service).join("Cargo.toml"));
        assert_eq!(
            deps,
            BTreeSet::from(["tradeflow-core".to_string()]),
            "{service} should depend on tradeflow-core alone among the workspace's crates"
        );
    }
    let binary = workspace_deps(&root.join("Cargo.toml"));
    assert!(binary.contains("tradeflow-core") && SERVICES.iter().all(|s| binary.contains(&format!("tradeflow-{s}"))));
}

/// GitHub's anchor for a heading: lower case, spaces to '-', punctuation other than '-' and '_' dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn the_readme_and_docs_link_to_what_exists() {
    let root = root();
    let mut docs: Vec<PathBuf> = vec![root.join("README.md")];
    docs.extend(fs::read_dir(root.join("docs")).into_iter().flatten().flatten().map(|e| e.path()));
    docs.retain(|p| p.extension().is_some_and(|e| e == "md"));
    assert!(docs.len() >= 5, "README.md and docs/*.md: found {docs:?}");
    let mut checked = 0;
    for doc in &docs {
        let text = fs::read_to_string(doc).unwrap_or_default();
        let dir = doc.parent().unwrap_or(&root);
        for link in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() { doc.clone() } else { dir.join(file) };
            assert!(target.exists(), "{}: link to {link}: no such file", doc.display());
            if !fragment.is_empty() {
                let body = fs::read_to_string(&target).unwrap_or_default();
                let anchors: BTreeSet<String> = body
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| anchor(h.trim_start_matches('#')))
                    .collect();
                assert!(anchors.contains(fragment), "{}: link to {link}: no such heading", doc.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} links checked");
}
