//! `kiln`: compile KDL environment specs into deployment files.

mod checked;
mod cli;
mod cmd;
mod compile;
mod diff;
mod disk;
mod explain;
mod fmt;
mod git;
mod import_cmd;
mod init;
mod inspect;
mod lsp;
mod policy_cmd;
mod policy_test;
mod secrets;
mod ui;

use std::process::ExitCode;

use clap::Parser;

/// The binary's allocator: with glibc's, allocation was ~40% of a recompile's CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc (v3) option `arena_eager_commit` (`mi_option_t` 4; `libmimalloc-sys` only names the
/// v2 options). Eagerly committed arenas keep freed pages resident: a 1,000-environment compile
/// peaked 45 MiB (14%) higher with them, at the same speed (BENCHMARKS.md).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Sets mimalloc's options before its first arena exists, which is before `main`: the Rust
/// runtime allocates before calling it. A function in `.init_array` runs before the runtime
/// starts (the same mechanism as the `ctor` crate, for one call).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

#[cfg(target_os = "linux")]
extern "C" fn configure_allocator() {
    // SAFETY: sets a plain integer option; no other thread exists yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            match e.chain().find_map(|c| c.downcast_ref::<disk::Refused>()) {
                // A path kiln will not use (a link out of the project, a FIFO, a huge file):
                // a diagnostic, with what to do.
                Some(refused) => {
                    let d = kiln_core::Diagnostic::error(refused.code(), format!("{e:#}"))
                        .with_help(refused.refusal.help());
                    eprint!(
                        "{}",
                        kiln_core::diagnostic::render(
                            &[d],
                            &kiln_core::source::Sources::new(),
                            Default::default()
                        )
                    );
                }
                None => eprintln!(
                    "error: {}",
                    kiln_core::diagnostic::sanitize_for_terminal(&format!("{e:#}"))
                ),
            }
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
