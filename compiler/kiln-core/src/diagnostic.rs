//! kiln's one diagnostic type. Every problem with user input — a KDL syntax
//! error, an unknown node, a dangling reference, a policy finding — becomes a
//! [`Diagnostic`]: what is wrong (message), where (labels), why and what to do
//! (help, notes).

use std::borrow::Cow;

use crate::source::{Location, Sources, Span};
use serde::Serialize;

/// `text` with every character that could act on a terminal written as an escape instead:
/// C0 controls (newline and tab included), DEL, C1 controls, and the Unicode bidirectional
/// overrides and isolates. For one-line text that may come from a spec value, a file name or a
/// policy module: it can then neither clear the screen, set a title, move the cursor, nor
/// make a line read differently from what it is.
pub fn quote_for_terminal(text: &str) -> Cow<'_, str> {
    escape_controls(text, false)
}

/// [`quote_for_terminal`] for multi-line text: newlines are kept.
pub fn sanitize_for_terminal(text: &str) -> Cow<'_, str> {
    escape_controls(text, true)
}

fn is_terminal_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

fn escape_controls(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let keep = |c: char| keep_newlines && c == '\n';
    if !text.chars().any(|c| is_terminal_control(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if keep(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_terminal_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier: a kiln check (`unknown-node`) or a policy rule (`web.debug-off`).
    pub code: String,
    /// What is wrong: lower-case, no final period.
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
    /// Why it matters, and other context ("inherited by production from base").
    pub notes: Vec<String>,
    /// The JSON pointer into the model of what a policy finding is about (what a
    /// `waive … path=` names).
    pub pointer: Option<String>,
}

impl Diagnostic {
    pub fn new(
        severity: Severity,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            code: code.into(),
            message: message.into(),
            labels: Vec::new(),
            help: None,
            notes: Vec::new(),
            pointer: None,
        }
    }

    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, code, message)
    }

    pub fn warning(code: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, code, message)
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics by position and drops exact duplicates (the same problem
/// in a layer shared by several environments is reported once).
pub fn normalize(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (a.primary_span(), &a.code, &a.message).cmp(&(b.primary_span(), &b.code, &b.message))
    });
    diagnostics.dedup();
}

/// "Did you mean …?" for an unknown name, by Jaro-Winkler similarity.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `help` text for an unknown name: the closest candidate, or the full list when short.
pub fn unknown_name_help(name: &str, what: &str, candidates: &[&str]) -> String {
    if let Some(best) = did_you_mean(name, candidates.iter().copied()) {
        return format!("did you mean `{best}`?");
    }
    if candidates.is_empty() {
        return format!("no {what} is allowed here");
    }
    let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
    if list.len() <= 12 {
        format!("expected one of {}", list.join(", "))
    } else {
        format!("see docs/spec.md for the {what}s allowed here")
    }
}

/// The name a "did you mean" help suggests: what [`unknown_name_help`] (and the reference
/// checks worded like it) put between the backticks. Editors offer it as a quick fix.
pub fn suggested_name(help: &str) -> Option<&str> {
    help.strip_prefix("did you mean `")?.strip_suffix("`?")
}

// ---------------------------------------------------------------------------
// Rendering

/// How to render diagnostics for a terminal.
#[derive(Clone, Copy, Debug)]
pub struct RenderOptions {
    pub color: bool,
    pub width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            width: 80,
        }
    }
}

/// Renders diagnostics as miette's graphical reports.
pub fn render(diagnostics: &[Diagnostic], sources: &Sources, options: RenderOptions) -> String {
    let theme = if options.color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(options.width)
        .with_links(false)
        .with_context_lines(1);
    let mut out = String::new();
    for diagnostic in diagnostics {
        let report = Report::new(diagnostic, sources);
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &report);
    }
    out
}

/// A diagnostic as miette sees it: the labels of one file with that file's text;
/// labels in other files (a preset, an included file) become related reports.
#[derive(Debug)]
struct Report {
    severity: Severity,
    code: String,
    message: String,
    source: Option<miette::NamedSource<std::sync::Arc<String>>>,
    labels: Vec<miette::LabeledSpan>,
    help: Option<String>,
    related: Vec<Report>,
}

/// The longest line (in bytes) that a diagnostic shows as a snippet. Past it, labels are
/// given as `file:line:column` only: a snippet of a megabyte-long line helps nobody, and
/// miette cannot draw a label past column 65 535.
const MAX_SNIPPET_LINE: usize = 1000;

/// Whether a diagnostic may show the text around `span`: the file is one kiln may quote, and
/// the lines it covers are short.
fn can_quote(sources: &Sources, span: Span) -> bool {
    let file = sources.get(span.file);
    if !file.quotable {
        return false;
    }
    let (start, _) = file.line_col(span.start);
    let (end, _) = file.line_col(span.end);
    end.saturating_sub(start) < 50
        && (start..=end).all(|l| file.line(l).is_none_or(|t| t.len() <= MAX_SNIPPET_LINE))
}

impl Report {
    fn new(d: &Diagnostic, sources: &Sources) -> Report {
        let mut message = sanitize_for_terminal(&d.message).into_owned();
        for note in &d.notes {
            message.push_str("\n  note: ");
            message.push_str(&sanitize_for_terminal(note));
        }
        // Labels that cannot be drawn are listed by position instead.
        for label in d.labels.iter().filter(|l| !can_quote(sources, l.span)) {
            let loc = sources.location(label.span);
            message.push_str(&format!(
                "\n  at {}:{}:{}",
                quote_for_terminal(&loc.file),
                loc.line,
                loc.column
            ));
            if !label.message.is_empty() {
                message.push_str(&format!(": {}", quote_for_terminal(&label.message)));
            }
        }
        let mut report = Report {
            severity: d.severity,
            code: quote_for_terminal(&d.code).into_owned(),
            message,
            source: None,
            labels: Vec::new(),
            help: d
                .help
                .as_deref()
                .map(|h| sanitize_for_terminal(h).into_owned()),
            related: Vec::new(),
        };
        let drawn: Vec<&Label> = d
            .labels
            .iter()
            .filter(|l| can_quote(sources, l.span))
            .collect();
        let Some(primary) = drawn.first().map(|l| l.span) else {
            return report;
        };
        let file = sources.get(primary.file);
        report.source = Some(miette::NamedSource::new(
            quote_for_terminal(&file.name),
            file.text.clone(),
        ));
        for (i, label) in drawn.into_iter().enumerate() {
            let text = (!label.message.is_empty())
                .then(|| quote_for_terminal(&label.message).into_owned());
            if label.span.file == primary.file {
                let labeled = if i == 0 {
                    miette::LabeledSpan::new_primary_with_span(text, label.span.to_miette())
                } else {
                    miette::LabeledSpan::new_with_span(text, label.span.to_miette())
                };
                report.labels.push(labeled);
            } else {
                let other = sources.get(label.span.file);
                report.related.push(Report {
                    severity: Severity::Info,
                    code: String::new(),
                    message: sanitize_for_terminal(&label.message).into_owned(),
                    source: Some(miette::NamedSource::new(
                        quote_for_terminal(&other.name),
                        other.text.clone(),
                    )),
                    labels: vec![miette::LabeledSpan::new_primary_with_span(
                        None,
                        label.span.to_miette(),
                    )],
                    help: None,
                    related: Vec::new(),
                });
            }
        }
        report
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(&self.code) as Box<dyn std::fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        (!self.labels.is_empty())
            .then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = _>>)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        (!self.related.is_empty()).then(|| {
            Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic))
                as Box<dyn Iterator<Item = _>>
        })
    }
}

// ---------------------------------------------------------------------------
// Machine form

/// A diagnostic in the documented JSON form (`--format json`).
#[derive(Clone, Debug, Serialize)]
pub struct JsonDiagnostic {
    pub severity: Severity,
    pub code: String,
    pub message: String,
    pub location: Option<Location>,
    pub labels: Vec<JsonLabel>,
    pub help: Option<String>,
    pub notes: Vec<String>,
    /// A policy finding's JSON pointer into the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JsonLabel {
    pub location: Location,
    pub message: String,
}

impl JsonDiagnostic {
    pub fn new(d: &Diagnostic, sources: &Sources) -> JsonDiagnostic {
        JsonDiagnostic {
            severity: d.severity,
            code: d.code.clone(),
            message: d.message.clone(),
            location: d.primary_span().map(|s| sources.location(s)),
            labels: d
                .labels
                .iter()
                .map(|l| JsonLabel {
                    location: sources.location(l.span),
                    message: l.message.clone(),
                })
                .collect(),
            help: d.help.clone(),
            notes: d.notes.clone(),
            pointer: d.pointer.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suggested_name_is_read_back_from_the_help() {
        let help = unknown_name_help("prodution", "environment", &["production", "staging"]);
        assert_eq!(suggested_name(&help), Some("production"));
        let help = unknown_name_help("zzz", "environment", &["production", "staging"]);
        assert_eq!(suggested_name(&help), None);
    }
}
