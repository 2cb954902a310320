//! The house rules, read from the source (no services): three floors with imports pointing
//! down only, no cycle between top-level modules, no file over 500 lines and no function
//! over 100 lines in src/. Test modules (`#[cfg(test)] mod x;` files and trailing inline
//! `mod tests`) are left out: tests may reach across floors. The graph is printed so the
//! layout can be read from a run (`scripts/test.sh layering -- --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. A module may import its own floor's modules and the floors below.
const FLOORS: [(&str, &[&str]); 3] = [
    (
        "pure",
        &[
            "model",
            "rng",
            "secret",
            "shutdown",
            "stats",
            "codec",
            "join",
            "window",
            "pipeline",
            "detect",
            "generator",
        ],
    ),
    (
        "io",
        &[
            "tls",
            "metrics",
            "internal_events",
            "sink",
            "delivery",
            "ingest",
            "config",
            "source",
        ],
    ),
    ("app", &["app"]),
];

const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 100;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display())
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Files declared as `#[cfg(test)] mod name;`.
fn test_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for p in files {
        let text = read(p);
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim();
            let Some(rest) = t.strip_prefix("mod ").or_else(|| {
                t.strip_prefix("pub(crate) mod ")
                    .or_else(|| t.strip_prefix("pub mod "))
            }) else {
                continue;
            };
            let Some(name) = rest.strip_suffix(';') else {
                continue;
            };
            if i == 0 || lines[i - 1].trim() != "#[cfg(test)]" {
                continue;
            }
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let dir = p.parent().unwrap_or(Path::new(""));
            let base = if ["mod", "lib", "main"].contains(&stem) {
                dir.to_path_buf()
            } else {
                dir.join(stem)
            };
            out.insert(base.join(format!("{name}.rs")));
            out.insert(base.join(name).join("mod.rs"));
        }
    }
    out
}

/// The code of a file without comments and without a trailing inline test module.
fn code(text: &str) -> String {
    let cut = text.find("#[cfg(test)]\nmod tests {").unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named after `crate::` (also inside `use crate::{a, b::c}`).
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let word = |s: &str| {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find(';').unwrap_or(group.len());
            // Items are split at the group's own commas, not at nested groups' ones.
            let (mut depth, mut item) = (0i32, String::new());
            for c in group[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth < 0 || (c == ',' && depth == 0) {
                    let w = word(item.trim());
                    if !w.is_empty() {
                        out.insert(w);
                    }
                    item.clear();
                    if depth < 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            let w = word(rest);
            if !w.is_empty() {
                out.insert(w);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let tests = test_files(&files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in files.iter().filter(|p| !tests.contains(*p)) {
        let rel = p.strip_prefix(src()).unwrap_or(p);
        let first = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default();
        let top = first.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let mut deps = imports(&code(&read(p)));
        deps.remove(&top);
        g.entry(top).or_default().extend(deps);
    }
    g
}

fn floor_of(m: &str) -> Option<usize> {
    FLOORS.iter().position(|(_, ms)| ms.contains(&m))
}

#[test]
fn imports_point_down_the_floors_and_the_module_graph_has_no_cycle() {
    let g = graph();
    let mut problems = Vec::new();
    for (m, deps) in &g {
        let Some(own) = floor_of(m) else {
            problems.push(format!("module {m} is on no floor: add it to FLOORS"));
            continue;
        };
        eprintln!(
            "{:<5} {m:<16} -> {}",
            FLOORS[own].0,
            deps.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        for d in deps.iter().filter(|d| g.contains_key(*d)) {
            if floor_of(d).is_some_and(|f| f > own) {
                problems.push(format!("{m} ({}) imports {d}, a floor up", FLOORS[own].0));
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(m.to_string(), 1);
        path.push(m.to_string());
        for d in g
            .get(m)
            .into_iter()
            .flatten()
            .filter(|d| g.contains_key(*d))
        {
            match state.get(d.as_str()) {
                Some(1) => {
                    let at = path.iter().position(|x| x == d).unwrap_or(0);
                    cycles.push(format!("{} -> {d}", path[at..].join(" -> ")));
                }
                Some(_) => {}
                None => visit(d, g, state, path, cycles),
            }
        }
        path.pop();
        state.insert(m.to_string(), 2);
    }
    let (mut state, mut cycles) = (BTreeMap::new(), Vec::new());
    for m in g.keys() {
        if !state.contains_key(m) {
            visit(m, &g, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    problems.extend(cycles.into_iter().map(|c| format!("cycle: {c}")));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_group_imports_and_ignores_comments() {
    let deps = imports(&code(
        "use crate::{codec::X, join::{a, b}};\n// crate::app\nfn f() { crate::window::g() }\n",
    ));
    let want: BTreeSet<String> = ["codec", "join", "window"].map(String::from).into();
    assert_eq!(deps, want);
}

/// Line counts of `fn` bodies: from the signature to the closing brace at its indent.
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim_start();
        let indent = l.len() - t.len();
        let sig = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "async fn ",
        ]
        .iter()
        .any(|p| t.starts_with(p))
            || [
                "pub async fn ",
                "pub(crate) async fn ",
                "pub(super) async fn ",
            ]
            .iter()
            .any(|p| t.starts_with(p));
        if !sig {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < lines.len() && !lines[j].trim_end().ends_with('{') {
            if lines[j].trim_end().ends_with(';') {
                break;
            }
            j += 1;
        }
        if j >= lines.len() || lines[j].trim_end().ends_with(';') {
            i = j + 1;
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        let mut k = j + 1;
        while k < lines.len() && lines[k].trim_end() != close {
            k += 1;
        }
        let n = k + 1 - i;
        if n > MAX_FN_LINES {
            let name = t.split("fn ").nth(1).unwrap_or("").split(['(', '<']).next();
            out.push((i + 1, name.unwrap_or("").to_string(), n));
        }
        i = j + 1;
    }
    out
}

#[test]
fn no_file_over_500_lines_and_no_function_over_100() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut problems = Vec::new();
    for p in &files {
        let text = read(p);
        let n = text.lines().count();
        if n > MAX_FILE_LINES {
            problems.push(format!("{}: {n} lines", p.display()));
        }
        for (line, name, len) in long_functions(&text) {
            problems.push(format!("{}:{line}: fn {name} is {len} lines", p.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
