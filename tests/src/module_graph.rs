//! The module graph of a crate, drawn from its own source: every `use crate::…`,
//! `use super::…`, `use self::…` and inline `crate::…` path is an edge from the file's module to
//! the deepest module the path names. Test modules (`#[cfg(test)] mod … { … }`) are left out:
//! they sit inside the module they test. The check CI runs is [`ModuleGraph::cycles`]: a
//! layered crate has none.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// A module's path below the crate root (`["db", "documents"]`; the root is empty).
pub type ModulePath = Vec<String>;

/// Modules and the modules each imports.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    files: BTreeMap<ModulePath, PathBuf>,
    edges: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
}

/// `a/b` for a module path (`crate` for the root).
pub fn name(module: &[String]) -> String {
    if module.is_empty() { "crate".into() } else { module.join("/") }
}

impl ModuleGraph {
    /// Reads every `.rs` file under `src` (a crate's `src/`).
    pub fn of_crate(src: &Path) -> std::io::Result<Self> {
        let mut graph = Self::default();
        let mut sources = Vec::new();
        collect(src, src, &mut sources)?;
        for (module, path, _) in &sources {
            graph.files.insert(module.clone(), path.clone());
        }
        for (module, _, text) in &sources {
            let code = strip(text);
            let mut targets = BTreeSet::new();
            for path in paths(&code) {
                if let Some(target) = graph.resolve(module, &path)
                    && &target != module
                {
                    targets.insert(target);
                }
            }
            graph.edges.insert(module.clone(), targets);
        }
        Ok(graph)
    }

    /// The modules `module` imports.
    pub fn imports(&self, module: &[String]) -> impl Iterator<Item = &ModulePath> {
        self.edges.get(module).into_iter().flatten()
    }

    /// Every module.
    pub fn modules(&self) -> impl Iterator<Item = &ModulePath> {
        self.files.keys()
    }

    /// The deepest module `path` (as written in `module`) names.
    fn resolve(&self, module: &[String], path: &[String]) -> Option<ModulePath> {
        let (mut base, rest): (ModulePath, &[String]) = match path.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &path[1..]),
            Some("super" | "self") => {
                let mut base = module.to_vec();
                let mut rest = path;
                while let Some(first) = rest.first() {
                    match first.as_str() {
                        "super" => {
                            base.pop()?;
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
                (base, rest)
            }
            // A child module named without `self::` (2018 paths).
            Some(first) if self.files.contains_key(&[module, &[first.to_owned()]].concat()) => (module.to_vec(), path),
            _ => return None,
        };
        let mut best = base.clone();
        for segment in rest {
            base.push(segment.clone());
            if self.files.contains_key(&base) {
                best = base.clone();
            } else {
                break;
            }
        }
        self.files.contains_key(&best).then_some(best)
    }

    /// Every import cycle: the strongly connected components with more than one module (Tarjan),
    /// each sorted, named `a/b`.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let mut tarjan =
            Tarjan { graph: self, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), next: 0, found: Vec::new() };
        for module in self.files.keys() {
            if !tarjan.index.contains_key(module) {
                tarjan.visit(module);
            }
        }
        tarjan.found
    }

    /// One path of imports from `from` back to itself through `cycle` (for the message).
    pub fn loop_through(&self, cycle: &[String]) -> Vec<String> {
        let members: BTreeSet<&str> = cycle.iter().map(String::as_str).collect();
        let by_name: BTreeMap<String, &ModulePath> = self.files.keys().map(|m| (name(m), m)).collect();
        let Some(start) = cycle.first().and_then(|n| by_name.get(n)) else { return Vec::new() };
        // Breadth-first from start back to start, inside the cycle.
        let mut previous: BTreeMap<&ModulePath, &ModulePath> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([*start]);
        while let Some(at) = queue.pop_front() {
            for next in self.imports(at) {
                if !members.contains(name(next).as_str()) {
                    continue;
                }
                if next == *start {
                    let mut path = vec![name(next)];
                    let mut cursor = at;
                    while cursor != *start {
                        path.push(name(cursor));
                        cursor = previous[cursor];
                    }
                    path.push(name(start));
                    path.reverse();
                    return path;
                }
                if !previous.contains_key(next) {
                    previous.insert(next, at);
                    queue.push_back(next);
                }
            }
        }
        Vec::new()
    }
}

struct Tarjan<'a> {
    graph: &'a ModuleGraph,
    index: BTreeMap<&'a ModulePath, usize>,
    low: BTreeMap<&'a ModulePath, usize>,
    stack: Vec<&'a ModulePath>,
    next: usize,
    found: Vec<Vec<String>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, v: &'a ModulePath) {
        self.index.insert(v, self.next);
        self.low.insert(v, self.next);
        self.next += 1;
        self.stack.push(v);
        for w in self.graph.imports(v) {
            if !self.index.contains_key(w) {
                self.visit(w);
                let low = self.low[v].min(self.low[w]);
                self.low.insert(v, low);
            } else if self.stack.contains(&w) {
                let low = self.low[v].min(self.index[w]);
                self.low.insert(v, low);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                component.push(name(w));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                self.found.push(component);
            }
        }
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(ModulePath, PathBuf, String)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            let mut module: ModulePath = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|last| matches!(last.as_str(), "mod" | "lib" | "main")) {
                module.pop();
            }
            // `main.rs` is its own crate (the binary); it imports the library by name.
            if path.file_name().is_some_and(|f| f == "main.rs") {
                continue;
            }
            out.push((module, path.clone(), std::fs::read_to_string(&path)?));
        }
    }
    Ok(())
}

/// The source without comments, string contents and test modules.
fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(hashes) = raw_string_start(rest) {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += rest[body..].find(&close).map_or(rest.len(), |e| body + e + close.len());
            out.push_str("\"\"");
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            i += (j + 1).min(rest.len());
            out.push_str("\"\"");
        } else if rest.starts_with("'") && rest.len() > 2 && (rest.as_bytes()[2] == b'\'' || rest.as_bytes()[1] == b'\\') {
            // A char literal ('"', '\'', '{'); lifetimes ('a) are left alone.
            let end = rest[1..].find('\'').map_or(1, |e| e + 2);
            i += end;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    remove_test_modules(&out)
}

fn raw_string_start(rest: &str) -> Option<usize> {
    let after = rest.strip_prefix("br").or_else(|| rest.strip_prefix('r'))?;
    let hashes = after.len() - after.trim_start_matches('#').len();
    after[hashes..].starts_with('"').then_some(hashes + usize::from(rest.starts_with('b')))
}

fn remove_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        if (trimmed.starts_with("mod ") || trimmed.starts_with("pub mod "))
            && trimmed.find('{').is_some_and(|b| !trimmed[..b].contains(';'))
        {
            let open = after.find('{').unwrap_or(0);
            let mut depth = 0usize;
            let mut end = after.len();
            for (k, c) in after[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Every `crate`/`super`/`self` path in the code: use trees expanded, plus inline paths.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let Some(end) = after.find(';') else { break };
        expand(&[], after[..end].trim(), &mut found);
        rest = &after[end..];
    }
    let bytes = code.as_bytes();
    for keyword in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(keyword) {
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
                continue;
            }
            // `pub(in crate::db)` names a visibility, not an import.
            if code[..at].trim_end().ends_with("(in") {
                continue;
            }
            let tail = &code[at..];
            let len = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
            let path: Vec<String> = tail[..len].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            // A bare `super::{…}` is a use tree's head: its paths were expanded above.
            if path.len() > 1 {
                found.push(path);
            }
        }
    }
    found
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let after = bytes.get(i + word.len()).is_some_and(|b| b.is_ascii_whitespace());
        before && after
    })
}

/// Expands one use tree (`a::{b, c::{d, e as f}}`) into its paths.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    // `::name` is an external crate, never a module of this one.
    if tree.is_empty() || (prefix.is_empty() && tree.starts_with("::")) {
        return;
    }
    if let Some(open) = tree.find('{')
        && tree.ends_with('}')
    {
        let mut base = prefix.to_vec();
        base.extend(tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
        let inner = &tree[open + 1..tree.len() - 1];
        let mut depth = 0usize;
        let mut start = 0;
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    expand(&base, &inner[start..k], out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        expand(&base, &inner[start..], out);
        return;
    }
    let path = tree.split(" as ").next().unwrap_or(tree);
    let mut full = prefix.to_vec();
    full.extend(path.split("::").map(str::trim).filter(|s| !s.is_empty() && *s != "*").map(str::to_owned));
    out.push(full);
}
