//! `kiln`: the dispatch of each command to its file.

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::ui::{EXIT_OK, Ui, out};

pub fn run(cli: Cli) -> Result<u8> {
    let ui = Ui::new(cli.color, cli.verbose, cli.quiet);
    match cli.command {
        Command::Compile {
            project,
            envs,
            check,
            format,
        } => crate::compile::compile(&ui, &project.dir, &envs, check, format),
        Command::Diff {
            project,
            envs,
            format,
            base,
            exit_code,
            max_chars,
        } => crate::diff::diff(
            &ui,
            &project.dir,
            &envs,
            crate::diff::DiffOptions {
                format,
                base,
                exit_code,
                max_chars,
            },
        ),
        Command::Inspect { project, env } => crate::inspect::inspect(&ui, &project.dir, &env),
        Command::Explain { what, project } => {
            crate::explain::explain(&ui, &what, project.as_deref())
        }
        Command::Fmt { project, check } => crate::fmt::fmt(&ui, &project.dir, check),
        Command::Policy { command } => crate::policy_cmd::policy(&ui, command),
        Command::Secrets { command } => crate::secrets::secrets(&ui, command),
        Command::Init { dir, preset, name } => crate::init::init(&dir, preset, name.as_deref()),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "kiln", &mut buf);
            out(&String::from_utf8_lossy(&buf))?;
            Ok(EXIT_OK)
        }
        Command::Lsp => crate::lsp::serve(),
        Command::Import {
            file,
            out,
            name,
            format,
        } => crate::import_cmd::import(&ui, &file, &out, name.as_deref(), format),
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            out(&String::from_utf8_lossy(&buf))?;
            Ok(EXIT_OK)
        }
    }
}
