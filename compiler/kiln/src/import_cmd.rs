//! `kiln import FILE`: writes the spec `kiln::import` makes of a compose file, and reports
//! what it could not map at the compose file's lines.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use kiln_core::diagnostic::Diagnostic;
use kiln_core::project::ROOT_FILE;
use kiln_core::source::Sources;

use crate::cli::Format;
use crate::ui::{EXIT_ERROR, EXIT_OK, Ui, report_diagnostics};

pub fn import(
    ui: &Ui,
    file: &Path,
    out_dir: &Path,
    name: Option<&str>,
    format: Format,
) -> Result<u8> {
    let refuse = |d: Diagnostic, sources: &Sources| -> Result<u8> {
        report_diagnostics(ui, out_dir, &[d], sources, format, &[])?;
        Ok(EXIT_ERROR)
    };
    let target = out_dir.join(ROOT_FILE);
    if target.exists() {
        let d = Diagnostic::error(
            "import-exists",
            format!("`{}` exists already", target.display()),
        )
        .with_help("import into a new folder: `kiln import docker-compose.yml --out deploy/`");
        return refuse(d, &Sources::new());
    }
    let text = match read_capped(file) {
        Ok(text) => text,
        Err(e) => {
            let d = Diagnostic::error(
                "import-invalid",
                format!("cannot read `{}`: {e:#}", file.display()),
            )
            .with_help("pass a compose file: `kiln import docker-compose.yml`");
            return refuse(d, &Sources::new());
        }
    };
    let shown = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let project = name.map(str::to_owned).unwrap_or_else(|| {
        let dir = std::fs::canonicalize(out_dir).ok().or_else(|| {
            std::fs::canonicalize(file)
                .ok()?
                .parent()
                .map(Path::to_path_buf)
        });
        dir.and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "app".into())
    });
    let imported = match kiln::import::compose(&shown, &text, &project) {
        Ok(i) => i,
        Err(failed) => {
            let (sources, d) = *failed;
            return refuse(d, &sources);
        }
    };
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    write_new(&target, imported.spec.as_bytes())?;
    report_diagnostics(
        ui,
        out_dir,
        &imported.report,
        &imported.sources,
        format,
        &[],
    )?;
    if format == Format::Human && !ui.quiet {
        let lost = imported
            .report
            .iter()
            .filter(|d| d.severity == kiln_core::Severity::Warning)
            .count();
        eprintln!(
            "kiln: wrote {} from {shown}: {lost} thing(s) it could not say (above; `--verbose` also lists what kiln writes itself)",
            target.display()
        );
    }
    Ok(EXIT_OK)
}

fn read_capped(file: &Path) -> Result<String> {
    let limit = kiln::import::MAX_COMPOSE_BYTES as u64;
    let mut bytes = Vec::new();
    std::fs::File::open(file)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        anyhow::bail!("it is larger than {limit} bytes");
    }
    String::from_utf8(bytes).context("it is not UTF-8")
}

/// Writes `path` whole or not at all, and never over an existing file: a temporary file,
/// then a hard link to the final name (which fails if the name exists).
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("kdl.kiln-tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked.with_context(|| format!("writing {}", path.display()))
}
