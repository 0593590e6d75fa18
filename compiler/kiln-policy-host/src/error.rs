//! Everything that can go wrong with a policy module, as one error type.
//!
//! A [`PolicyError`] names the policy (the `display_name` given to
//! [`PolicyHost::load`](crate::PolicyHost::load)) and says what went wrong and why in its
//! `Display` text; [`PolicyError::help`] says what to do about it. The CLI renders the two as a
//! diagnostic's message and help.

use std::fmt;
use std::time::Duration;

/// A policy module was refused at load time or failed during a call.
///
/// None of these is a bug in kiln: they are all caused by the module, and every one of them ends
/// the call cleanly (the host never hangs or panics on a module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    policy: String,
    kind: PolicyErrorKind,
}

impl PolicyError {
    pub(crate) fn new(policy: &str, kind: PolicyErrorKind) -> PolicyError {
        PolicyError {
            policy: policy.to_owned(),
            kind,
        }
    }

    /// The display name of the policy, as given to [`PolicyHost::load`](crate::PolicyHost::load).
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// What went wrong, as data.
    pub fn kind(&self) -> &PolicyErrorKind {
        &self.kind
    }

    /// What to do about it: one sentence addressed to the policy's author or user.
    pub fn help(&self) -> String {
        self.kind.help()
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy `{}`: {}", self.policy, self.kind)
    }
}

impl std::error::Error for PolicyError {}

/// The kinds of [`PolicyError`]. The `Display` text says what went wrong and why, starts
/// lower-case and has no final period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyErrorKind {
    /// The bytes are not a core WebAssembly module (or not a valid one).
    InvalidModule { reason: String },
    /// The module imports something. Policies must be pure: no imports at all.
    Imports {
        /// Every import as `module::name`, in module order.
        imports: Vec<String>,
    },
    /// The module has no `kiln.policy.v1` custom section.
    MissingMetadata,
    /// The `kiln.policy.v1` custom section is not valid metadata.
    BadMetadata { reason: String },
    /// A required export is missing.
    MissingExport {
        name: &'static str,
        expected: &'static str,
    },
    /// An ABI export exists with the wrong kind or signature.
    WrongSignature {
        name: &'static str,
        expected: &'static str,
        found: String,
    },
    /// `kiln_abi_version` returned a major version this host does not implement.
    AbiVersion {
        found_major: u16,
        found_minor: u16,
        supported_major: u16,
        supported_minor: u16,
    },
    /// Cranelift (or wasmtime's validator) refused the module.
    Compile { reason: String },
    /// The module is larger or has more functions than the host compiles (the limits keep a
    /// compile within seconds and bounded memory).
    TooComplex {
        /// What was counted: `"functions"`, `"bytes of code"`, …
        what: &'static str,
        found: usize,
        max: usize,
    },
    /// Compiling the module took longer than the host's compile deadline.
    CompileTimeout { after: Duration },
    /// The module trapped (`unreachable`, out-of-bounds access, stack overflow, …).
    Trap {
        /// The export that was running (`kiln_check`, …), or `"instantiation"`.
        function: &'static str,
        /// wasmtime's trap message.
        message: String,
        /// The message the module left in `kiln_last_error`, if it exports one (a Rust
        /// policy's panic message, for instance). At most 1000 bytes.
        policy_message: Option<String>,
    },
    /// The call used up its fuel budget (a deterministic instruction count, which grows with
    /// the size of the input).
    OutOfFuel {
        function: &'static str,
        fuel: u64,
        /// The size of the input the call got, in bytes.
        input: usize,
    },
    /// The module wanted more memory than the host allows, or `kiln_alloc` returned 0.
    OutOfMemory {
        function: &'static str,
        detail: String,
    },
    /// The wall-clock backstop fired (only possible when fuel is set very high).
    Timeout {
        function: &'static str,
        after: Duration,
    },
    /// The input document is larger than the host's input limit.
    InputTooLarge { len: usize, max: usize },
    /// The module returned an output larger than the host's output limit.
    OutputTooLarge { len: usize, max: usize },
    /// A pointer returned by the module (`kiln_alloc`'s result or an output pointer) does not
    /// lie inside its memory.
    BadPointer {
        function: &'static str,
        ptr: u32,
        len: u32,
        memory_size: usize,
    },
    /// The output is not UTF-8, not JSON, or not shaped like the ABI says. `reason` never
    /// echoes more than about 200 characters of the output.
    MalformedOutput {
        function: &'static str,
        reason: String,
    },
    /// A finding names a rule that the metadata does not declare.
    UndeclaredRule {
        rule: String,
        /// A declared rule id that looks like what was meant.
        suggestion: Option<String>,
        declared: Vec<String>,
    },
}

impl fmt::Display for PolicyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PolicyErrorKind::*;
        match self {
            InvalidModule { reason } => {
                write!(f, "not a valid WebAssembly core module: {reason}")
            }
            Imports { imports } => write!(
                f,
                "the module imports {} (policies must not import anything, so that they cannot reach the file system, network, clock or randomness)",
                imports
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            MissingMetadata => write!(
                f,
                "the module has no `kiln.policy.v1` custom section, so kiln does not know its id, rules or documentation"
            ),
            BadMetadata { reason } => {
                write!(f, "the `kiln.policy.v1` metadata is invalid: {reason}")
            }
            MissingExport { name, expected } => {
                write!(
                    f,
                    "the module does not export `{name}`, which ABI v1 requires (expected `{expected}`)"
                )
            }
            WrongSignature {
                name,
                expected,
                found,
            } => write!(
                f,
                "the export `{name}` is {found}, but ABI v1 requires `{expected}`"
            ),
            AbiVersion {
                found_major,
                found_minor,
                supported_major,
                supported_minor,
            } => write!(
                f,
                "the module implements policy ABI {found_major}.{found_minor}, but this kiln supports ABI {supported_major}.x (up to {supported_major}.{supported_minor})"
            ),
            Compile { reason } => write!(f, "wasmtime refused the module: {reason}"),
            TooComplex { what, found, max } => write!(
                f,
                "the module has {found} {what}, over the limit of {max} that kiln compiles"
            ),
            CompileTimeout { after } => write!(
                f,
                "compiling the module took longer than {:.0} s, kiln's limit",
                after.as_secs_f64()
            ),
            Trap {
                function,
                message,
                policy_message,
            } => {
                write!(f, "the module trapped {}: {message}", during(function))?;
                if let Some(m) = policy_message {
                    write!(f, " (the policy said: {m})")?;
                }
                Ok(())
            }
            OutOfFuel {
                function,
                fuel,
                input,
            } => write!(
                f,
                "the module ran out of fuel {} after {fuel} instructions, on an input of {input} bytes (the budget grows with the input; running out means an endless loop, or work that grows faster than the input)",
                during(function)
            ),
            OutOfMemory { function, detail } => {
                write!(
                    f,
                    "the module ran out of memory {}: {detail}",
                    during(function)
                )
            }
            Timeout { function, after } => write!(
                f,
                "the module was stopped {} after running for {:.1} s (the wall-clock backstop)",
                during(function),
                after.as_secs_f64()
            ),
            InputTooLarge { len, max } => write!(
                f,
                "the policy input is {len} bytes, over the limit of {max} bytes"
            ),
            OutputTooLarge { len, max } => write!(
                f,
                "the module returned {len} bytes of output, over the limit of {max} bytes"
            ),
            BadPointer {
                function,
                ptr,
                len,
                memory_size,
            } => write!(
                f,
                "`{function}` returned the region {ptr:#x}..+{len}, which is outside the module's memory ({memory_size} bytes)"
            ),
            MalformedOutput { function, reason } => {
                write!(f, "the output of `{function}` is malformed: {reason}")
            }
            UndeclaredRule {
                rule, suggestion, ..
            } => {
                write!(
                    f,
                    "a finding names the rule `{rule}`, which the policy's metadata does not declare"
                )?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean `{s}`?)")?;
                }
                Ok(())
            }
        }
    }
}

/// Where a call failed: "in `kiln_check`", or "while being instantiated" (which runs the
/// module's start function and sets up its memory).
fn during(function: &str) -> String {
    if function == INSTANTIATION {
        "while being instantiated".into()
    } else {
        format!("in `{function}`")
    }
}

/// The `function` of errors raised while instantiating a module.
pub(crate) const INSTANTIATION: &str = "instantiation";

impl PolicyErrorKind {
    fn help(&self) -> String {
        use PolicyErrorKind::*;
        let author = "this is a bug in the policy module: report it to the policy's author";
        match self {
            InvalidModule { .. } => {
                "point kiln at a `.wasm` core module built for `wasm32-unknown-unknown`".into()
            }
            Imports { .. } => "build the policy without WASI or host imports (target `wasm32-unknown-unknown`, no `std::fs`/`std::time`/randomness); see policies/ABI.md".into(),
            MissingMetadata | BadMetadata { .. } => {
                "embed valid metadata in the `kiln.policy.v1` custom section; see policies/ABI.md, \"Metadata\"".into()
            }
            MissingExport { .. } | WrongSignature { .. } => {
                "export the functions policies/ABI.md lists, with exactly those signatures".into()
            }
            AbiVersion { .. } => {
                "use a policy built for ABI 1.x, or a kiln version that supports this ABI".into()
            }
            Compile { .. } => "rebuild the module; if it came from a standard toolchain, report it to the policy's author".into(),
            TooComplex { .. } | CompileTimeout { .. } => "a policy needs far less code than this: check that this is the module you meant, and build it in release mode".into(),
            OutOfFuel { .. } | Timeout { .. } => format!(
                "{author}: a policy should do a bounded amount of work per byte of input (no endless loop, no pass over all pairs of services)"
            ),
            OutOfMemory { .. } => format!(
                "{author}; if the spec is unusually large, the memory limit may need raising"
            ),
            InputTooLarge { .. } => {
                "the resolved environment is unusually large: split it, or raise the input limit".into()
            }
            UndeclaredRule { .. } => {
                "declare the rule in the metadata's `rules`, or use a full declared id like `web.debug-off`".into()
            }
            Trap { .. } | OutputTooLarge { .. } | BadPointer { .. } | MalformedOutput { .. } => {
                author.into()
            }
        }
    }
}

/// Cuts `text` to at most `max` characters, marking the cut with `…`.
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}
