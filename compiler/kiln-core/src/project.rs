//! A kiln project: its spec files parsed, checked against the schema, and split
//! into the project node, environments, presets and project-wide policies.
//! Pure: files reach it through a loader closure.

use indexmap::IndexMap;
use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use crate::diagnostic::{Diagnostic, normalize, unknown_name_help};
use crate::schema;
use crate::source::{FileId, Origin as SourceOrigin, Sources, Span};
use crate::syntax::{self, Layer, Node};

/// The stdlib presets, embedded in the binary.
pub const STDLIB_PRESETS: &[(&str, &str)] = &[
    (
        "celery-beat",
        include_str!("../../../stdlib/presets/celery-beat.kdl"),
    ),
    (
        "celery-worker",
        include_str!("../../../stdlib/presets/celery-worker.kdl"),
    ),
    ("daphne", include_str!("../../../stdlib/presets/daphne.kdl")),
    (
        "django-web",
        include_str!("../../../stdlib/presets/django-web.kdl"),
    ),
    (
        "fastapi-web",
        include_str!("../../../stdlib/presets/fastapi-web.kdl"),
    ),
    (
        "nginx-site",
        include_str!("../../../stdlib/presets/nginx-site.kdl"),
    ),
    (
        "pgbouncer",
        include_str!("../../../stdlib/presets/pgbouncer.kdl"),
    ),
    (
        "postgres",
        include_str!("../../../stdlib/presets/postgres.kdl"),
    ),
    ("redis", include_str!("../../../stdlib/presets/redis.kdl")),
];

pub const ROOT_FILE: &str = "kiln.kdl";

#[derive(Debug)]
pub struct Project {
    pub sources: Sources,
    pub name: String,
    pub name_span: Option<Span>,
    pub output: String,
    pub output_span: Option<Span>,
    /// The prefix the app reads its framework settings under (`DJANGO_`).
    pub settings_prefix: Option<String>,
    pub environments: IndexMap<String, EnvDecl>,
    pub presets: BTreeMap<String, PresetDecl>,
    /// Children of project-level `policies` blocks: the lowest layer of every environment.
    pub policies: Vec<Node>,
    /// Project spec files, in load order (not the stdlib).
    pub files: Vec<FileId>,
    /// The programs `run` can start: the stdlib's and the project's.
    pub programs: crate::programs::Catalog,
}

#[derive(Clone, Debug)]
pub struct EnvDecl {
    pub name: String,
    pub name_span: Span,
    pub extends: Option<(String, Span)>,
    pub is_abstract: bool,
    /// The environment's body, without `extends` and `abstract`.
    pub body: Vec<Node>,
}

#[derive(Clone, Debug)]
pub struct PresetDecl {
    pub name: String,
    pub kind: String,
    /// The preset this one layers on (`extends=django-web`).
    pub extends: Option<(String, Span)>,
    pub body: Vec<Node>,
    pub span: Span,
    pub stdlib: bool,
}

/// A file the loader read.
#[derive(Clone, Debug)]
pub struct LoadedFile {
    pub text: String,
    /// Whether diagnostics may quote it ([`crate::source::SourceFile::quotable`]): `false`
    /// for a file reached through a symbolic link.
    pub quotable: bool,
}

impl From<String> for LoadedFile {
    fn from(text: String) -> LoadedFile {
        LoadedFile {
            text,
            quotable: true,
        }
    }
}

impl From<&str> for LoadedFile {
    fn from(text: &str) -> LoadedFile {
        LoadedFile::from(text.to_owned())
    }
}

/// Why the loader could not give a file.
#[derive(Clone, Debug)]
pub struct LoadError {
    /// The diagnostic's code: `include-missing` for a file that is not there, or the reason
    /// it was refused (`unsafe-path`, `file-too-large`, `not-utf8`).
    pub code: &'static str,
    /// Completes "cannot read `PATH`: …".
    pub reason: String,
    pub help: Option<String>,
}

impl From<String> for LoadError {
    fn from(reason: String) -> LoadError {
        LoadError {
            code: "include-missing",
            reason,
            help: None,
        }
    }
}

impl From<&str> for LoadError {
    fn from(reason: &str) -> LoadError {
        LoadError::from(reason.to_owned())
    }
}

/// Reads a project file by its path relative to the project folder.
pub type Loader<'a> = dyn FnMut(&str) -> Result<LoadedFile, LoadError> + 'a;

/// The most spec files a project may have (its `kiln.kdl` and everything it includes).
pub const MAX_FILES: usize = 20_000;
/// How deep includes may nest (`kiln.kdl` includes `a.kdl`, which includes `b.kdl`: 2).
pub const MAX_INCLUDE_DEPTH: usize = 64;
/// How long an `extends` chain may be (`production` extends `base`: 2).
pub const MAX_EXTENDS_DEPTH: usize = 64;
/// The most spec text a project may have in all, in bytes.
pub const MAX_TOTAL_BYTES: usize = 256 << 20;

/// Loads `kiln.kdl` and everything it includes, plus the stdlib presets. `loader` reads a
/// project file by its relative path: any closure giving text (a `String` or a
/// [`LoadedFile`]) or a reason (a `String` or a [`LoadError`]).
pub fn load<F, T, E>(loader: &mut F) -> (Project, Vec<Diagnostic>)
where
    F: FnMut(&str) -> Result<T, E> + ?Sized,
    T: Into<LoadedFile>,
    E: Into<LoadError>,
{
    let mut loader = |rel: &str| loader(rel).map(Into::into).map_err(Into::into);
    load_with(&mut loader)
}

fn load_with(loader: &mut Loader<'_>) -> (Project, Vec<Diagnostic>) {
    let mut sources = Sources::new();
    let mut diags = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    let mut files = Vec::new();

    match loader(ROOT_FILE) {
        Ok(root) => {
            // Breadth first, one generation of includes at a time: the files of a generation
            // are parsed in parallel (a monorepo includes a thousand environment files), then
            // their includes are read in order. Files, nodes and diagnostics come out in the
            // same order as a one-file-at-a-time walk. Each file is read once; `parent` names
            // the file that first included it, so a cycle is found by walking up.
            let mut generation = vec![(ROOT_FILE.to_owned(), root)];
            let mut parent: HashMap<String, Option<String>> =
                HashMap::from([(ROOT_FILE.to_owned(), None)]);
            let mut total = 0usize;
            let mut revisits = Vec::new();
            while !generation.is_empty() {
                let ids: Vec<(String, FileId)> = generation
                    .drain(..)
                    .map(|(name, file)| {
                        total += file.text.len();
                        let id = sources.add_with(
                            name.clone(),
                            file.text,
                            SourceOrigin::Project,
                            file.quotable,
                        );
                        (name, id)
                    })
                    .collect();
                files.extend(ids.iter().map(|&(_, file)| file));
                let parsed: Vec<(Vec<Node>, Vec<Diagnostic>)> = ids
                    .par_iter()
                    .map(|&(_, file)| syntax::parse(&sources, file))
                    .collect();
                for ((name, _), (nodes, mut d)) in ids.iter().zip(parsed) {
                    diags.append(&mut d);
                    for node in nodes {
                        if node.name == "include" {
                            for arg in &node.args {
                                let Some(rel) = arg.value.as_str() else {
                                    continue;
                                };
                                let include = Include {
                                    from: name,
                                    span: arg.span,
                                    loader: &mut *loader,
                                    parent: &mut parent,
                                    revisits: &mut revisits,
                                    total,
                                };
                                match include.read(rel) {
                                    Ok(Some((path, file))) => generation.push((path, file)),
                                    Ok(None) => {}
                                    Err(d) => diags.push(*d),
                                }
                            }
                        }
                        top.push(node);
                    }
                }
            }
            diags.extend(include_cycles(&parent, &revisits));
        }
        Err(e) => {
            diags.push(
                Diagnostic::error(
                    if e.code == "include-missing" { "no-project" } else { e.code },
                    format!("cannot read {ROOT_FILE}: {}", e.reason),
                )
                .with_help(e.help.unwrap_or_else(|| {
                    "run kiln in a folder holding kiln.kdl, or pass the folder: `kiln compile path/to/project`".to_owned()
                })),
            );
        }
    }

    schema::check(&top, schema::TOP, None, "the top level", &mut diags);

    let mut project = Project {
        sources,
        name: String::new(),
        name_span: None,
        output: "generated".to_owned(),
        output_span: None,
        settings_prefix: None,
        environments: IndexMap::new(),
        presets: BTreeMap::new(),
        policies: Vec::new(),
        files,
        programs: crate::programs::Catalog::default(),
    };
    project.programs = crate::programs::stdlib(&mut project.sources, &mut diags);

    for (name, text) in STDLIB_PRESETS {
        let file = project.sources.add(
            format!("<stdlib>/presets/{name}.kdl"),
            *text,
            SourceOrigin::Stdlib,
        );
        let (nodes, mut d) = syntax::parse(&project.sources, file);
        diags.append(&mut d);
        for node in nodes {
            add_preset(&mut project, node, true, &mut diags);
        }
    }

    let mut project_nodes = Vec::new();
    for node in top {
        match node.name.as_str() {
            "project" => project_nodes.push(node),
            "environment" => add_environment(&mut project, node, &mut diags),
            "preset" => add_preset(&mut project, node, false, &mut diags),
            "program" => {
                if let Some(def) = crate::programs::from_node(&node, true, &mut diags) {
                    project.programs.add(def, &node, &mut diags);
                }
            }
            "policies" => {
                let mut children = node.children;
                let layer = Layer::from("project");
                for c in &mut children {
                    c.set_layer(&layer);
                }
                project.policies.extend(children);
            }
            _ => {}
        }
    }

    match project_nodes.as_slice() {
        [] if project.files.is_empty() || diags.iter().any(|d| d.code == "kdl-syntax") => {}
        [] => diags.push(
            Diagnostic::error("missing-project", "no `project` node")
                .with_label(
                    Span::new(project.files[0], 0, 0),
                    "expected `project NAME { … }`",
                )
                .with_help("start kiln.kdl with `project myapp { output \"generated\" }`"),
        ),
        [p, rest @ ..] => {
            if let Some(key) = p.args.first()
                && let Some(name) = key.value.as_str()
            {
                project.name = name.to_owned();
                project.name_span = Some(key.span);
            }
            if let Some(prefix) = p.child("settings-prefix")
                && let Some(s) = prefix.args.first().and_then(|v| v.value.as_str())
            {
                project.settings_prefix = Some(s.to_owned());
            }
            if let Some(out) = p.child("output")
                && let Some(v) = out.args.first()
                && let Some(s) = v.value.as_str()
            {
                match check_output_dir(s) {
                    Ok(()) => {
                        project.output = s.trim_end_matches('/').to_owned();
                        project.output_span = Some(v.span);
                    }
                    Err(why) => diags.push(
                        Diagnostic::error("invalid-output", format!("output folder `{s}` {why}"))
                            .with_label(v.span, "not allowed")
                            .with_help(
                                "use a relative folder inside the project, such as \"generated\"",
                            ),
                    ),
                }
            }
            for extra in rest {
                diags.push(
                    Diagnostic::error("duplicate", "`project` is declared twice")
                        .with_label(extra.name_span, "declared again here")
                        .with_label(p.name_span, "first declared here")
                        .with_help("a project has one `project` node"),
                );
            }
        }
    }

    check_extends(&project, &mut diags);
    check_preset_extends(&project, &mut diags);
    normalize(&mut diags);
    (project, diags)
}

fn check_output_dir(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.starts_with('/') || s.contains('\\') {
        return Err("must be a relative path");
    }
    if s.split('/')
        .any(|seg| seg == ".." || seg == "." || seg.is_empty() && !s.ends_with('/'))
    {
        return Err("must stay inside the project folder");
    }
    Ok(())
}

/// An include of a file that was already read.
struct Revisit {
    from: String,
    to: String,
    span: Span,
}

/// The include graph's cycles (an error each, at the include that closes it) and the files
/// included again elsewhere (a warning each). Linear in the graph: Tarjan's strongly
/// connected components, iteratively, so no include structure can exhaust the stack.
fn include_cycles(
    parent: &HashMap<String, Option<String>>,
    revisits: &[Revisit],
) -> Vec<Diagnostic> {
    // Nodes, and edges: the first includes (`parent`) and the later ones.
    let mut names: Vec<&str> = parent.keys().map(String::as_str).collect();
    names.sort_unstable();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (child, from) in parent {
        if let Some(from) = from {
            next[index[from.as_str()]].push(index[child.as_str()]);
        }
    }
    for r in revisits {
        next[index[r.from.as_str()]].push(index[r.to.as_str()]);
    }
    let component = strongly_connected(&next);
    let mut size = vec![0usize; names.len()];
    for &c in &component {
        size[c] += 1;
    }
    let mut reported = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in revisits {
        let (u, v) = (index[r.from.as_str()], index[r.to.as_str()]);
        let cyclic = component[u] == component[v] && (size[component[u]] > 1 || u == v);
        if !cyclic {
            let by = parent
                .get(&r.to)
                .cloned()
                .flatten()
                .map_or(String::new(), |f| format!(" by `{f}`"));
            out.push(
                Diagnostic::warning(
                    "include-twice",
                    format!("`{}` is already included{by}; it is read once", r.to),
                )
                .with_label(r.span, "included again here")
                .with_help("remove this include"),
            );
            continue;
        }
        if !reported.insert(component[u]) {
            continue;
        }
        // A path v ⇝ u inside the component, breadth first: with the edge u → v, the cycle.
        let mut came_from: HashMap<usize, usize> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([v]);
        while let Some(at) = queue.pop_front() {
            if at == u {
                break;
            }
            for &n in &next[at] {
                if component[n] == component[u] && n != v && !came_from.contains_key(&n) {
                    came_from.insert(n, at);
                    queue.push_back(n);
                }
            }
        }
        let mut path = vec![u];
        while let Some(&prev) = path.last().and_then(|at| came_from.get(at)) {
            path.push(prev);
        }
        path.reverse();
        path.push(v);
        let chain: Vec<&str> = path.iter().map(|&i| names[i]).collect();
        out.push(
            Diagnostic::error(
                "include-cycle",
                format!("`{}` includes itself: {}", r.to, chain.join(" → ")),
            )
            .with_label(r.span, "closes the cycle")
            .with_help("remove this include; every file is read once"),
        );
    }
    out
}

/// The strongly connected component of each node (Tarjan's algorithm, without recursion).
fn strongly_connected(next: &[Vec<usize>]) -> Vec<usize> {
    const NONE: usize = usize::MAX;
    let n = next.len();
    let (mut index, mut low, mut component) = (vec![NONE; n], vec![0; n], vec![NONE; n]);
    let (mut on_stack, mut stack) = (vec![false; n], Vec::new());
    let (mut counter, mut components) = (0, 0);
    for start in 0..n {
        if index[start] != NONE {
            continue;
        }
        // (node, next edge to look at)
        let mut work = vec![(start, 0usize)];
        index[start] = counter;
        low[start] = counter;
        counter += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut edge)) = work.last_mut() {
            if let Some(&w) = next[v].get(*edge) {
                *edge += 1;
                if index[w] == NONE {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = components;
                    if w == v {
                        break;
                    }
                }
                components += 1;
            }
        }
    }
    component
}

/// One `include "REL"` argument of the file `from`, being read.
struct Include<'a, 'l> {
    from: &'a str,
    span: Span,
    loader: &'a mut Loader<'l>,
    /// Every file read so far, with the file that included it.
    parent: &'a mut HashMap<String, Option<String>>,
    /// Includes of files already read, in the order met.
    revisits: &'a mut Vec<Revisit>,
    /// Bytes of spec text read so far.
    total: usize,
}

impl Include<'_, '_> {
    /// The file to parse next, `None` when it was already read (and that is no cycle), or
    /// the diagnostic for why it cannot be.
    fn read(self, rel: &str) -> Result<Option<(String, LoadedFile)>, Box<Diagnostic>> {
        let error = |code: &str, message: String, label: &str, help: String| {
            Box::new(
                Diagnostic::error(code, message)
                    .with_label(self.span, label)
                    .with_help(help),
            )
        };
        let path = resolve_include(self.from, rel).map_err(|why| {
            error(
                "include-outside",
                format!("`{rel}` {why}"),
                "not allowed",
                "include files inside the project folder, by relative path".into(),
            )
        })?;
        if !path.ends_with(".kdl") {
            return Err(error(
                "include-not-kdl",
                format!("`{path}` is not a spec file"),
                "not a `.kdl` file",
                "kiln includes KDL spec files only, named `*.kdl`; it never reads other files as specs (an env file's text would end up in a diagnostic)".into(),
            ));
        }
        if self.parent.contains_key(&path) {
            // Read already: an edge for the cycle check that runs once everything is read.
            self.revisits.push(Revisit {
                from: self.from.to_owned(),
                to: path,
                span: self.span,
            });
            return Ok(None);
        }
        let depth = std::iter::successors(Some(self.from.to_owned()), |f| {
            self.parent.get(f).cloned().flatten()
        })
        .count();
        if depth > MAX_INCLUDE_DEPTH {
            return Err(error(
                "include-depth",
                format!("includes nest more than {MAX_INCLUDE_DEPTH} deep"),
                "one level too many",
                "include the files from fewer levels".into(),
            ));
        }
        if self.parent.len() >= MAX_FILES {
            return Err(error(
                "include-count",
                format!("the project has more than {MAX_FILES} spec files"),
                "one file too many",
                "merge spec files".into(),
            ));
        }
        match (self.loader)(&path) {
            Ok(file) if self.total + file.text.len() > MAX_TOTAL_BYTES => Err(error(
                "file-too-large",
                format!(
                    "the project's spec files hold more than {} MiB in all",
                    MAX_TOTAL_BYTES >> 20
                ),
                "this file goes over",
                "split the project, or check that the includes are the files you meant".into(),
            )),
            Ok(file) => {
                self.parent.insert(path.clone(), Some(self.from.to_owned()));
                Ok(Some((path, file)))
            }
            Err(e) => Err(error(
                e.code,
                format!("cannot read `{path}`: {}", e.reason),
                "included here",
                e.help.unwrap_or_else(|| {
                    "check the path; it is relative to the including file".to_owned()
                }),
            )),
        }
    }
}

/// Resolves `rel` against the folder of `from`, refusing paths that leave the project.
fn resolve_include(from: &str, rel: &str) -> Result<String, &'static str> {
    if rel.starts_with('/') || rel.contains('\\') {
        return Err("is not a relative path");
    }
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("leaves the project folder");
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err("names no file");
    }
    Ok(parts.join("/"))
}

fn add_environment(project: &mut Project, node: Node, diags: &mut Vec<Diagnostic>) {
    let Some(key) = node.args.first() else { return };
    let Some(name) = key.value.as_str().map(str::to_owned) else {
        return;
    };
    if !schema::is_dns_label(&name) {
        return; // reported by the schema check
    }
    if let Some(prev) = project.environments.get(&name) {
        diags.push(
            Diagnostic::error(
                "duplicate",
                format!("environment `{name}` is declared twice"),
            )
            .with_label(key.span, "declared again here")
            .with_label(prev.name_span, "first declared here")
            .with_help("rename one, or make one extend the other"),
        );
        return;
    }
    let layer = Layer::from(name.as_str());
    let mut extends = None;
    let mut is_abstract = false;
    let mut body = Vec::new();
    for mut child in node.children {
        match child.name.as_str() {
            "extends" => {
                if let Some(v) = child.args.first()
                    && let Some(s) = v.value.as_str()
                {
                    extends = Some((s.to_owned(), v.span));
                }
            }
            "abstract" => {
                is_abstract = child
                    .args
                    .first()
                    .is_some_and(|v| v.value == syntax::Value::Bool(true))
            }
            _ => {
                child.set_layer(&layer);
                body.push(child);
            }
        }
    }
    project.environments.insert(
        name.clone(),
        EnvDecl {
            name,
            name_span: key.span,
            extends,
            is_abstract,
            body,
        },
    );
}

fn add_preset(project: &mut Project, node: Node, stdlib: bool, diags: &mut Vec<Diagnostic>) {
    let Some(key) = node.args.first() else { return };
    let Some(name) = key.value.as_str().map(str::to_owned) else {
        return;
    };
    let kind_node = node.child("for");
    let kind = kind_node
        .and_then(|k| k.args.first())
        .and_then(|v| v.value.as_str())
        .map(str::to_owned);
    let Some(kind) = kind else {
        diags.push(
            Diagnostic::error("missing-value", format!("preset `{name}` does not say what it is for"))
                .with_label(node.name_span, "no `for=`")
                .with_help(format!("write `preset {name} for=service {{ … }}` (service, postgres, redis, site or pooler)")),
        );
        return;
    };
    let Some(body_schema) = schema::preset_body(&kind) else {
        let span = kind_node.map_or(node.name_span, |k| k.value_span());
        diags.push(
            Diagnostic::error("type-mismatch", format!("presets cannot be for `{kind}`"))
                .with_label(span, "unknown kind")
                .with_help(unknown_name_help(&kind, "kind", schema::PRESET_KINDS)),
        );
        return;
    };
    let extends = node
        .child("extends")
        .and_then(|e| e.args.first())
        .and_then(|v| v.value.as_str().map(|s| (s.to_owned(), v.span)));
    let body: Vec<Node> = node
        .children
        .iter()
        .filter(|c| c.name != "for" && c.name != "extends")
        .cloned()
        .collect();
    schema::check(&body, body_schema, None, &format!("a {kind} preset"), diags);
    if let Some(prev) = project.presets.get(&name)
        && !prev.stdlib
    {
        diags.push(
            Diagnostic::error("duplicate", format!("preset `{name}` is declared twice"))
                .with_label(key.span, "declared again here")
                .with_label(prev.span, "first declared here")
                .with_help("rename one of them"),
        );
        return;
    }
    let layer = Layer::from(format!("preset {name}").as_str());
    let mut body = body;
    for c in &mut body {
        c.set_layer(&layer);
    }
    project.presets.insert(
        name.clone(),
        PresetDecl {
            name,
            kind,
            extends,
            body,
            span: key.span,
            stdlib,
        },
    );
}

/// Dangling `extends` and cycles, reported once per project.
fn check_extends(project: &Project, diags: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = project.environments.keys().map(String::as_str).collect();
    for env in project.environments.values() {
        if let Some((parent, span)) = &env.extends
            && !project.environments.contains_key(parent)
        {
            diags.push(
                Diagnostic::error(
                    "unknown-reference",
                    format!(
                        "environment `{}` extends `{parent}`, which does not exist",
                        env.name
                    ),
                )
                .with_label(*span, "no such environment")
                .with_help(unknown_name_help(parent, "environment", &names)),
            );
        }
    }
    // Cycles and depth, in one walk over every chain: each environment is visited once
    // (its state memoized), so the check is linear in the number of environments whatever
    // the chains look like.
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Unvisited,
        OnPath,
        Done { depth: usize },
    }
    let index: HashMap<&str, usize> = project
        .environments
        .keys()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let envs: Vec<&EnvDecl> = project.environments.values().collect();
    let parent = |i: usize| {
        envs[i]
            .extends
            .as_ref()
            .and_then(|(p, _)| index.get(p.as_str()).copied())
    };
    let mut state = vec![State::Unvisited; envs.len()];
    let mut too_deep = Vec::new();
    for start in 0..envs.len() {
        let mut path: Vec<usize> = Vec::new();
        let mut at = Some(start);
        // Walk up until a visited environment (or the root).
        let base_depth = loop {
            match at.map(|i| (i, state[i])) {
                None => break 0,
                Some((_, State::Done { depth })) => break depth,
                Some((i, State::OnPath)) => {
                    // A cycle: the part of the path from `i` on.
                    let from = path.iter().position(|&p| p == i).expect("on the path");
                    let mut cycle: Vec<String> =
                        path[from..].iter().map(|&p| envs[p].name.clone()).collect();
                    cycle.push(envs[i].name.clone());
                    let first = envs[path[from]];
                    let mut d = Diagnostic::error(
                        "extends-cycle",
                        format!(
                            "environments extend each other in a cycle: {}",
                            cycle.join(" → ")
                        ),
                    )
                    .with_label(
                        first.extends.as_ref().expect("in a cycle").1,
                        "this `extends` closes the cycle",
                    );
                    for &p in &path[from + 1..] {
                        let e = envs[p];
                        let (parent, span) = e.extends.as_ref().expect("in a cycle");
                        d = d.with_label(*span, format!("`{}` extends `{parent}`", e.name));
                    }
                    diags.push(d.with_help("an environment can only extend one that does not, directly or not, extend it back"));
                    // Mark the cycle done so it is reported once.
                    for &p in &path {
                        state[p] = State::Done { depth: 0 };
                    }
                    path.clear();
                    break 0;
                }
                Some((i, State::Unvisited)) => {
                    state[i] = State::OnPath;
                    path.push(i);
                    at = parent(i);
                }
            }
        };
        for (n, &i) in path.iter().rev().enumerate() {
            let depth = base_depth + n + 1;
            state[i] = State::Done { depth };
            if depth == MAX_EXTENDS_DEPTH + 1 {
                too_deep.push(i);
            }
        }
    }
    for i in too_deep {
        let e = envs[i];
        let span = e.extends.as_ref().map_or(e.name_span, |(_, s)| *s);
        diags.push(
            Diagnostic::error(
                "extends-depth",
                format!(
                    "environment `{}` is more than {MAX_EXTENDS_DEPTH} `extends` away from its root",
                    e.name
                ),
            )
            .with_label(span, "one level too many")
            .with_help("extend a common base instead of chaining every environment on the previous one"),
        );
    }
}

/// A preset's `extends` must name a preset of the same kind, without cycles.
fn check_preset_extends(project: &Project, diags: &mut Vec<Diagnostic>) {
    for preset in project.presets.values() {
        let Some((parent, span)) = &preset.extends else {
            continue;
        };
        match project.presets.get(parent) {
            None => {
                let names: Vec<&str> = project
                    .presets
                    .values()
                    .filter(|p| p.kind == preset.kind)
                    .map(|p| p.name.as_str())
                    .collect();
                diags.push(
                    Diagnostic::error(
                        "unknown-reference",
                        format!(
                            "preset `{}` extends `{parent}`, which does not exist",
                            preset.name
                        ),
                    )
                    .with_label(*span, "no such preset")
                    .with_help(unknown_name_help(parent, "preset", &names)),
                );
            }
            Some(p) if p.kind != preset.kind => diags.push(
                Diagnostic::error(
                    "type-mismatch",
                    format!(
                        "preset `{}` is for a {} but extends `{parent}`, a {} preset",
                        preset.name, preset.kind, p.kind
                    ),
                )
                .with_label(*span, format!("a {} preset", p.kind))
                .with_help(format!("extend a preset made for a {}", preset.kind)),
            ),
            Some(_) if project.preset_body(&preset.name).is_none() => diags.push(
                Diagnostic::error(
                    "extends-cycle",
                    format!("preset `{}` extends itself through `{parent}`", preset.name),
                )
                .with_label(*span, "closes the cycle")
                .with_help("a preset can only extend one that does not extend it back"),
            ),
            Some(_) => {}
        }
    }
}

impl Project {
    /// A preset's body with the presets it extends merged under it; `None` on a cycle.
    pub fn preset_body(&self, name: &str) -> Option<Vec<Node>> {
        let mut chain = Vec::new();
        let mut current = self.presets.get(name)?;
        loop {
            if chain.iter().any(|p: &&PresetDecl| p.name == current.name) {
                return None;
            }
            chain.push(current);
            match &current.extends {
                Some((parent, _)) => match self.presets.get(parent) {
                    Some(p) => current = p,
                    None => break,
                },
                None => break,
            }
        }
        let schema = schema::preset_body(&chain[0].kind)?;
        let mut body = Vec::new();
        let mut ignored = Vec::new();
        for preset in chain.iter().rev() {
            crate::merge::merge(&mut body, &preset.body, schema, None, &mut ignored);
        }
        Some(body)
    }

    /// Environments that are compiled (not abstract), in declaration order.
    pub fn compiled_environments(&self) -> Vec<&str> {
        self.environments
            .values()
            .filter(|e| !e.is_abstract)
            .map(|e| e.name.as_str())
            .collect()
    }

    /// The extends chain of `env`, root first; `None` on a cycle, a dangling parent, or a
    /// chain longer than [`MAX_EXTENDS_DEPTH`] (each reported by [`load`]).
    pub fn chain(&self, env: &str) -> Option<Vec<&EnvDecl>> {
        let mut chain = Vec::new();
        let mut current = self.environments.get(env)?;
        loop {
            if chain.len() >= MAX_EXTENDS_DEPTH {
                return None;
            }
            chain.push(current);
            match &current.extends {
                Some((parent, _)) => current = self.environments.get(parent)?,
                None => break,
            }
        }
        chain.reverse();
        Some(chain)
    }
}
