//! The crate's module layering, checked on the source itself.
//!
//! Every `.rs` file under `src/` is parsed with syn into a file-level import graph:
//!
//! - A **file** is one `.rs` file under `src/`; its module path comes from where it lies
//!   (`lib.rs` is the crate root, shown `crate`; `main.rs` is `main`, the binary, whose
//!   `k0slab::x` means `crate::x`; `a/mod.rs` is `a`; `a/b.rs` is `a::b`). Inline modules
//!   (`#[cfg(test)] mod tests { .. }`) are part of their file.
//! - An **arrow** goes from one file to another when a path written in the first names
//!   something of the second: in a `use` tree (each leaf of its groups), an expression, a type,
//!   a pattern, an attribute, or a macro body (parsed as expressions or statements, else every
//!   `a::b` path in its tokens). `crate::`, `self::`, `super::`, names in scope (child modules,
//!   items, `use`d names, globs, also those in blocks) are resolved; a path leads to the deepest
//!   module file it goes through, following imports and re-exports to where a name is defined
//!   (`crate::Error` goes through lib.rs' `pub use error::Error` to `error.rs`, and lib.rs has
//!   its own arrow to `error.rs` for that `use`). Not arrows: paths into std or other crates,
//!   `mod x;` declarations, a file's paths into itself, a lone name outside `use` that is a
//!   module (that is a local variable), names inside format strings. However many paths link
//!   two files, they make one arrow (from, to); "out" and "in" in the report count those.
//! - A **circle** is a set of two or more files each reaching all the others by arrows (a
//!   strongly connected component of the graph).
//!
//! The rules, one line per broken arrow, file or circle: (1) every file is in the layer table
//! ([`LAYERS`]) and arrows go to the same layer or a lower one; (2) no file under `commands/`
//! (mod.rs included) imports another; (3) only the top layer imports files under `commands/`
//! (arrows between command files are rule 2's); (4) no circles.
//!
//! `K0SLAB_LAYERS_REPORT=1 cargo test --test layers -- --nocapture` prints the counts, the
//! circles, each layer's files and the violations.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, Ident, Item, Token, UseTree};

/// The layers, top to bottom, each with the module path prefixes it holds. `crate` is the
/// crate root (lib.rs) alone; any other prefix holds the module and everything under it. The
/// longest prefix wins, in whole segments (`lab` does not hold `lab_json`).
const LAYERS: &[(&str, &[&str])] = &[
    ("top", &["crate", "main", "cli"]),
    ("commands", &["commands"]),
    ("workflow", &["workflow"]),
    ("lab", &["lab"]),
    (
        "domain",
        &[
            "inputs",
            "topology",
            "roles",
            "addresses",
            "network",
            "render",
            "templates",
            "kairos",
            "health",
            "drill",
            "kubeconfig",
            "image",
            "versions",
            "release",
        ],
    ),
    ("tools", &["tools"]),
    (
        "base",
        &["error", "environment", "output", "progress", "fsutil"],
    ),
];

/// The module whose files only the top layer imports, and which do not import each other.
const COMMANDS: &str = "commands";

/// How deep imports are followed before a name is given up (guards against import loops).
const MAX_DEPTH: usize = 32;

/// A module path, segment by segment; empty for the crate root.
type Module = Vec<String>;

#[test]
fn src_follows_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    let layers = Layers::new(LAYERS);
    let found = violations(&graph, &layers);
    if std::env::var("K0SLAB_LAYERS_REPORT").as_deref() == Ok("1") {
        print!("{}", report(&graph, &layers, &found));
    }
    assert!(
        found.is_empty(),
        "{} layering violations:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The file-level import graph of a source tree.
struct Graph {
    /// Every file: its module path and its path shown (`src/a/b.rs`).
    files: BTreeMap<Module, String>,
    /// One entry per arrow (from file, to file), with the paths written for it, first first.
    arrows: BTreeMap<(Module, Module), Vec<String>>,
}

/// The layer table, ready to look modules up.
struct Layers {
    names: Vec<String>,
    /// (prefix, whole module only, layer index).
    prefixes: Vec<(Module, bool, usize)>,
}

impl Layers {
    fn new(table: &[(&str, &[&str])]) -> Layers {
        let mut prefixes = Vec::new();
        for (index, (_, modules)) in table.iter().enumerate() {
            for module in *modules {
                if *module == "crate" {
                    prefixes.push((Vec::new(), true, index));
                } else {
                    prefixes.push((split(module), false, index));
                }
            }
        }
        Layers {
            names: table.iter().map(|(name, _)| name.to_string()).collect(),
            prefixes,
        }
    }

    /// The layer holding `module` (0 is the top), by the longest matching prefix.
    fn layer_of(&self, module: &[String]) -> Option<usize> {
        self.prefixes
            .iter()
            .filter(|(prefix, whole, _)| {
                module.starts_with(prefix) && (!whole || module.len() == prefix.len())
            })
            .max_by_key(|(prefix, _, _)| prefix.len())
            .map(|(_, _, layer)| *layer)
    }

    /// The prefixes of the top layer, shown.
    fn top(&self) -> String {
        let top: Vec<String> = self
            .prefixes
            .iter()
            .filter(|(_, _, layer)| *layer == 0)
            .map(|(prefix, _, _)| show(prefix))
            .collect();
        top.join(", ")
    }
}

fn split(module: &str) -> Module {
    module.split("::").map(str::to_string).collect()
}

/// A module path as written in the table and the report: `crate` for the root.
fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

fn is_command(module: &[String]) -> bool {
    module.first().map(String::as_str) == Some(COMMANDS)
}

/// Parses every `.rs` file under `src` and links them by the paths they write.
fn graph(src: &Path) -> Graph {
    let mut sources = Vec::new();
    list_sources(src, src, &mut sources);
    let mut index = Index::default();
    let mut parsed = Vec::new();
    for (shown, module) in sources {
        let text =
            fs::read_to_string(src.join(&shown)).unwrap_or_else(|err| panic!("src/{shown}: {err}"));
        let file = syn::parse_file(&text).unwrap_or_else(|err| panic!("src/{shown}: {err}"));
        if let Some((name, parent)) = module.split_last() {
            let parent = index.scopes.entry(parent.to_vec()).or_default();
            parent.children.insert(name.clone());
        }
        index.collect(&file.items, &module);
        index.files.insert(module.clone());
        parsed.push((format!("src/{shown}"), module, file));
    }
    let mut graph = Graph {
        files: BTreeMap::new(),
        arrows: BTreeMap::new(),
    };
    for (shown, module, file) in &parsed {
        let mut walker = Walker {
            index: &index,
            module: module.clone(),
            blocks: Vec::new(),
            found: Vec::new(),
        };
        walker.visit_file(file);
        for (written, target) in walker.found {
            let to = index.file_of(&target);
            if to != *module {
                let paths = graph.arrows.entry((module.clone(), to)).or_default();
                if !paths.contains(&written) {
                    paths.push(written);
                }
            }
        }
        graph.files.insert(module.clone(), shown.clone());
    }
    graph
}

/// Every `.rs` file under `dir`, as (path relative to `src`, module path), sorted.
fn list_sources(src: &Path, dir: &Path, out: &mut Vec<(String, Module)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            list_sources(src, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path.strip_prefix(src).expect("under src");
            let shown: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let mut module: Module = shown.clone();
            let last = module.pop().expect("a file name");
            let stem = last.trim_end_matches(".rs");
            match (module.is_empty(), stem) {
                (true, "lib") => {}
                (_, "mod") => {}
                _ => module.push(stem.to_string()),
            }
            out.push((shown.join("/"), module));
        }
    }
}

/// The names a module or a block defines or imports.
#[derive(Default)]
struct Scope {
    /// Child modules (files and inline `mod x { .. }`).
    children: BTreeSet<String>,
    /// Items defined here (functions, types, constants, traits, macros).
    items: BTreeSet<String>,
    /// Names imported by `use`, with the path as written.
    imports: BTreeMap<String, Vec<String>>,
    /// Paths glob-imported (`use x::*`), as written.
    globs: Vec<Vec<String>>,
}

impl Scope {
    /// Adds the names `items` define or import.
    fn add(&mut self, items: &[&Item]) {
        for item in items {
            let name = match item {
                Item::Mod(m) => {
                    self.children.insert(m.ident.unraw().to_string());
                    continue;
                }
                Item::Use(u) => {
                    if u.leading_colon.is_none() {
                        for import in flatten(&u.tree) {
                            match import.kind {
                                Bind::Name(name) => {
                                    self.imports.insert(name, import.path);
                                }
                                Bind::Glob => self.globs.push(import.path),
                                Bind::Nothing => {}
                            }
                        }
                    }
                    continue;
                }
                Item::Fn(f) => &f.sig.ident,
                Item::Struct(s) => &s.ident,
                Item::Enum(e) => &e.ident,
                Item::Union(u) => &u.ident,
                Item::Const(c) => &c.ident,
                Item::Static(s) => &s.ident,
                Item::Type(t) => &t.ident,
                Item::Trait(t) => &t.ident,
                Item::TraitAlias(t) => &t.ident,
                Item::Macro(m) => match &m.ident {
                    Some(ident) => ident,
                    None => continue,
                },
                _ => continue,
            };
            self.items.insert(name.unraw().to_string());
        }
    }
}

/// How a `use` leaf binds its path.
enum Bind {
    Name(String),
    Glob,
    /// `use x as _;`
    Nothing,
}

/// One leaf of a `use` tree: the whole path (`self` leaves dropped) and what it binds.
struct Import {
    path: Vec<String>,
    kind: Bind,
}

/// The leaves of a `use` tree, groups and `self` leaves expanded.
fn flatten(tree: &UseTree) -> Vec<Import> {
    fn walk(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<Import>) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.unraw().to_string());
                walk(&p.tree, prefix, out);
                prefix.pop();
            }
            UseTree::Name(n) if n.ident == "self" => out.push(Import {
                path: prefix.clone(),
                kind: Bind::Name(prefix.last().cloned().unwrap_or_default()),
            }),
            UseTree::Name(n) => {
                let name = n.ident.unraw().to_string();
                let mut path = prefix.clone();
                path.push(name.clone());
                out.push(Import {
                    path,
                    kind: Bind::Name(name),
                });
            }
            UseTree::Rename(r) => {
                let mut path = prefix.clone();
                if r.ident != "self" {
                    path.push(r.ident.unraw().to_string());
                }
                let kind = if r.rename == "_" {
                    Bind::Nothing
                } else {
                    Bind::Name(r.rename.unraw().to_string())
                };
                out.push(Import { path, kind });
            }
            UseTree::Glob(_) => out.push(Import {
                path: prefix.clone(),
                kind: Bind::Glob,
            }),
            UseTree::Group(g) => {
                for tree in &g.items {
                    walk(tree, prefix, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

/// What a name or path stands for.
enum Name {
    /// Something of this crate, by its full path (module path, then maybe an item's name).
    Internal(Module),
    /// Something of std or another crate.
    External,
}

/// Where a full path ends: the deepest module it goes through (and whether its next segment
/// is a name that module has), or outside the crate.
enum Found {
    Module(Module, bool),
    External,
}

/// The crate's modules (inline ones too) and what each defines and imports.
#[derive(Default)]
struct Index {
    scopes: BTreeMap<Module, Scope>,
    /// The modules that are files.
    files: BTreeSet<Module>,
}

impl Index {
    /// Records the names `items` of `module` define and import, inline modules included.
    fn collect(&mut self, items: &[Item], module: &Module) {
        let all: Vec<&Item> = items.iter().collect();
        self.scopes.entry(module.clone()).or_default().add(&all);
        for item in items {
            if let Item::Mod(m) = item {
                if let Some((_, inner)) = &m.content {
                    let mut child = module.clone();
                    child.push(m.ident.unraw().to_string());
                    self.collect(inner, &child);
                }
            }
        }
    }

    /// The file holding `module`: the deepest file module it is in.
    fn file_of(&self, module: &[String]) -> Module {
        (0..=module.len())
            .rev()
            .map(|len| module[..len].to_vec())
            .find(|prefix| self.files.contains(prefix))
            .unwrap_or_default()
    }

    /// The full path of `path` as written in `module` (inside `blocks`), or `None` when its
    /// first segment names nothing of the crate (a generic, a local, `Self`).
    fn absolute(&self, path: &[String], module: &[String], blocks: &[Scope]) -> Option<Name> {
        self.absolute_at(path, module, blocks, 0)
    }

    fn absolute_at(
        &self,
        path: &[String],
        module: &[String],
        blocks: &[Scope],
        depth: usize,
    ) -> Option<Name> {
        let (first, mut rest) = path.split_first()?;
        let root: Module = match module.first() {
            Some(first) if first == "main" => vec!["main".to_string()],
            _ => Vec::new(),
        };
        let mut base: Module = match first.as_str() {
            "crate" => root,
            "k0slab" if !root.is_empty() => Vec::new(),
            "self" => module.to_vec(),
            "super" => {
                let mut base = module.to_vec();
                base.pop();
                while let Some((next, tail)) = rest.split_first() {
                    if next != "super" {
                        break;
                    }
                    base.pop();
                    rest = tail;
                }
                base
            }
            "Self" => return None,
            name => match self.lookup(name, module, blocks, depth + 1)? {
                Name::Internal(base) => base,
                Name::External => return Some(Name::External),
            },
        };
        base.extend(rest.iter().cloned());
        Some(Name::Internal(base))
    }

    /// What `name` stands for in `module` inside `blocks` (innermost last), or `None` when
    /// nothing of the crate is called so there.
    fn lookup(
        &self,
        name: &str,
        module: &[String],
        blocks: &[Scope],
        depth: usize,
    ) -> Option<Name> {
        if depth > MAX_DEPTH {
            return None;
        }
        for inner in (0..blocks.len()).rev() {
            let found = self.lookup_in(&blocks[inner], name, module, &blocks[..=inner], depth);
            if found.is_some() {
                return found;
            }
        }
        let scope = self.scopes.get(module)?;
        self.lookup_in(scope, name, module, &[], depth)
    }

    fn lookup_in(
        &self,
        scope: &Scope,
        name: &str,
        module: &[String],
        blocks: &[Scope],
        depth: usize,
    ) -> Option<Name> {
        if scope.children.contains(name) || scope.items.contains(name) {
            let mut path = module.to_vec();
            path.push(name.to_string());
            return Some(Name::Internal(path));
        }
        if let Some(path) = scope.imports.get(name) {
            return Some(
                self.absolute_at(path, module, blocks, depth + 1)
                    .unwrap_or(Name::External),
            );
        }
        for glob in &scope.globs {
            if let Some(Name::Internal(mut path)) =
                self.absolute_at(glob, module, blocks, depth + 1)
            {
                path.push(name.to_string());
                match self.walk(&path, depth + 1) {
                    Found::Module(_, true) => return Some(Name::Internal(path)),
                    Found::External => return Some(Name::External),
                    Found::Module(_, false) => {}
                }
            }
        }
        None
    }

    /// Where the full path `path` leads, following imports and re-exports.
    fn walk(&self, path: &[String], depth: usize) -> Found {
        let mut module = Vec::new();
        for (at, segment) in path.iter().enumerate() {
            let Some(scope) = self.scopes.get(&module) else {
                return Found::Module(module, false);
            };
            if depth > MAX_DEPTH {
                return Found::Module(module, false);
            }
            if scope.children.contains(segment) {
                module.push(segment.clone());
                continue;
            }
            if scope.items.contains(segment) {
                return Found::Module(module, true);
            }
            if let Some(import) = scope.imports.get(segment) {
                return match self.absolute_at(import, &module, &[], depth + 1) {
                    Some(Name::Internal(mut target)) => {
                        target.extend(path[at + 1..].iter().cloned());
                        self.walk(&target, depth + 1)
                    }
                    _ => Found::External,
                };
            }
            for glob in &scope.globs {
                if let Some(Name::Internal(mut target)) =
                    self.absolute_at(glob, &module, &[], depth + 1)
                {
                    target.extend(path[at..].iter().cloned());
                    match self.walk(&target, depth + 1) {
                        Found::Module(_, false) => {}
                        found => return found,
                    }
                }
            }
            return Found::Module(module, false);
        }
        Found::Module(module, true)
    }
}

/// Walks one file, noting every path that names something of the crate and where it leads.
struct Walker<'a> {
    index: &'a Index,
    /// The module being walked (the file's, or an inline module in it).
    module: Module,
    /// The blocks around the code being walked, innermost last, with their `use`s and items.
    blocks: Vec<Scope>,
    /// (path as written, module it leads to).
    found: Vec<(String, Module)>,
}

impl Walker<'_> {
    /// Notes `path` (as written) when it leads into the crate. A lone name that is a module
    /// is a value (a variable) outside `use` trees, so it does not count there.
    fn note(&mut self, path: &[String], written: String, in_use: bool) {
        let Some(Name::Internal(full)) = self.index.absolute(path, &self.module, &self.blocks)
        else {
            return;
        };
        if let Found::Module(target, _) = self.index.walk(&full, 0) {
            if in_use || path.len() > 1 || target != full {
                self.found.push((written, target));
            }
        }
    }

    /// Walks the paths in a macro's tokens: as expressions or statements when they parse,
    /// else every `a::b` path in them.
    fn walk_tokens(&mut self, tokens: &syn::Macro) {
        let exprs = Punctuated::<Expr, Token![,]>::parse_terminated;
        if let Ok(exprs) = exprs.parse2(tokens.tokens.clone()) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
        } else if let Ok(stmts) = syn::Block::parse_within.parse2(tokens.tokens.clone()) {
            for stmt in &stmts {
                self.visit_stmt(stmt);
            }
        } else {
            let mut paths = Vec::new();
            let scan = |input: ParseStream| scan_paths(input, &mut paths);
            if scan.parse2(tokens.tokens.clone()).is_ok() {
                for path in paths {
                    let written = path.join("::");
                    self.note(&path, written, false);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_item_mod(&mut self, node: &'ast syn::ItemMod) {
        self.module.push(node.ident.unraw().to_string());
        let outer = std::mem::take(&mut self.blocks);
        visit::visit_item_mod(self, node);
        self.blocks = outer;
        self.module.pop();
    }

    fn visit_block(&mut self, node: &'ast syn::Block) {
        let mut scope = Scope::default();
        let items: Vec<&Item> = node
            .stmts
            .iter()
            .filter_map(|stmt| match stmt {
                syn::Stmt::Item(item) => Some(item),
                _ => None,
            })
            .collect();
        scope.add(&items);
        self.blocks.push(scope);
        visit::visit_block(self, node);
        self.blocks.pop();
    }

    fn visit_item_use(&mut self, node: &'ast syn::ItemUse) {
        if node.leading_colon.is_some() {
            return;
        }
        for import in flatten(&node.tree) {
            let mut written = import.path.join("::");
            if let Bind::Glob = import.kind {
                written.push_str("::*");
            }
            self.note(&import.path, written, true);
        }
    }

    fn visit_path(&mut self, node: &'ast syn::Path) {
        if node.leading_colon.is_none() {
            let path: Vec<String> = node
                .segments
                .iter()
                .map(|segment| segment.ident.unraw().to_string())
                .collect();
            let written = path.join("::");
            self.note(&path, written, false);
        }
        visit::visit_path(self, node);
    }

    fn visit_macro(&mut self, node: &'ast syn::Macro) {
        self.visit_path(&node.path);
        self.walk_tokens(node);
    }
}

/// Collects the paths of two or more segments in `input` (`$crate` counts as `crate`), not
/// those after a `.` (methods, fields), groups included.
fn scan_paths(input: ParseStream, out: &mut Vec<Vec<String>>) -> syn::Result<()> {
    let mut after_dot = false;
    while !input.is_empty() {
        let dot = input.peek(Token![.]) && !input.peek(Token![..]);
        if input.peek(syn::token::Paren) {
            let inner;
            syn::parenthesized!(inner in input);
            scan_paths(&inner, out)?;
        } else if input.peek(syn::token::Bracket) {
            let inner;
            syn::bracketed!(inner in input);
            scan_paths(&inner, out)?;
        } else if input.peek(syn::token::Brace) {
            let inner;
            syn::braced!(inner in input);
            scan_paths(&inner, out)?;
        } else if input.peek(Token![$]) && input.peek2(Token![crate]) {
            input.parse::<Token![$]>()?;
            continue;
        } else if input.peek(Ident::peek_any) {
            let mut path = vec![input.call(Ident::parse_any)?.unraw().to_string()];
            while input.peek(Token![::]) && input.peek3(Ident::peek_any) {
                input.parse::<Token![::]>()?;
                path.push(input.call(Ident::parse_any)?.unraw().to_string());
            }
            if !after_dot && path.len() > 1 {
                out.push(path);
            }
        } else {
            input.step(|cursor| match cursor.token_tree() {
                Some((_, next)) => Ok(((), next)),
                None => Err(cursor.error("no token")),
            })?;
        }
        after_dot = dot;
    }
    Ok(())
}

/// The broken rules, one line each: files not in the table, then arrows breaking rules 1 to
/// 3, then circles (rule 4).
fn violations(graph: &Graph, layers: &Layers) -> Vec<String> {
    let mut out = Vec::new();
    for (module, file) in &graph.files {
        if layers.layer_of(module).is_none() {
            out.push(format!(
                "rule 1 (layers): {file} ({}) is not in the layer table",
                show(module)
            ));
        }
    }
    let arrow = |from: &Module, to: &Module, paths: &[String]| {
        let more = match paths.len() {
            1 => String::new(),
            n => format!(" (+{} more)", n - 1),
        };
        format!(
            "{} -> {} via `{}`{more}",
            graph.files[from], graph.files[to], paths[0]
        )
    };
    for ((from, to), paths) in &graph.arrows {
        if let (Some(up), Some(down)) = (layers.layer_of(to), layers.layer_of(from)) {
            if up < down {
                out.push(format!(
                    "rule 1 (layers): {}: {} imports {}, a layer above",
                    arrow(from, to, paths),
                    layers.names[down],
                    layers.names[up]
                ));
            }
        }
    }
    for ((from, to), paths) in &graph.arrows {
        if is_command(from) && is_command(to) {
            out.push(format!(
                "rule 2 (commands): {}: a command imports another command",
                arrow(from, to, paths)
            ));
        }
    }
    for ((from, to), paths) in &graph.arrows {
        if is_command(to) && !is_command(from) && layers.layer_of(from) != Some(0) {
            out.push(format!(
                "rule 3 (only the top imports commands): {}: only {} may import {COMMANDS}",
                arrow(from, to, paths),
                layers.top()
            ));
        }
    }
    for circle in circles(graph) {
        let files: Vec<&str> = circle.iter().map(|m| graph.files[m].as_str()).collect();
        out.push(format!(
            "rule 4 (circles): a circle of {} files: {}",
            files.len(),
            files.join(", ")
        ));
    }
    out
}

/// The circles of the graph (strongly connected components of two or more files, by
/// Tarjan's algorithm), each sorted, biggest first.
fn circles(graph: &Graph) -> Vec<Vec<Module>> {
    struct Tarjan<'a> {
        next: Vec<Vec<usize>>,
        order: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        counter: usize,
        modules: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, node: usize) {
            self.order[node] = Some(self.counter);
            self.low[node] = self.counter;
            self.counter += 1;
            self.stack.push(node);
            self.on_stack[node] = true;
            for next in self.next[node].clone() {
                match self.order[next] {
                    None => {
                        self.visit(next);
                        self.low[node] = self.low[node].min(self.low[next]);
                    }
                    Some(order) if self.on_stack[next] => {
                        self.low[node] = self.low[node].min(order);
                    }
                    Some(_) => {}
                }
            }
            if Some(self.low[node]) == self.order[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack[member] = false;
                    component.push(self.modules[member].clone());
                    if member == node {
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
    let modules: Vec<&Module> = graph.files.keys().collect();
    let at: BTreeMap<&Module, usize> = modules.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut next = vec![Vec::new(); modules.len()];
    for (from, to) in graph.arrows.keys() {
        next[at[from]].push(at[to]);
    }
    let count = modules.len();
    let mut tarjan = Tarjan {
        next,
        order: vec![None; count],
        low: vec![0; count],
        stack: Vec::new(),
        on_stack: vec![false; count],
        counter: 0,
        modules,
        found: Vec::new(),
    };
    for node in 0..count {
        if tarjan.order[node].is_none() {
            tarjan.visit(node);
        }
    }
    let mut found = tarjan.found;
    found.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    found
}

/// The counts the refactor is measured by, and the violations.
fn report(graph: &Graph, layers: &Layers, violations: &[String]) -> String {
    let circles = circles(graph);
    let mut out = String::new();
    let sizes: Vec<String> = circles.iter().map(|c| c.len().to_string()).collect();
    out += &format!("files: {}\n", graph.files.len());
    out += &format!("arrows: {}\n", graph.arrows.len());
    out += &format!("circles: {} (sizes: {})\n", circles.len(), sizes.join(", "));
    for (n, circle) in circles.iter().enumerate() {
        let members: Vec<String> = circle.iter().map(|m| show(m)).collect();
        out += &format!(
            "  circle {} ({} files): {}\n",
            n + 1,
            circle.len(),
            members.join(" ")
        );
    }
    let mut by_layer: BTreeMap<Option<usize>, Vec<&Module>> = BTreeMap::new();
    for module in graph.files.keys() {
        by_layer
            .entry(layers.layer_of(module))
            .or_default()
            .push(module);
    }
    let out_of = |module: &Module| {
        graph
            .arrows
            .keys()
            .filter(|(from, _)| from == module)
            .count()
    };
    let into = |module: &Module| graph.arrows.keys().filter(|(_, to)| to == module).count();
    for (layer, modules) in by_layer
        .iter()
        .filter(|(l, _)| l.is_some())
        .chain(by_layer.iter().filter(|(l, _)| l.is_none()))
    {
        let name = match layer {
            Some(layer) => format!("layer {}", layers.names[*layer]),
            None => "not in the layer table".to_string(),
        };
        out += &format!("{name} ({} files; arrows out, in):\n", modules.len());
        for module in modules {
            out += &format!(
                "  {:<28} {:>3} {:>3}\n",
                show(module),
                out_of(module),
                into(module)
            );
        }
    }
    out += &format!("violations: {}\n", violations.len());
    for line in violations {
        out += &format!("  {line}\n");
    }
    out
}

/// The checker on small source trees written to a temporary directory.
mod synthetic {
    use super::*;

    /// Writes `files` (path under `src`, text) and builds their graph.
    fn tree(files: &[(&str, &str)]) -> Graph {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let src = dir.path().join("src");
        for (path, text) in files {
            let path = src.join(path);
            fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
            fs::write(path, text).expect("a file");
        }
        graph(&src)
    }

    /// The arrows, shown `from -> to`.
    fn arrows(graph: &Graph) -> Vec<String> {
        graph
            .arrows
            .keys()
            .map(|(from, to)| format!("{} -> {}", show(from), show(to)))
            .collect()
    }

    fn check(graph: &Graph) -> Vec<String> {
        violations(graph, &Layers::new(LAYERS))
    }

    #[test]
    fn an_upward_import_is_caught() {
        let graph = tree(&[
            ("lib.rs", "pub mod commands;\npub mod inputs;\n"),
            ("commands/mod.rs", "pub struct Context;\n"),
            (
                "inputs.rs",
                "pub fn f(_: &crate::commands::Context) -> String { format!(\"\") }\n",
            ),
        ]);
        assert_eq!(arrows(&graph), ["inputs -> commands"]);
        assert_eq!(
            check(&graph),
            [
                "rule 1 (layers): src/inputs.rs -> src/commands/mod.rs via \
                 `crate::commands::Context`: domain imports commands, a layer above",
                "rule 3 (only the top imports commands): src/inputs.rs -> \
                 src/commands/mod.rs via `crate::commands::Context`: only crate, main, cli \
                 may import commands",
            ]
        );
    }

    #[test]
    fn a_command_importing_another_is_caught() {
        let graph = tree(&[
            ("lib.rs", "pub mod commands;\n"),
            ("commands/mod.rs", "pub mod other;\npub mod up;\n"),
            ("commands/other.rs", "pub fn f() {}\n"),
            ("commands/up.rs", "pub fn run() { super::other::f() }\n"),
        ]);
        assert_eq!(arrows(&graph), ["commands::up -> commands::other"]);
        assert_eq!(
            check(&graph),
            [
                "rule 2 (commands): src/commands/up.rs -> src/commands/other.rs via \
              `super::other::f`: a command imports another command"
            ]
        );
    }

    #[test]
    fn a_circle_through_a_re_export_is_caught() {
        let graph = tree(&[
            ("lib.rs", "pub mod a;\n"),
            ("a/mod.rs", "mod b;\npub use b::X;\npub struct Y;\n"),
            ("a/b.rs", "pub struct X(super::Y);\n"),
        ]);
        assert_eq!(arrows(&graph), ["a -> a::b", "a::b -> a"]);
        let layers = Layers::new(&[("all", &["crate", "a"])]);
        assert_eq!(
            violations(&graph, &layers),
            ["rule 4 (circles): a circle of 2 files: src/a/mod.rs, src/a/b.rs"]
        );
    }

    #[test]
    fn nested_use_groups_are_followed() {
        let graph = tree(&[
            (
                "lib.rs",
                "pub mod error;\npub mod network;\npub mod tools;\n",
            ),
            ("error.rs", "pub struct Error;\n"),
            ("network/mod.rs", "pub mod assign;\n"),
            ("network/assign.rs", "pub fn f() {}\n"),
            ("tools.rs", "use crate::{network::{assign}, error};\n"),
        ]);
        assert_eq!(
            arrows(&graph),
            ["tools -> error", "tools -> network::assign"]
        );
        assert_eq!(
            check(&graph),
            [
                "rule 1 (layers): src/tools.rs -> src/network/assign.rs via \
              `crate::network::assign`: tools imports domain, a layer above"
            ]
        );
    }

    #[test]
    fn crate_error_leads_through_the_root_re_export() {
        let graph = tree(&[
            (
                "lib.rs",
                "pub mod error;\npub mod inputs;\npub use error::{Error, Result};\n",
            ),
            (
                "error.rs",
                "pub enum Error { Bad }\npub type Result<T> = std::result::Result<T, Error>;\n",
            ),
            (
                "inputs.rs",
                "pub fn f() -> crate::Result<()> { Err(crate::Error::Bad) }\n",
            ),
            (
                "main.rs",
                "fn main() { let _ = matches!(k0slab::inputs::f(), Err(k0slab::Error::Bad)); }\n",
            ),
        ]);
        assert_eq!(
            arrows(&graph),
            [
                "crate -> error",
                "inputs -> error",
                "main -> error",
                "main -> inputs"
            ]
        );
        assert_eq!(
            graph.arrows[&(split("inputs"), split("error"))],
            ["crate::Result", "crate::Error::Bad"]
        );
        assert_eq!(check(&graph), Vec::<String>::new());
    }

    #[test]
    fn a_relative_use_of_a_child_module_is_internal() {
        let graph = tree(&[
            ("lib.rs", "pub mod network;\n"),
            (
                "network/mod.rs",
                "mod leases;\nuse leases::Lease;\nuse serde::Serialize;\n",
            ),
            ("network/leases.rs", "pub struct Lease;\n"),
        ]);
        assert_eq!(arrows(&graph), ["network -> network::leases"]);
        assert_eq!(
            graph.arrows[&(split("network"), split("network::leases"))],
            ["leases::Lease"]
        );
    }

    #[test]
    fn a_file_outside_the_table_is_caught() {
        let graph = tree(&[
            ("lib.rs", "pub mod lab;\npub mod lab_json;\n"),
            ("lab.rs", "pub fn f() {}\n"),
            ("lab_json.rs", "pub fn g() { crate::lab::f() }\n"),
        ]);
        assert_eq!(
            check(&graph),
            ["rule 1 (layers): src/lab_json.rs (lab_json) is not in the layer table"]
        );
    }

    #[test]
    fn a_clean_tree_passes() {
        let graph = tree(&[
            (
                "lib.rs",
                "pub mod cli;\npub mod commands;\npub mod error;\npub mod network;\n\
                 pub mod workflow;\npub use error::Error;\n\
                 pub fn run() -> Result<(), Error> {\n    use commands::*;\n    up::run(&workflow::Context)\n}\n",
            ),
            ("main.rs", "fn main() { let _ = k0slab::run(); }\n"),
            ("cli.rs", "pub struct Cli;\n"),
            ("commands/mod.rs", "pub mod up;\n"),
            (
                "commands/up.rs",
                "use crate::workflow::Context;\n\
                 pub fn run(_: &Context) -> crate::error::Result { crate::network::probe() }\n",
            ),
            ("workflow.rs", "pub struct Context;\n"),
            (
                "network/mod.rs",
                "pub fn probe() -> crate::error::Result { Ok(()) }\n\
                 #[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n    fn p() { probe().unwrap(); }\n}\n",
            ),
            (
                "error.rs",
                "pub struct Error;\npub type Result = std::result::Result<(), Error>;\n",
            ),
        ]);
        assert_eq!(
            arrows(&graph),
            [
                "crate -> commands",
                "crate -> commands::up",
                "crate -> error",
                "crate -> workflow",
                "commands::up -> error",
                "commands::up -> network",
                "commands::up -> workflow",
                "main -> crate",
                "network -> error",
            ]
        );
        assert_eq!(check(&graph), Vec::<String>::new());
        assert!(circles(&graph).is_empty());
    }

    #[test]
    fn a_circle_of_three_is_one_circle() {
        let graph = tree(&[
            (
                "lib.rs",
                "pub mod error;\npub mod fsutil;\npub mod output;\n",
            ),
            ("error.rs", "pub fn e() { crate::fsutil::f() }\n"),
            ("fsutil.rs", "pub fn f() { crate::output::o() }\n"),
            ("output.rs", "pub fn o() { crate::error::e() }\n"),
        ]);
        assert_eq!(
            check(&graph),
            ["rule 4 (circles): a circle of 3 files: src/error.rs, src/fsutil.rs, src/output.rs"]
        );
    }
}
