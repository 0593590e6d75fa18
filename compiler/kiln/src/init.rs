//! `kiln init`: a first spec that compiles with zero errors and is `kiln fmt`-clean
//! (tested: `tests/cli.rs::init_then_compile`).

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::cli::InitPreset;
use crate::ui::{EXIT_ERROR, EXIT_OK};

const DJANGO: &str = include_str!("../../../stdlib/init/django.kdl");
const FASTAPI: &str = include_str!("../../../stdlib/init/fastapi.kdl");

/// A valid project name from a folder name: lower-case letters, digits and `-`, starting
/// with a letter (`My Shop` → `my-shop`); `app` when nothing is left.
pub fn project_name(raw: &str) -> String {
    let mut name = String::new();
    for c in raw.chars() {
        match c {
            'a'..='z' | '0'..='9' => name.push(c),
            'A'..='Z' => name.push(c.to_ascii_lowercase()),
            _ if !name.ends_with('-') && !name.is_empty() => name.push('-'),
            _ => {}
        }
    }
    let name = name
        .trim_matches('-')
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let name: String = name.trim_start_matches('-').chars().take(40).collect();
    match name.trim_end_matches('-') {
        "" => "app".to_owned(),
        n => n.to_owned(),
    }
}

pub fn init(dir: &Path, preset: InitPreset, name: Option<&str>) -> Result<u8> {
    let folder = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let name = project_name(name.unwrap_or(&folder));
    let template = match preset {
        InitPreset::Django => DJANGO,
        InitPreset::Fastapi => FASTAPI,
    };
    let text = template
        .replace("@NAME@", &name)
        .replace("@DB@", &name.replace('-', "_"));
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("kiln: cannot create {}: {e}", dir.display());
        return Ok(EXIT_ERROR);
    }
    let path = dir.join(kiln_core::project::ROOT_FILE);
    // create_new: never over an existing spec, nor through a link planted at its name.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "kiln: {} already exists; kiln init starts a project, it does not change one",
                path.display()
            );
            return Ok(EXIT_ERROR);
        }
        Err(e) => {
            eprintln!("kiln: cannot write {}: {e}", path.display());
            return Ok(EXIT_ERROR);
        }
    };
    file.write_all(text.as_bytes())?;
    let shown = dir.display().to_string();
    let shown = match shown.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
        true => format!("'{}'", shown.replace('\'', "'\\''")),
        false => shown,
    };
    eprintln!(
        "kiln: wrote {} (project {name}: environments staging and production)\n\
         next: replace every `example` in it, then `kiln compile {shown}` and commit kiln.kdl, kiln.lock and generated/",
        path.display(),
    );
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::project_name;

    #[test]
    fn names() {
        assert_eq!(project_name("My Shop"), "my-shop");
        assert_eq!(project_name("shop_api"), "shop-api");
        assert_eq!(project_name("2fa--app"), "fa-app");
        assert_eq!(project_name("..."), "app");
        assert_eq!(project_name("Café"), "caf");
    }
}
