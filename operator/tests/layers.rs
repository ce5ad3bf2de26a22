//! The operator's layers, enforced (see `operator/ARCHITECTURE.md`).
//!
//! Every module of `operator/src` has a layer (the tables below); a module may use modules of
//! its own layer or of lower ones, never of a higher one, and a worker (a controller or the
//! scheduler) never uses another worker. Modules also may not use each other in a circle.
//! The check reads the sources: every `crate::…` and `super::…` path outside comments and
//! string literals (in `use` lines, expressions, types and tests alike) is resolved to the
//! module it names.
//!
//! A new module must be added to a table; that is the moment to decide where it belongs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layers, lowest first. Arrows only point down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// Shared types and I/O helpers below every worker: caches, context, status writing,
    /// events, metrics, pod rendering, translation, resolution of definitions, shutdown.
    Plumbing,
    /// The node-pool providers (managed compute environments): used by the ComputeEnvironment
    /// controller and by the scheduler (the node snapshot).
    Providers,
    /// What every controller shares (`controllers/mod.rs`): controller settings, measuring,
    /// draining, change filters, shared condition reasons.
    ControllerMachinery,
    /// The workers: one kube-runtime controller per kind, and the scheduler loop. A worker
    /// never uses another worker.
    Worker,
    /// Start-up and command lines: start the workers, wire everything together.
    Entry,
}

use Layer::*;

/// The library (`barge_operator`, `src/lib.rs`): module path → layer. A path names the module
/// and everything below it unless a longer path is listed.
const LIBRARY: &[(&str, Layer)] = &[
    ("cache", Plumbing),
    ("context", Plumbing),
    ("definition_revisions", Plumbing),
    ("events", Plumbing),
    ("index", Plumbing),
    ("leader", Plumbing),
    ("metrics", Plumbing),
    ("pod_refusals", Plumbing),
    ("pods", Plumbing),
    ("queue_access", Plumbing),
    ("shutdown", Plumbing),
    ("status", Plumbing),
    ("test_support", Plumbing),
    ("throttle", Plumbing),
    ("translate", Plumbing),
    ("nodepools", Providers),
    ("controllers", ControllerMachinery),
    ("controllers::compute_environment", Worker),
    ("controllers::job", Worker),
    ("controllers::job_definition", Worker),
    ("controllers::job_queue", Worker),
    ("controllers::scheduling_policy", Worker),
    ("scheduler", Worker),
    ("run", Entry),
];

/// The binary (`barge`, `src/main.rs`): its own `crate`.
const BINARY: &[(&str, Layer)] = &[("import_aws", Plumbing), ("commands", Entry)];

/// One use of a module by another, at a line of a file.
#[derive(Debug)]
struct Use {
    file: String,
    line: usize,
    from: String,
    to: String,
}

#[test]
fn modules_only_use_lower_layers_and_workers_never_use_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = check(&src);
    assert!(
        problems.is_empty(),
        "the operator's layering is broken (see operator/ARCHITECTURE.md):\n  {}",
        problems.join("\n  ")
    );
}

/// The checker itself catches what it must: an upward use, a worker using a worker, a
/// circle inside a layer, a module missing from the tables.
#[test]
fn the_layer_check_catches_upward_sideways_and_circular_uses() {
    let dir = std::env::temp_dir().join(format!("barge-layers-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "pub mod context;\n");
    write(
        "context.rs",
        "use crate::controllers::job_definition::ResolvedDefinition; // upward\nuse crate::cache::Caches;\n",
    );
    write("cache.rs", "use crate::context::Context; // a circle\n");
    write(
        "controllers/job.rs",
        "use super::job_definition::resolve; // sideways\nuse super::{measured, job_queue};\n\
         fn f() { let s = \"crate::run::x\"; } // strings and comments do not count: crate::run\n\
         #[cfg(test)]\nmod tests {\n    use super::*; // the job module itself\n    use super::super::drain;\n}\n",
    );
    write(
        "controllers/mod.rs",
        "pub mod job;\nfn g() { crate::scheduler::run(); }\n",
    );
    write(
        "scheduler/mod.rs",
        "use crate::run::Shutdown;\nuse crate::brand_new::X;\n",
    );
    let problems = check(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let expect = [
        "context.rs:1: context (Plumbing) uses controllers::job_definition (Worker)",
        "controllers/job.rs:1: worker controllers::job uses worker controllers::job_definition",
        "controllers/job.rs:2: worker controllers::job uses worker controllers::job_queue",
        "controllers/mod.rs:2: controllers (ControllerMachinery) uses scheduler (Worker)",
        "scheduler/mod.rs:1: scheduler (Worker) uses run (Entry)",
        "scheduler/mod.rs:2: brand_new is not in the layer tables of tests/layers.rs",
        "circle: cache → context → cache",
    ];
    for expected in expect {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "missing {expected:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}

/// Every layering problem of the sources under `src`, as readable lines.
fn check(src: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let module = module_path(&relative);
        let Some(first) = module.first() else {
            continue; // lib.rs and main.rs only declare modules
        };
        let table = if LIBRARY.iter().any(|(m, _)| m == first) {
            LIBRARY
        } else if BINARY.iter().any(|(m, _)| m == first) {
            BINARY
        } else {
            problems.push(format!(
                "{relative}: module {first} is not in the layer tables of tests/layers.rs"
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (line, target) in module_uses(&module, &text) {
            let from = unit_of(table, &module).expect("the file's module is listed");
            let Some(to) = unit_of(table, &target) else {
                problems.push(format!(
                    "{relative}:{line}: {} is not in the layer tables of tests/layers.rs",
                    target.first().cloned().unwrap_or_default()
                ));
                continue;
            };
            if from.0 == to.0 {
                continue;
            }
            let used = Use {
                file: relative.clone(),
                line,
                from: from.0.clone(),
                to: to.0.clone(),
            };
            if let Some(problem) = judge(&used, from.1, to.1) {
                problems.push(problem);
            }
            graph.entry(used.from).or_default().insert(used.to);
        }
    }
    problems.dedup(); // one line per import, however many names it takes
    problems.extend(circles(&graph));
    problems
}

/// Why `used` breaks the layering, if it does.
fn judge(used: &Use, from: Layer, to: Layer) -> Option<String> {
    let at = format!("{}:{}", used.file, used.line);
    if to > from {
        Some(format!(
            "{at}: {} ({from:?}) uses {} ({to:?}), a higher layer: move what they share down",
            used.from, used.to
        ))
    } else if from == Worker && to == Worker {
        Some(format!(
            "{at}: worker {} uses worker {}: move what they share down a layer",
            used.from, used.to
        ))
    } else {
        None
    }
}

/// The listed module (longest listed prefix) `path` belongs to, with its layer.
fn unit_of(table: &[(&str, Layer)], path: &[String]) -> Option<(String, Layer)> {
    table
        .iter()
        .filter(|(module, _)| {
            let parts: Vec<&str> = module.split("::").collect();
            parts.len() <= path.len() && parts.iter().zip(path).all(|(a, b)| a == b)
        })
        .max_by_key(|(module, _)| module.len())
        .map(|(module, layer)| (module.to_string(), *layer))
}

/// Circles in the graph of uses between listed modules.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut circle = path[start..].to_vec();
            circle.push(node.to_string());
            found.push(format!("circle: {}", circle.join(" → ")));
            return;
        }
        if !done.insert(node.to_string()) {
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, found);
        }
        path.pop();
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `controllers/job.rs` → `[controllers, job]`; `pods/mod.rs` → `[pods]`; `lib.rs` → `[]`.
fn module_path(relative: &str) -> Vec<String> {
    let trimmed = relative.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Every module path a file names through `crate::…` or `super::…`, with its line.
fn module_uses(module: &[String], text: &str) -> Vec<(usize, Vec<String>)> {
    let tokens = tokens(&code_only(text));
    let mut uses = Vec::new();
    // Inline modules (`mod tests { … }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let (line, token) = (tokens[i].0, tokens[i].1.as_str());
        match token {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                while inline.last().is_some_and(|(_, d)| *d > depth) {
                    inline.pop();
                }
            }
            "mod" if i + 2 < tokens.len() && tokens[i + 2].1 == "{" => {
                inline.push((tokens[i + 1].1.clone(), depth + 1));
            }
            "crate" | "super"
                if at(&tokens, i + 1) == "::"
                    && at(&tokens, i.wrapping_sub(1)) != "::"
                    && at(&tokens, i.wrapping_sub(1)) != "$" =>
            {
                let mut base: Vec<String> = if token == "crate" {
                    Vec::new()
                } else {
                    let mut here: Vec<String> = module.to_vec();
                    here.extend(inline.iter().map(|(name, _)| name.clone()));
                    here.pop();
                    here
                };
                let mut j = i + 2;
                while at(&tokens, j) == "super" && at(&tokens, j + 1) == "::" {
                    base.pop();
                    j += 2;
                }
                // name (:: name)*, then maybe :: { a, b::c, self, … }
                while is_ident(at(&tokens, j)) {
                    base.push(tokens[j].1.clone());
                    if at(&tokens, j + 1) == "::" && is_ident(at(&tokens, j + 2)) {
                        j += 2;
                    } else {
                        j += 1;
                        break;
                    }
                }
                let group = if at(&tokens, j) == "{" {
                    Some(j) // `super::{…}`
                } else if at(&tokens, j) == "::" && at(&tokens, j + 1) == "{" {
                    Some(j + 1) // `crate::a::{…}`
                } else {
                    None
                };
                if let Some(open) = group {
                    for first in group_heads(&tokens, open) {
                        let mut target = base.clone();
                        if first != "self" && first != "*" {
                            target.push(first);
                        }
                        uses.push((line, target));
                    }
                } else {
                    uses.push((line, base));
                }
            }
            _ => {}
        }
        i += 1;
    }
    uses
}

/// The first token of each element of the `{ … }` group opening at `open`.
fn group_heads(tokens: &[(usize, String)], open: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut level = 0;
    let mut expect_head = true;
    for (_, token) in &tokens[open..] {
        match token.as_str() {
            "{" => {
                level += 1;
                continue;
            }
            "}" => {
                level -= 1;
                if level == 0 {
                    break;
                }
                continue;
            }
            "," if level == 1 => {
                expect_head = true;
                continue;
            }
            _ => {}
        }
        if level == 1 && expect_head {
            heads.push(token.clone());
            expect_head = false;
        }
    }
    heads
}

fn at(tokens: &[(usize, String)], i: usize) -> &str {
    tokens.get(i).map(|t| t.1.as_str()).unwrap_or("")
}

fn is_ident(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::` and single punctuation characters, each with its line.
fn tokens(code: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((line, chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((line, "::".to_string()));
            i += 2;
        } else {
            out.push((line, c.to_string()));
            i += 1;
        }
    }
    out
}

/// `text` with comments, string literals and character literals blanked out (newlines kept,
/// so lines still count right).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let ident_at = |k: usize| chars[k].is_alphanumeric() || chars[k] == '_';
        // `r"…"` / `br"…"` start a raw string; `for"` or `bar"` do not
        let prev_ident =
            i > 0 && ident_at(i - 1) && !(chars[i - 1] == 'b' && (i < 2 || !ident_at(i - 2)));
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut level = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    level += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    level -= 1;
                    i += 2;
                    if level == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && !prev_ident && matches!(next, Some('"') | Some('#')) && {
            let mut k = i + 1;
            while chars.get(k) == Some(&'#') {
                k += 1;
            }
            chars.get(k) == Some(&'"')
        } {
            let mut hashes = 0;
            i += 1;
            while chars[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1; // the opening quote
            out.push_str("\"\"");
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '"' {
            out.push_str("\"\"");
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // a character literal ('a', '{', '\n', '\u{1F600}'); otherwise a lifetime
            out.push_str("' '");
            i += 1;
            if chars.get(i) == Some(&'\\') {
                i += 1;
            }
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}
