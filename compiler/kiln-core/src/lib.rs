//! kiln's core: the spec language and its resolution, with no I/O.
//!
//! Pipeline: [`project::load`] (parse every file, check it against the
//! [`schema`]) → [`resolve::resolve`] (layer an environment, apply presets,
//! wire, lower into the [`model::Model`]). Every function here is pure: files
//! arrive through a loader closure, and problems come back as [`Diagnostic`]s
//! together with whatever could still be built.

pub mod diagnostic;
pub mod kdl_schema;
pub mod lines;
pub mod merge;
pub mod model;
pub mod programs;
pub mod project;
pub mod reader;
pub mod reference;
pub mod resolve;
pub mod schema;
pub mod source;
pub mod syntax;

pub use diagnostic::{Diagnostic, Severity};
pub use lines::{Lines, Pointers};
pub use model::Model;
pub use project::Project;
pub use source::{FileId, Sources, Span};

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Path relative to the environment's output folder: `nginx/sites/api.example.com.conf`.
    pub path: String,
    pub text: String,
    /// JSON pointers into the model behind each line (1-based index = line number),
    /// for `kiln explain` and `kiln diff`. Empty where unknown. Stored as runs of
    /// lines sharing one pointer set (see [`Lines`]).
    pub lines: Lines,
}
