//! The kiln command line. The library half holds the pure pipeline (build,
//! lock, comparison, reports, import); the binary half (`main.rs` and one file per
//! command over `ui.rs`, `checked.rs` and `disk/`) is the only code that touches the
//! disk, the clock, the environment or the terminal.

pub mod build;
pub mod compare;
pub mod format;
pub mod import;
pub mod lock;
pub mod place;
pub mod policy;
pub mod report;
pub mod stdlib;

/// Output formats of `kiln diff`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    Human,
    Markdown,
    Json,
}
