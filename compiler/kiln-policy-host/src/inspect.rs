//! Checks done on the raw module bytes before anything is compiled: no imports, metadata
//! present, ABI exports present with the right signatures.
//!
//! This is a single cheap pass with `wasmparser` (function bodies are skipped, not decoded), so a
//! module that is going to be refused never reaches Cranelift.

use wasmparser::{
    CompositeInnerType, Encoding, ExternalKind, FuncType, MemoryType, Parser, Payload, ValType,
};

use crate::error::PolicyErrorKind;

/// The name of the metadata custom section.
pub const METADATA_SECTION: &str = "kiln.policy.v1";

/// What the pre-compile pass learned about a module.
pub(crate) struct Inspection<'a> {
    /// The bytes of the `kiln.policy.v1` custom section.
    pub metadata: &'a [u8],
    pub has_validate_settings: bool,
    pub has_last_error: bool,
}

#[derive(Clone, Copy)]
struct Signature {
    params: &'static [ValType],
    results: &'static [ValType],
    text: &'static str,
}

const ABI_VERSION: Signature = Signature {
    params: &[],
    results: &[ValType::I32],
    text: "(func (result i32))",
};
const ALLOC: Signature = Signature {
    params: &[ValType::I32],
    results: &[ValType::I32],
    text: "(func (param i32) (result i32))",
};
const CALL: Signature = Signature {
    params: &[ValType::I32, ValType::I32],
    results: &[ValType::I64],
    text: "(func (param i32 i32) (result i64))",
};
const LAST_ERROR: Signature = Signature {
    params: &[],
    results: &[ValType::I64],
    text: "(func (result i64))",
};
const MEMORY_TEXT: &str = "(memory 32-bit, not shared)";

/// What Cranelift may be asked to compile. Compile time and memory grow with the number of
/// functions and the size of each (50 000 tiny functions took 12 s and 730 MB); the standard
/// modules have about 300 functions, 230 KB of code and no body over 20 KB, so these leave a
/// wide margin for any real policy while keeping a compile within seconds.
pub const MAX_MODULE_BYTES: usize = 16 << 20;
pub const MAX_FUNCTIONS: u32 = 10_000;
pub const MAX_CODE_BYTES: usize = 8 << 20;
pub const MAX_FUNCTION_BYTES: usize = 512 << 10;

pub(crate) fn inspect(bytes: &[u8]) -> Result<Inspection<'_>, PolicyErrorKind> {
    let invalid = |e: wasmparser::BinaryReaderError| PolicyErrorKind::InvalidModule {
        reason: e.to_string(),
    };
    let mut imports = Vec::new();
    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut functions: Vec<u32> = Vec::new();
    let mut memories: Vec<MemoryType> = Vec::new();
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    let mut metadata: Option<&[u8]> = None;
    let mut duplicate_metadata = false;
    let too_complex = |what: &'static str, found: usize, max: usize| PolicyErrorKind::TooComplex {
        what,
        found,
        max,
    };
    if bytes.len() > MAX_MODULE_BYTES {
        return Err(too_complex("bytes", bytes.len(), MAX_MODULE_BYTES));
    }

    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => {
                return Err(PolicyErrorKind::InvalidModule {
                    reason: "this is a WebAssembly component; kiln policies are core modules"
                        .into(),
                });
            }
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(invalid)?.into_types() {
                        types.push(match sub.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    imports.push(format!("{}::{}", import.module, import.name));
                }
            }
            Payload::FunctionSection(reader) => {
                if reader.count() > MAX_FUNCTIONS {
                    return Err(too_complex(
                        "functions",
                        reader.count() as usize,
                        MAX_FUNCTIONS as usize,
                    ));
                }
                for ty in reader {
                    functions.push(ty.map_err(invalid)?);
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    memories.push(memory.map_err(invalid)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    exports.push((export.name.to_owned(), export.kind, export.index));
                }
            }
            Payload::CodeSectionStart { size, .. } if size as usize > MAX_CODE_BYTES => {
                return Err(too_complex("bytes of code", size as usize, MAX_CODE_BYTES));
            }
            Payload::CodeSectionEntry(body) if body.range().len() > MAX_FUNCTION_BYTES => {
                return Err(too_complex(
                    "bytes in one function",
                    body.range().len(),
                    MAX_FUNCTION_BYTES,
                ));
            }
            Payload::CustomSection(section) if section.name() == METADATA_SECTION => {
                if metadata.is_some() {
                    duplicate_metadata = true;
                }
                metadata = Some(section.data());
            }
            // Nested modules and components inside a core module are not valid; wasmtime's
            // validator reports them. Everything else is irrelevant here.
            _ => {}
        }
    }

    if !imports.is_empty() {
        return Err(PolicyErrorKind::Imports { imports });
    }
    let Some(metadata) = metadata else {
        return Err(PolicyErrorKind::MissingMetadata);
    };
    if duplicate_metadata {
        return Err(PolicyErrorKind::BadMetadata {
            reason: format!("the module has more than one `{METADATA_SECTION}` section"),
        });
    }

    // With no imports, function index N is entry N of the function section, and memory index
    // N is entry N of the memory section.
    let find = |name: &str| exports.iter().find(|(n, _, _)| n == name);
    let describe_func = |index: u32| -> String {
        match functions
            .get(index as usize)
            .and_then(|t| types.get(*t as usize))
        {
            Some(Some(f)) => func_text(f),
            _ => "an invalid function".into(),
        }
    };
    let check_func = |name: &'static str, sig: Signature, required: bool| {
        let Some((_, kind, index)) = find(name) else {
            return if required {
                Err(PolicyErrorKind::MissingExport {
                    name,
                    expected: sig.text,
                })
            } else {
                Ok(false)
            };
        };
        if !matches!(kind, ExternalKind::Func | ExternalKind::FuncExact) {
            return Err(PolicyErrorKind::WrongSignature {
                name,
                expected: sig.text,
                found: kind_text(*kind).into(),
            });
        }
        let ty = functions
            .get(*index as usize)
            .and_then(|t| types.get(*t as usize))
            .and_then(Option::as_ref);
        match ty {
            Some(f) if f.params() == sig.params && f.results() == sig.results => Ok(true),
            _ => Err(PolicyErrorKind::WrongSignature {
                name,
                expected: sig.text,
                found: describe_func(*index),
            }),
        }
    };

    match find("memory") {
        None => {
            return Err(PolicyErrorKind::MissingExport {
                name: "memory",
                expected: MEMORY_TEXT,
            });
        }
        Some((_, kind, index)) => {
            let ok = *kind == ExternalKind::Memory
                && memories
                    .get(*index as usize)
                    .is_some_and(|m| !m.memory64 && !m.shared);
            if !ok {
                let found = match (kind, memories.get(*index as usize)) {
                    (ExternalKind::Memory, Some(m)) if m.memory64 => "a 64-bit memory".into(),
                    (ExternalKind::Memory, Some(m)) if m.shared => "a shared memory".into(),
                    (k, _) => kind_text(*k).to_owned(),
                };
                return Err(PolicyErrorKind::WrongSignature {
                    name: "memory",
                    expected: MEMORY_TEXT,
                    found,
                });
            }
        }
    }
    check_func("kiln_abi_version", ABI_VERSION, true)?;
    check_func("kiln_alloc", ALLOC, true)?;
    check_func("kiln_check", CALL, true)?;
    let has_validate_settings = check_func("kiln_validate_settings", CALL, false)?;
    let has_last_error = check_func("kiln_last_error", LAST_ERROR, false)?;

    Ok(Inspection {
        metadata,
        has_validate_settings,
        has_last_error,
    })
}

fn kind_text(kind: ExternalKind) -> &'static str {
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => "a function",
        ExternalKind::Table => "a table",
        ExternalKind::Memory => "a memory",
        ExternalKind::Global => "a global",
        ExternalKind::Tag => "a tag",
    }
}

fn func_text(f: &FuncType) -> String {
    let list = |kw: &str, tys: &[ValType]| {
        if tys.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = tys.iter().map(|t| t.to_string()).collect();
            format!(" ({kw} {})", names.join(" "))
        }
    };
    format!(
        "`(func{}{})`",
        list("param", f.params()),
        list("result", f.results())
    )
}
