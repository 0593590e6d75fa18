//! A project as the editor sees it: the files on disk with the open documents' text laid
//! over them, built by the same pipeline as `kiln compile` (without writing anything), and
//! its diagnostics placed on the files they are about.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kiln::build::Build;
use kiln_core::diagnostic::{Diagnostic, Severity};
use kiln_core::project::{self, LoadedFile, ROOT_FILE};
use kiln_core::source::{Origin as SourceOrigin, Sources, Span};
use lsp_types::{DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Url};

use super::text::LineIndex;
use crate::checked::{Keep, build_checked};
use crate::disk::{MAX_SPEC_BYTES, ProjectDir, spec_too_large};

/// The folder of the project a file belongs to: the nearest folder at or above it that holds
/// a `kiln.kdl`.
pub fn project_root(file: &Path) -> Option<PathBuf> {
    file.ancestors()
        .skip(1)
        .find(|dir| dir.join(ROOT_FILE).is_file())
        .map(Path::to_path_buf)
}

/// One build of a project, kept for hover, completion and definition until the next.
pub struct Analysis {
    pub root: PathBuf,
    pub build: Build,
}

impl Analysis {
    /// Loads and builds the project at `root`, reading open documents from `open` (by
    /// absolute path) and every other file through the project folder's safe reader. With
    /// `policies`, the policies judge every environment too.
    pub fn run(
        root: &Path,
        open: &HashMap<PathBuf, String>,
        policies: bool,
    ) -> anyhow::Result<Analysis> {
        let dir = ProjectDir::open(root)?;
        let (project, diags) = {
            let mut disk = dir.loader();
            // An open document stands in for its file only where the file itself could be
            // read: a path the disk reader refuses (a link out of the project) stays refused
            // whatever the editor holds, and a buffer is held to a file's size limit.
            let mut loader = |rel: &str| {
                let on_disk = disk(rel);
                let Some(text) = open.get(&root.join(rel)) else {
                    return on_disk;
                };
                match on_disk {
                    Err(e) if e.code == "unsafe-path" => Err(e),
                    _ if text.len() as u64 > MAX_SPEC_BYTES => Err(spec_too_large(rel)),
                    on_disk => Ok(LoadedFile {
                        text: text.clone(),
                        quotable: on_disk.is_ok_and(|f| f.quotable),
                    }),
                }
            };
            project::load(&mut loader)
        };
        let build = if policies {
            build_checked(&dir, project, diags, &[], Keep::All, false)
        } else {
            kiln::build::build(project, diags, &[])
        };
        Ok(Analysis {
            root: root.to_path_buf(),
            build,
        })
    }

    pub fn sources(&self) -> &Sources {
        &self.build.project.sources
    }

    /// The file URI of a project source.
    pub fn url(&self, span: Span) -> Option<Url> {
        let file = self.sources().get(span.file);
        if file.origin != SourceOrigin::Project {
            return None;
        }
        Url::from_file_path(self.root.join(&file.name)).ok()
    }

    /// The protocol location of a span in a project file.
    pub fn location(&self, span: Span) -> Option<Location> {
        let uri = self.url(span)?;
        let text = &self.sources().get(span.file).text;
        let range = LineIndex::new(text).range(span.start as usize, span.end as usize);
        Some(Location::new(uri, range))
    }

    /// Where `path` (absolute) is among the project's sources.
    pub fn file_id(&self, path: &Path) -> Option<kiln_core::FileId> {
        let rel = path.strip_prefix(&self.root).ok()?.to_str()?;
        self.sources().find(rel)
    }

    /// Every project file's diagnostics, in protocol form. Files with none are listed too,
    /// so that the editor clears what an earlier build reported there.
    pub fn diagnostics(&self) -> BTreeMap<Url, Vec<lsp_types::Diagnostic>> {
        let mut out: BTreeMap<Url, Vec<lsp_types::Diagnostic>> = BTreeMap::new();
        for &file in &self.build.project.files {
            if let Some(uri) = self.url(Span::new(file, 0, 0)) {
                out.entry(uri).or_default();
            }
        }
        let root_file = Url::from_file_path(self.root.join(ROOT_FILE)).ok();
        for d in &self.build.diagnostics {
            let primary = d
                .labels
                .iter()
                .find_map(|l| Some((self.location(l.span)?, l)));
            let (location, label) = match primary {
                Some((location, label)) => (location, Some(label)),
                // A diagnostic about the project as a whole, or about a stdlib line only:
                // on the first line of kiln.kdl.
                None => match &root_file {
                    Some(uri) => (Location::new(uri.clone(), Default::default()), None),
                    None => continue,
                },
            };
            let related = d
                .labels
                .iter()
                .filter(|l| Some(*l) != label)
                .filter_map(|l| {
                    Some(DiagnosticRelatedInformation {
                        location: self.location(l.span)?,
                        message: l.message.clone(),
                    })
                })
                .collect::<Vec<_>>();
            let diagnostic = lsp_types::Diagnostic {
                range: location.range,
                severity: Some(severity(d.severity)),
                code: Some(NumberOrString::String(d.code.clone())),
                source: Some("kiln".into()),
                message: message(d, label.map(|l| l.message.as_str())),
                related_information: (!related.is_empty()).then_some(related),
                data: suggestion(d).map(|s| serde_json::json!({ "replace-with": s })),
                ..Default::default()
            };
            out.entry(location.uri).or_default().push(diagnostic);
        }
        out
    }
}

fn severity(s: Severity) -> DiagnosticSeverity {
    match s {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Info => DiagnosticSeverity::INFORMATION,
    }
}

/// The diagnostic as one text: what is wrong, the primary label, then help and notes.
fn message(d: &Diagnostic, label: Option<&str>) -> String {
    let mut text = d.message.clone();
    if let Some(label) = label.filter(|l| !l.is_empty()) {
        text.push_str(&format!(" ({label})"));
    }
    if let Some(help) = &d.help {
        text.push_str(&format!("\nhelp: {help}"));
    }
    for note in &d.notes {
        text.push_str(&format!("\nnote: {note}"));
    }
    text
}

/// The name a "did you mean" diagnostic suggests for its primary span.
fn suggestion(d: &Diagnostic) -> Option<String> {
    let help = d.help.as_deref()?;
    kiln_core::diagnostic::suggested_name(help).map(str::to_owned)
}
