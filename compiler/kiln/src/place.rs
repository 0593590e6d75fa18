//! Where a diagnostic about a model value belongs: on the user's spec line that set it,
//! through the model's provenance. Policy findings, target warnings and patch errors all
//! land this way.

use kiln_core::Diagnostic;
use kiln_core::Model;
use kiln_core::Sources;
use kiln_core::model::Origin;
use kiln_core::source::Origin as SourceOrigin;

/// Puts the primary label on the user's spec line that set the value (or its
/// nearest parent); notes where it was inherited from or which preset set it.
/// Returns `true` when the user's own spec files set the value (or, for a map
/// such as `/sites/x/headers`, any entry of it).
pub fn place(d: &mut Diagnostic, model: &Model, pointer: &str, sources: &Sources) -> bool {
    let Some((found, origins)) = model.provenance.lookup(pointer) else {
        return false;
    };
    let in_project = |o: &Origin| sources.get(o.span.file).origin == SourceOrigin::Project;
    let exact = found == pointer;
    let prefix = format!("{pointer}/");
    let mut descendants = model
        .provenance
        .map
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .peekable();
    let has_descendants = descendants.peek().is_some();
    let user_set = if exact {
        in_project(&origins[0])
    } else if has_descendants {
        descendants.any(|(_, o)| in_project(&o[0]))
    } else {
        in_project(&origins[0])
    };
    let first = &origins[0];
    if in_project(first) {
        let label = if exact || !has_descendants {
            "set here"
        } else {
            "declared here"
        };
        d.labels.insert(
            0,
            kiln_core::diagnostic::Label {
                span: first.span,
                message: label.into(),
            },
        );
        if first.layer != model.environment {
            d.notes.push(format!("inherited from `{}`", first.layer));
        }
    } else {
        // Set by a preset: blame the user's node that chose it, and show the preset line too.
        let mut parent = found;
        let user = loop {
            let Some(cut) = parent.rfind('/') else {
                break None;
            };
            parent = &parent[..cut];
            if parent.is_empty() {
                break None;
            }
            if let Some((_, o)) = model.provenance.lookup(parent)
                && in_project(&o[0])
            {
                break Some(o[0].clone());
            }
        };
        if let Some(u) = user {
            d.labels.insert(
                0,
                kiln_core::diagnostic::Label {
                    span: u.span,
                    message: "declared here".into(),
                },
            );
        }
        d.labels.push(kiln_core::diagnostic::Label {
            span: first.span,
            message: format!("set by {}", first.layer),
        });
        d.notes.push(format!(
            "the value comes from {}; override it in the spec",
            first.layer
        ));
    }
    user_set
}
