//! The answers to an editor's questions: completion, hover, definition, quick fixes and
//! formatting. Each is a pure function of the document, the cursor's [`Context`] and the
//! project's last [`Analysis`].

use std::path::Path;

use kiln_core::model::Origin;
use kiln_core::schema::{self, NodeSpec};
use kiln_core::{FileId, Span};
use lsp_types::{
    CodeAction, CodeActionKind, CompletionItem, CompletionItemKind, CompletionTextEdit,
    Documentation, Location, MarkupContent, MarkupKind, Range, TextEdit, Url, WorkspaceEdit,
};

use super::lang::{self, Level};
use super::scan::{Context, Role};
use super::text::LineIndex;
use super::workspace::Analysis;

/// A name the project declares: an environment, a preset, or a node with a name in an
/// environment's body (`service web`, `postgres db`, `secret SECRET_KEY`, `site "…"`).
pub struct Decl {
    pub kind: String,
    pub name: String,
    pub span: Span,
    /// The environment whose body declares it.
    pub env: Option<String>,
}

/// The nodes of an environment's body whose name other nodes refer to.
const DECLARING: &[&str] = &["service", "postgres", "redis", "secret", "site"];

pub fn declarations(a: &Analysis) -> Vec<Decl> {
    let project = &a.build.project;
    let mut out = Vec::new();
    for (name, env) in &project.environments {
        out.push(Decl {
            kind: "environment".into(),
            name: name.clone(),
            span: env.name_span,
            env: None,
        });
        for node in &env.body {
            if let (true, Some(key)) = (DECLARING.contains(&node.name.as_str()), node.args.first())
            {
                out.push(Decl {
                    kind: node.name.clone(),
                    name: key.value.to_text(),
                    span: key.span,
                    env: Some(name.clone()),
                });
            }
        }
    }
    for preset in project.presets.values() {
        out.push(Decl {
            kind: "preset".into(),
            name: preset.name.clone(),
            span: preset.span,
            env: None,
        });
    }
    out
}

/// The kinds of declaration a value at the cursor refers to, when it is a reference.
fn referenced_kinds(ctx: &Context) -> Option<&'static [&'static str]> {
    let node = ctx.node.as_ref()?;
    let top = ctx.parents.is_empty();
    Some(match (&ctx.role, node.name.as_str()) {
        (Role::PropValue(p), "environment") if p == "extends" && top => &["environment"],
        (Role::PropValue(p), _) if p == "extends" || p == "preset" => &["preset"],
        (Role::PropValue(p), _) if p == "upstream" => &["service"],
        (Role::PropValue(p), _) if p == "password" => &["secret"],
        (Role::Argument(_) | Role::Entry, "uses") => &["service", "postgres", "redis"],
        (Role::Argument(_) | Role::Entry, "password") => &["secret"],
        (Role::Argument(_) | Role::Entry, "upstream") => &["service"],
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Completion

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}

fn item(label: &str, kind: CompletionItemKind, doc: Option<String>) -> CompletionItem {
    CompletionItem {
        label: label.to_owned(),
        kind: Some(kind),
        documentation: doc.map(markdown),
        ..Default::default()
    }
}

fn spec_item(spec: &NodeSpec, label: &str) -> CompletionItem {
    let kind = if spec.is_setting() {
        CompletionItemKind::PROPERTY
    } else {
        CompletionItemKind::STRUCT
    };
    CompletionItem {
        detail: Some(lang::signature(spec).replace('`', "")),
        ..item(label, kind, Some(spec.doc.to_owned()))
    }
}

/// Completions at the cursor: node names where a node goes, setting names (as `name=`) and
/// values after a node's name, and the allowed values of a setting or reference.
pub fn completion(
    ctx: &Context,
    analysis: Option<&Analysis>,
    index: &LineIndex,
) -> Vec<CompletionItem> {
    let mut items = match &ctx.role {
        Role::NodeName => match lang::level(&ctx.parents) {
            Some(Level { specs, .. }) => specs.iter().map(|s| spec_item(s, s.name)).collect(),
            None => Vec::new(),
        },
        Role::PropValue(_) | Role::Argument(_) | Role::Entry | Role::PropName => {
            let mut items = values(ctx, analysis);
            if !matches!(ctx.role, Role::PropValue(_)) {
                items.extend(properties(ctx));
            }
            items
        }
    };
    // Replace the word being typed: names hold `-`, which editors do not count as part of a
    // word.
    if let Some(word) = ctx.word.as_ref().filter(|w| !w.quoted) {
        let range = index.range(word.start, word.end);
        for item in &mut items {
            let text = item
                .insert_text
                .take()
                .unwrap_or_else(|| item.label.clone());
            item.text_edit = Some(CompletionTextEdit::Edit(TextEdit::new(range, text)));
        }
    }
    items
}

/// `name=` for each setting of the node not written yet.
fn properties(ctx: &Context) -> Vec<CompletionItem> {
    let Some(node) = &ctx.node else {
        return Vec::new();
    };
    // Written already, but for the one under the cursor (being retyped).
    let written = |name: &str| {
        node.props
            .iter()
            .any(|(k, _)| k.text == name && Some(k) != ctx.word.as_ref())
    };
    if ctx.parents.is_empty() && node.name == "preset" {
        return ["for", "extends"]
            .into_iter()
            .filter(|p| !written(p))
            .map(|p| item(&format!("{p}="), CompletionItemKind::PROPERTY, None))
            .collect();
    }
    let Some(spec) = lang::node_spec(ctx) else {
        return Vec::new();
    };
    spec.children
        .iter()
        .filter(|c| c.is_setting() && !written(c.name))
        .map(|c| CompletionItem {
            insert_text: Some(format!("{}=", c.name)),
            ..spec_item(c, &format!("{}=", c.name))
        })
        .collect()
}

/// The values the word at the cursor can take: a type's few values, or the names of what it
/// refers to.
fn values(ctx: &Context, analysis: Option<&Analysis>) -> Vec<CompletionItem> {
    let mut out: Vec<CompletionItem> = Vec::new();
    let preset_kind = ctx.parents.is_empty()
        && ctx.node.as_ref().is_some_and(|n| n.name == "preset")
        && ctx.role == Role::PropValue("for".into());
    let choices: &[&str] = match lang::value_ty(ctx) {
        _ if preset_kind => schema::PRESET_KINDS,
        Some(ty) => lang::choices(ty),
        None => &[],
    };
    out.extend(
        choices
            .iter()
            .map(|c| item(c, CompletionItemKind::ENUM_MEMBER, None)),
    );
    if let (Some(kinds), Some(a)) = (referenced_kinds(ctx), analysis) {
        let mut names: Vec<(String, String)> = declarations(a)
            .into_iter()
            .filter(|d| kinds.contains(&d.kind.as_str()))
            .map(|d| (d.name, d.kind))
            .collect();
        names.sort();
        names.dedup();
        out.extend(names.into_iter().map(|(name, kind)| CompletionItem {
            detail: Some(kind),
            ..item(&name, CompletionItemKind::REFERENCE, None)
        }));
    }
    out
}

// ---------------------------------------------------------------------------
// Hover

/// The documentation of the node, setting or value under the cursor, and its resolved
/// value in each environment with where it was set.
pub fn hover(ctx: &Context, analysis: Option<&Analysis>, file: Option<FileId>) -> Option<String> {
    let word = ctx.word.as_ref()?;
    let node_spec = lang::node_spec(ctx);
    let doc = match &ctx.role {
        Role::NodeName => {
            let level = lang::level(&ctx.parents)?;
            match level.specs.iter().find(|s| s.name == word.text) {
                Some(spec) => lang::documentation(spec),
                None => {
                    let ty = level.free?;
                    format!("`{}` — {}", word.text, schema::describe(ty))
                }
            }
        }
        Role::PropName => lang::documentation(lang::prop_spec(node_spec?, &word.text)?),
        Role::PropValue(p) => lang::documentation(lang::prop_spec(node_spec?, p)?),
        Role::Argument(_) | Role::Entry => lang::documentation(node_spec?),
    };
    let mut text = doc;
    if let (Some(a), Some(file)) = (analysis, file)
        && let Some(values) = resolved(ctx, a, file)
    {
        text.push_str("\n\n---\n\n");
        text.push_str(&values);
    }
    Some(text)
}

/// The byte range of the spec text the hovered word belongs to: a property with its value,
/// or a node's name with its arguments.
fn hovered_range(ctx: &Context) -> Option<(usize, usize)> {
    let node = ctx.node.as_ref()?;
    let word = ctx.word.as_ref()?;
    match &ctx.role {
        Role::PropName | Role::PropValue(_) => node
            .props
            .iter()
            .find(|(k, v)| k == word || v.as_ref() == Some(word))
            .map(|(k, v)| (k.start, v.as_ref().map_or(k.end, |v| v.end))),
        _ => {
            let end = node.args.last().map_or(node.name_span.1, |w| w.end);
            Some((node.name_span.0, end))
        }
    }
}

/// How many environments a hover lists values for.
const HOVER_ENVIRONMENTS: usize = 6;
/// How many model values a hover lists per environment.
const HOVER_VALUES: usize = 3;
/// The longest value a hover shows, in characters.
const HOVER_VALUE_CHARS: usize = 160;

fn resolved(ctx: &Context, a: &Analysis, file: FileId) -> Option<String> {
    let (lo, hi) = hovered_range(ctx)?;
    let touches = |o: &Origin| {
        o.span.file == file && (o.span.start as usize) < hi.max(lo + 1) && o.span.end as usize >= lo
    };
    let sources = a.sources();
    let mut lines = Vec::new();
    for env in &a.build.envs {
        let Some(model) = &env.model else { continue };
        let name = &env.name;
        let mut found: Vec<(&String, &Vec<Origin>)> = model
            .provenance
            .map
            .iter()
            .filter(|(_, origins)| origins.iter().any(touches))
            .collect();
        if found.is_empty() {
            continue;
        }
        found.sort_by_key(|(pointer, _)| pointer.len());
        // The model as JSON, only for an environment the hovered text set a value of.
        let json = serde_json::to_value(model).unwrap_or_default();
        for (pointer, origins) in found.into_iter().take(HOVER_VALUES) {
            let value = json
                .pointer(pointer)
                .map(|v| shorten(&v.to_string()))
                .unwrap_or_else(|| "—".into());
            let history: Vec<String> = origins
                .iter()
                .rev()
                .enumerate()
                .map(|(i, o)| {
                    let at = sources.location(o.span);
                    let verb = if i == 0 { "set" } else { "overridden" };
                    format!("{verb} in `{}` at {}:{}", o.layer, at.file, at.line)
                })
                .collect();
            lines.push(format!(
                "**{name}** `{pointer}` = `{value}` — {}",
                history.join(", ")
            ));
        }
        if lines.len() >= HOVER_ENVIRONMENTS * HOVER_VALUES {
            break;
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n\n"))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(HOVER_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Definition

/// Where the name under the cursor is declared: the environment or preset an `extends`
/// names, the preset a `preset=` names, the services, databases and secrets `uses`,
/// `upstream` and `password` name, the file an `include` names; otherwise every declaration
/// of that name (the same `service web` in the layers below).
pub fn definition(ctx: &Context, a: &Analysis, current: &Path) -> Vec<Location> {
    let (Some(word), Some(node)) = (&ctx.word, &ctx.node) else {
        return Vec::new();
    };
    if node.name == "include" && matches!(ctx.role, Role::Argument(_)) {
        let dir = current.parent().unwrap_or(&a.root);
        return Url::from_file_path(dir.join(&word.text))
            .ok()
            .map(|uri| Location::new(uri, Range::default()))
            .into_iter()
            .collect();
    }
    let kinds = referenced_kinds(ctx);
    let here = |d: &Decl| {
        a.file_id(current) == Some(d.span.file)
            && d.span.start as usize <= word.start
            && word.end <= d.span.end as usize
    };
    // Inside an environment, only the layers it is built from.
    let chain: Option<Vec<&str>> = ctx
        .parents
        .first()
        .filter(|f| f.name == "environment")
        .and_then(|f| a.build.project.chain(f.key()?))
        .map(|chain| chain.iter().map(|e| e.name.as_str()).collect());
    let in_chain = |d: &Decl| match (&d.env, &chain) {
        (Some(env), Some(chain)) => chain.contains(&env.as_str()),
        _ => true,
    };
    declarations(a)
        .into_iter()
        .filter(|d| d.name == word.text && !here(d) && in_chain(d))
        .filter(|d| kinds.is_none_or(|k| k.contains(&d.kind.as_str())))
        .filter_map(|d| a.location(d.span))
        .collect()
}

// ---------------------------------------------------------------------------
// Quick fixes and formatting

/// A quick fix for each diagnostic that carries a suggested name (`did you mean`).
pub fn code_actions(
    uri: &Url,
    text: &str,
    diagnostics: &[lsp_types::Diagnostic],
) -> Vec<CodeAction> {
    let index = LineIndex::new(text);
    diagnostics
        .iter()
        .filter_map(|d| {
            let name = d.data.as_ref()?.get("replace-with")?.as_str()?;
            let (start, end) = (index.offset(d.range.start), index.offset(d.range.end));
            let old = text.get(start..end)?;
            // A reference inside a string (`${db.url}`) is replaced only where the span is
            // the reference itself.
            if name.starts_with("${") != old.starts_with("${") {
                return None;
            }
            let new = if old.starts_with('"') {
                format!("{name:?}")
            } else {
                name.to_owned()
            };
            let edit = TextEdit::new(d.range, new);
            Some(CodeAction {
                title: format!("Change to `{name}`"),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![d.clone()]),
                edit: Some(WorkspaceEdit {
                    changes: Some([(uri.clone(), vec![edit])].into_iter().collect()),
                    ..Default::default()
                }),
                is_preferred: Some(true),
                ..Default::default()
            })
        })
        .collect()
}

/// The edit that makes a document canonical (`kiln fmt`); none when it already is or does
/// not parse.
pub fn format(text: &str) -> Vec<TextEdit> {
    match kiln::format::format_kdl(text) {
        Ok(formatted) if formatted != text => {
            vec![TextEdit::new(LineIndex::new(text).all(), formatted)]
        }
        _ => Vec::new(),
    }
}
