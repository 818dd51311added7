//! The layering rules, checked on the source of both crates: no import cycles; storage apart
//! from HTTP; handlers apart from SQL; the access layer at the bottom.

use std::path::{Path, PathBuf};

use jeex_e2e::module_graph::{ModuleGraph, name};

fn src(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src")
}

fn assert_acyclic(krate: &str) {
    let graph = ModuleGraph::of_crate(&src(krate)).unwrap();
    assert!(graph.modules().count() > 5, "{krate}: the source was not found");
    let cycles = graph.cycles();
    let shown: Vec<String> = cycles.iter().map(|c| format!("  {} (e.g. {})", c.join(", "), graph.loop_through(c).join(" → "))).collect();
    assert!(cycles.is_empty(), "{krate} has import cycles:\n{}", shown.join("\n"));
}

#[test]
fn the_api_server_has_no_import_cycles() {
    assert_acyclic("api-server");
}

#[test]
fn the_operator_has_no_import_cycles() {
    assert_acyclic("operator");
}

/// The check itself: a crate whose modules import each other fails it, however the cycle is
/// spelled (a use tree, `super::`, an inline path), and a test module's imports do not count.
#[test]
fn a_cycle_is_found() {
    let dir = std::env::temp_dir().join(format!("jeex-module-graph-{}", std::process::id()));
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    write("a/mod.rs", "//! use crate::c; (a comment)\npub mod inner;\nuse crate::{b::{self, B}, c as _};\npub const A: u8 = 1;\n");
    write("a/inner.rs", "pub fn f() -> u8 { super::A + super::super::c::C }\n");
    write("b.rs", "pub struct B;\npub fn g() { let _ = \"crate::c\"; crate::a::inner::f(); }\n");
    write("c.rs", "pub const C: u8 = 1;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n");
    let graph = ModuleGraph::of_crate(&dir).unwrap();
    let cycles = graph.cycles();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycles, vec![vec!["a".to_owned(), "a/inner".into(), "b".into()]], "a → b → a/inner → a");
    let imports_of = |m: &[&str]| {
        let m: Vec<String> = m.iter().map(|s| s.to_string()).collect();
        graph.imports(&m).map(|t| name(t)).collect::<Vec<_>>()
    };
    assert_eq!(imports_of(&["c"]), Vec::<String>::new(), "a test module's import and a comment are not edges");
    assert_eq!(imports_of(&["a", "inner"]), vec!["a".to_owned(), "c".into()]);
}

fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

/// Lines of `dir`'s files that mention `needle` outside comments.
fn mentions(dir: &Path, needle: &str) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .flat_map(|(path, text)| {
            text.lines()
                .filter(|l| !l.trim_start().starts_with("//") && l.contains(needle))
                .map(|l| format!("{}: {}", path.display(), l.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn storage_knows_nothing_of_http() {
    let db = src("api-server").join("db");
    for framework in ["poem", "http::"] {
        let found = mentions(&db, framework);
        assert!(found.is_empty(), "db/ must not use {framework}:\n{}", found.join("\n"));
    }
}

#[test]
fn handlers_run_no_sql() {
    let found = mentions(&src("api-server").join("api"), "sqlx");
    assert!(found.is_empty(), "api/ must reach PostgreSQL through db/ only:\n{}", found.join("\n"));
}

/// SQL is written in `db/` (and the membership check in `access/`, and the development
/// cluster's bootstrap in `devdb.rs`) only: no other module runs a query, reaches into a scoped
/// transaction's connection, or builds a worker's scope. (Rust cannot limit `pub(crate)` items
/// of `access` to `db`, its sibling; this check does.)
#[test]
fn sql_stays_in_the_data_layer() {
    let root = src("api-server");
    let mut found = Vec::new();
    for (path, text) in files_under(&root) {
        let relative = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        if relative.starts_with("db/") || relative.starts_with("access/") || relative == "devdb.rs" {
            continue;
        }
        for needle in ["sqlx::query", ".conn()", ".parts()", "WorkerScope::claimed", "set_rls"] {
            found.extend(
                text.lines()
                    .filter(|l| !l.trim_start().starts_with("//") && l.contains(needle))
                    .map(|l| format!("{relative}: {}", l.trim())),
            );
        }
    }
    assert!(found.is_empty(), "SQL outside the data layer:\n{}", found.join("\n"));
}

/// `access` may use the error type and the client spans of its statements; `client_span`
/// itself, beneath it, uses nothing of the crate.
#[test]
fn the_access_layer_imports_only_the_error_type() {
    let graph = ModuleGraph::of_crate(&src("api-server")).unwrap();
    for module in graph.modules().filter(|m| m.first().is_some_and(|f| f == "access")) {
        for target in graph.imports(module) {
            assert!(
                target.first().is_some_and(|f| f == "access" || f == "error" || f == "client_span"),
                "{} imports {}: access is the bottom layer",
                name(module),
                name(target)
            );
        }
    }
    let beneath = graph.modules().find(|m| m.first().is_some_and(|f| f == "client_span")).expect("client_span");
    assert!(graph.imports(beneath).next().is_none(), "client_span imports nothing of the crate");
}
