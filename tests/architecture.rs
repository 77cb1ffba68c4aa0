//! The module graph stays acyclic: no top-level module of `src/` may reach itself through
//! `crate::…` paths (e.g. `app` → `review` → `app`). Layers are what make the code readable in
//! one direction — adapters at the edges, rules in the middle, `app` wiring them — and a
//! cycle is where that quietly stops being true. This reads the sources, so it runs in every
//! plain `cargo test` without any tool installed.
//!
//! What counts: every `crate::name` (and `crate::{name, …}`) outside comments, in every file
//! under `src/<name>.rs` or `src/<name>/`, except the unit tests at the end of a file
//! (`#[cfg(test)] mod tests`) or in a `tests.rs` of their own, which may use anything. `lib.rs` and `main.rs` are the roots.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules declared in `lib.rs`.
fn top_modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').trim().to_string())
        })
        .collect()
}

/// The code of a file without comments and without its trailing unit-test module.
fn code_of(source: &str) -> String {
    let mut out = String::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        // A trailing comment (never inside a string here: good enough for `use` paths).
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The first path segments after `crate::` (`crate::a::b` → `a`; `crate::{a, b::c}` → `a`, `b`).
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `foo_crate::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Segments at the group's top level: after `{` and after each `,` at depth 0.
            let mut depth = 0;
            let mut expect = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if expect && !name.is_empty() {
                            found.push(std::mem::take(&mut name));
                        }
                        expect = true;
                    }
                    c if expect && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ => {
                        if expect && !name.is_empty() {
                            found.push(std::mem::take(&mut name));
                            expect = false;
                        }
                    }
                }
            }
            if !name.is_empty() {
                found.push(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

/// module → (module it uses → files that use it)
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let tops = top_modules(&lib);
    assert!(tops.len() > 10, "lib.rs declares the modules: {tops:?}");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        // A `tests.rs` is a unit-test module moved out of its parent (`#[cfg(test)] mod tests;`).
        if rel_str == "lib.rs" || rel_str == "main.rs" || rel.ends_with("tests.rs") {
            continue;
        }
        let first = rel_str.split('/').next().unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_string();
        let source = std::fs::read_to_string(&file).expect("read source");
        for used in crate_paths(&code_of(&source)) {
            if used != module && tops.contains(&used) {
                g.entry(module.clone())
                    .or_default()
                    .entry(used)
                    .or_default()
                    .insert(rel_str.clone());
            }
        }
    }
    g
}

/// One cycle, if there is any: the modules in order, the first repeated at the end.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        g: &Graph,
        node: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in g.get(node).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(g, next, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in g.keys() {
        if let Some(c) = visit(g, node, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn top_level_modules_form_no_import_cycle() {
    let g = graph();
    if let Some(cycle) = find_cycle(&g) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let files = &g[&w[0]][&w[1]];
                format!("  {} -> {}  (in {:?})", w[0], w[1], files)
            })
            .collect();
        panic!(
            "import cycle between top-level modules: {}\n{}",
            cycle.join(" -> "),
            steps.join("\n")
        );
    }
}

#[test]
fn the_checker_sees_paths_and_cycles() {
    let code = code_of(
        "use crate::a::B;\n// crate::commented\nuse crate::{c, d::{E, F}, g};\nlet x = crate::h::f(); // crate::tail\nuse foo_crate::no;\n#[cfg(test)]\nmod tests {\n    use crate::z;\n}\n",
    );
    assert_eq!(crate_paths(&code), ["a", "c", "d", "g", "h"]);
    fn edge(g: &mut Graph, a: &str, b: &str) {
        g.entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert("f.rs".into());
    }
    let mut g = Graph::new();
    edge(&mut g, "app", "review");
    edge(&mut g, "review", "pipeline");
    assert_eq!(find_cycle(&g), None);
    edge(&mut g, "pipeline", "app");
    assert_eq!(
        find_cycle(&g),
        Some(vec![
            "app".into(),
            "review".into(),
            "pipeline".into(),
            "app".into()
        ])
    );
}
