//! `kiln fmt`: canonical KDL layout (kdl's autoformat, comments kept).

/// Formats a KDL document canonically. Idempotent.
pub fn format_kdl(text: &str) -> Result<String, String> {
    let mut doc: kdl::KdlDocument = text.parse().map_err(|e: kdl::KdlError| {
        e.diagnostics
            .first()
            .and_then(|d| d.message.clone())
            .unwrap_or_else(|| "invalid KDL".into())
    })?;
    doc.autoformat();
    let mut out = doc.to_string();
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}
