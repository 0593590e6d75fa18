//! The SDK for writing kiln policies in Rust.
//!
//! A policy is a plain function from the [`Input`] to a list of [`Finding`]s. The
//! [`kiln_policy!`] macro turns it into a policy module when the crate is built for
//! `wasm32-unknown-unknown` (exports, metadata section, memory convention: see
//! `policies/ABI.md`); on any other target the same function is ordinary Rust, so `cargo test`
//! runs the policy's logic natively, with [`test_support`] to drive it.
//!
//! ```
//! use kiln_policy_sdk::{Finding, Input, json_pointer};
//!
//! // In a policy crate (`crate-type = ["cdylib", "rlib"]`):
//! //
//! // kiln_policy_sdk::kiln_policy! {
//! //     metadata: include_str!("../policy.json"),
//! //     check: check,
//! // }
//!
//! fn check(input: &Input) -> Vec<Finding> {
//!     let mut findings = Vec::new();
//!     for (name, service) in input.services() {
//!         if service.pointer("/env/DEBUG").and_then(|v| v.as_bool()) == Some(true) {
//!             findings.push(
//!                 Finding::new("web.debug-off", format!("DEBUG is on in service `{name}`"))
//!                     .at(json_pointer(["services", name, "env", "DEBUG"]))
//!                     .help("set DEBUG to #false"),
//!             );
//!         }
//!     }
//!     findings
//! }
//!
//! let input = kiln_policy_sdk::test_support::input(serde_json::json!({
//!     "services": { "web": { "env": { "DEBUG": true } } }
//! }));
//! assert_eq!(check(&input)[0].path.as_deref(), Some("/services/web/env/DEBUG"));
//! ```

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod rule;
pub mod scan;
pub mod test_support;

/// The ABI version this SDK implements, as `kiln_abi_version` returns it: `(major << 16) | minor`.
pub const ABI_VERSION: i32 = 0x0001_0001;

/// The document kiln passes to `kiln_check`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Input {
    /// The ABI version of the document, `"1.0"`.
    pub abi: String,
    /// Which policy this is, with its settings from the spec.
    pub policy: PolicyRef,
    /// The name of the environment being checked (`production`).
    pub environment: String,
    /// The environment's tier.
    pub tier: Tier,
    /// The resolved model: exactly what `kiln inspect --env NAME` prints (see docs/model.md).
    pub spec: Value,
    /// The rendered files, only for policies whose metadata asks for `"artifacts"`.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// The real values of declared secrets, by secret name: only during
    /// `kiln secrets check --env NAME --env-file FILE`, and only for policies whose metadata
    /// asks for `"secret-values"`. Empty in a normal compile. Never echo a value (or any part of
    /// it) in a finding.
    #[serde(default, rename = "secret-values")]
    pub secret_values: std::collections::BTreeMap<String, String>,
}

/// The policy's id and its settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PolicyRef {
    /// The policy id from the metadata.
    pub id: String,
    /// The settings the spec gives this policy (`{}` when none).
    #[serde(default)]
    pub settings: Value,
}

/// An environment's tier. Policies usually report lower severities below production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Production,
    Staging,
    Development,
    /// A tier added after this SDK was written.
    #[serde(other)]
    Other,
}

/// A rendered file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Artifact {
    /// The target that rendered it (`nginx`).
    pub target: String,
    /// Its path in the output folder, relative to the environment (`nginx/api.example.conf`).
    pub path: String,
    /// Its full text.
    pub text: String,
}

impl Input {
    /// The value at an RFC 6901 JSON Pointer into the spec (`/services/web/env/DEBUG`).
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        self.spec.pointer(pointer)
    }

    /// The entries of the object at `pointer`, in the spec's order; nothing if there is no
    /// object there.
    pub fn entries<'a>(&'a self, pointer: &str) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.spec
            .pointer(pointer)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|map| map.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// `/services/*`: every service by name.
    pub fn services(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries("/services")
    }

    /// `/sites/*`: every site by host name.
    pub fn sites(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries("/sites")
    }

    /// The policy's settings as a typed value; missing settings read as `{}`, so a settings
    /// struct with `#[serde(default)]` gets its defaults.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.policy.settings {
            Value::Null => serde_json::from_value(Value::Object(Default::default())),
            settings => T::deserialize(settings),
        }
    }

    /// The name the app reads framework setting `name` under: the project's
    /// `settings-prefix` before it (`DJANGO_ALLOWED_HOSTS` for `ALLOWED_HOSTS`), else `name`.
    pub fn setting_name(&self, name: &str) -> String {
        match self
            .spec
            .pointer("/project/settings-prefix")
            .and_then(Value::as_str)
        {
            Some(prefix) => format!("{prefix}{name}"),
            None => name.to_owned(),
        }
    }

    /// Whether the environment's tier is `production`.
    pub fn is_production(&self) -> bool {
        self.tier == Tier::Production
    }

    /// The artifact with this path.
    pub fn artifact(&self, path: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.path == path)
    }

    /// The severity of a catalog "[prod]" rule in this environment: `production` in the
    /// production tier (and in tiers this SDK does not know), one step lower in staging, and
    /// `info` in development.
    pub fn tiered(&self, production: Severity) -> Severity {
        match self.tier {
            Tier::Production | Tier::Other => production,
            Tier::Staging => production.lower(),
            Tier::Development => Severity::Info,
        }
    }
}

impl Artifact {
    /// The lines of the text with their 1-based numbers, as findings name them.
    pub fn lines(&self) -> impl Iterator<Item = (u32, &str)> {
        (1..).zip(self.text.lines())
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    /// One step lower: error → warn → info; info stays info.
    pub fn lower(self) -> Severity {
        match self {
            Severity::Error => Severity::Warn,
            Severity::Warn | Severity::Info => Severity::Info,
        }
    }
}

/// One problem a policy found. Build it with [`Finding::new`] and the chained setters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The full id of a rule the metadata declares (`web.debug-off`).
    pub rule: String,
    /// `None`: the rule's `default_severity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// What is wrong, in one sentence (lower-case, no final period).
    pub message: String,
    /// A JSON Pointer into the spec; kiln shows the KDL line that set the value there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A line of a rendered artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactLine>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Other places that explain the finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

/// A line in a rendered artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactLine {
    pub path: String,
    /// 1-based.
    pub line: u32,
}

/// A secondary location of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    /// A JSON Pointer into the spec.
    pub path: String,
    pub message: String,
}

impl Finding {
    /// A finding for `rule` (a full declared id like `web.debug-off`).
    pub fn new(rule: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            rule: rule.into(),
            severity: None,
            message: message.into(),
            path: None,
            artifact: None,
            help: None,
            related: Vec::new(),
        }
    }

    /// Points the finding at a JSON Pointer into the spec; build it with [`json_pointer`].
    pub fn at(mut self, path: impl Into<String>) -> Finding {
        self.path = Some(path.into());
        self
    }

    /// Points the finding at a line (1-based) of a rendered artifact.
    pub fn at_artifact(mut self, path: impl Into<String>, line: u32) -> Finding {
        self.artifact = Some(ArtifactLine {
            path: path.into(),
            line,
        });
        self
    }

    /// Overrides the rule's default severity for this finding.
    pub fn severity(mut self, severity: Severity) -> Finding {
        self.severity = Some(severity);
        self
    }

    /// Says what to do about it.
    pub fn help(mut self, help: impl Into<String>) -> Finding {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary location.
    pub fn related(mut self, path: impl Into<String>, message: impl Into<String>) -> Finding {
        self.related.push(Related {
            path: path.into(),
            message: message.into(),
        });
        self
    }
}

/// One problem in a policy's settings, reported by `kiln_validate_settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsError {
    /// A JSON Pointer into the settings object (`""` for the object itself).
    pub path: String,
    pub message: String,
}

impl SettingsError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> SettingsError {
        SettingsError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Escapes one JSON Pointer segment (RFC 6901): `~` becomes `~0` and `/` becomes `~1`, so a
/// site named `example.org/api` is the segment `example.org~1api`.
pub fn escape_pointer_segment(segment: &str) -> Cow<'_, str> {
    if segment.contains(['~', '/']) {
        Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// Builds a JSON Pointer from unescaped segments:
/// `json_pointer(["services", name, "env", "DEBUG"])` is `/services/web/env/DEBUG`.
pub fn json_pointer<I, S>(segments: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut pointer = String::new();
    for segment in segments {
        pointer.push('/');
        pointer.push_str(&escape_pointer_segment(segment.as_ref()));
    }
    pointer
}

/// Turns a check function (and optionally a settings validator) into a kiln policy module.
///
/// ```text
/// kiln_policy_sdk::kiln_policy! {
///     // A `&'static str` constant expression: the metadata JSON (policies/ABI.md, "Metadata").
///     metadata: include_str!("../policy.json"),
///     // fn(&Input) -> Vec<Finding>
///     check: check,
///     // optional: fn(&serde_json::Value) -> Vec<SettingsError>
///     validate_settings: validate_settings,
/// }
/// ```
///
/// On `wasm32` it exports `kiln_abi_version`, `kiln_alloc`, `kiln_check`, `kiln_last_error` (the
/// message of a panic, which kiln shows when the module traps) and, if given,
/// `kiln_validate_settings`; the metadata goes into the `kiln.policy.v1` custom section. The
/// crate must be a `cdylib` (Rust exports its `memory` by default) and should be built with
/// `panic = "abort"`, as `policies/build.sh` does. `build.sh` also enables WebAssembly SIMD
/// (`-C target-feature=+simd128`: the SDK's scans go through `memchr`, which uses it) and
/// links with 4 MiB of initial memory, which the allocator uses before growing memory; both
/// are optional.
///
/// On every other target it emits only a test, `kiln_policy_metadata_is_valid`, that checks
/// the metadata with [`test_support::check_metadata`].
#[macro_export]
macro_rules! kiln_policy {
    (
        metadata: $metadata:expr,
        check: $check:path
        $(, validate_settings: $validate:path)?
        $(,)?
    ) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            const METADATA: &str = $metadata;

            #[used]
            #[unsafe(link_section = "kiln.policy.v1")]
            static KILN_POLICY_V1: [u8; METADATA.len()] = $crate::__private::bytes(METADATA);

            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_abi_version() -> i32 {
                $crate::ABI_VERSION
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_alloc(len: i32) -> i32 {
                $crate::__private::alloc(len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_check(ptr: i32, len: i32) -> i64 {
                // SAFETY: kiln calls this with a region it got from `kiln_alloc` and filled.
                unsafe { $crate::__private::check(ptr, len, $check) }
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_last_error() -> i64 {
                $crate::__private::last_error()
            }

            $(
                #[unsafe(no_mangle)]
                pub extern "C" fn kiln_validate_settings(ptr: i32, len: i32) -> i64 {
                    // SAFETY: as for `kiln_check`.
                    unsafe { $crate::__private::validate_settings(ptr, len, $validate) }
                }
            )?
        };

        // Every call gets a fresh instance (policies/ABI.md §3), so nothing ever needs to be
        // freed: a bump allocator is several times cheaper than std's dlmalloc.
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        static KILN_ALLOCATOR: $crate::__private::BumpAllocator =
            $crate::__private::BumpAllocator::new();

        #[cfg(all(test, not(target_arch = "wasm32")))]
        #[test]
        fn kiln_policy_metadata_is_valid() {
            if let Err(problem) = $crate::test_support::check_metadata($metadata) {
                panic!("the policy metadata is invalid: {problem}");
            }
            // Both functions have the types the ABI glue expects.
            let _: fn(&$crate::Input) -> ::std::vec::Vec<$crate::Finding> = $check;
            $(
                let _: fn(&$crate::__private::Value) -> ::std::vec::Vec<$crate::SettingsError> =
                    $validate;
            )?
        }
    };
}

/// Implementation details of [`kiln_policy!`]. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json::Value;

    /// Copies a string into an array at compile time, for the `#[link_section]` static.
    pub const fn bytes<const N: usize>(text: &str) -> [u8; N] {
        let text = text.as_bytes();
        assert!(text.len() == N);
        let mut out = [0; N];
        let mut i = 0;
        while i < N {
            out[i] = text[i];
            i += 1;
        }
        out
    }

    #[cfg(target_arch = "wasm32")]
    pub use wasm::*;

    #[cfg(target_arch = "wasm32")]
    mod bump {
        use std::alloc::{GlobalAlloc, Layout};
        use std::cell::Cell;

        /// The global allocator of a policy module: hands out the heap the linker left after
        /// the data, then memory it grows, and never reuses it, except that freeing or growing
        /// the most recent block works in place (the scratch buffers of a JSON parser). A
        /// policy instance lives for one call, so the memory goes away with it.
        pub struct BumpAllocator {
            /// The next free byte and the end of the memory this allocator owns.
            next: Cell<usize>,
            end: Cell<usize>,
        }

        // SAFETY: wasm32-unknown-unknown without the `atomics` feature has one thread.
        unsafe impl Sync for BumpAllocator {}

        const PAGE: usize = 65536;

        impl BumpAllocator {
            pub const fn new() -> BumpAllocator {
                BumpAllocator {
                    next: Cell::new(0),
                    end: Cell::new(0),
                }
            }

            /// Grows linear memory so that `[start, start + size)` fits, at least doubling what
            /// this allocator owns (few `memory.grow` calls); false when memory is exhausted.
            fn grow(&self, size: usize, align: usize) -> Option<usize> {
                if self.end.get() == 0 {
                    // First use: the heap the linker left between the data and the end of the
                    // initial memory comes first (`policies/build.sh` links the standard
                    // modules with 4 MiB, so that most calls never grow memory).
                    unsafe extern "C" {
                        static __heap_base: u8;
                    }
                    // SAFETY: only the symbol's address is taken; wasm-ld defines it.
                    let heap = unsafe { core::ptr::addr_of!(__heap_base) } as usize;
                    let end = core::arch::wasm32::memory_size(0) * PAGE;
                    self.next.set(heap);
                    self.end.set(end);
                    if heap + size + align <= end {
                        return Some(heap);
                    }
                }
                // Double the memory (at most 8 MiB at a time, to stay clear of the host's
                // memory cap), or exactly what this block needs if that is more.
                let current = core::arch::wasm32::memory_size(0) * PAGE;
                let want = (size + align).max(current.clamp(16 * PAGE, 128 * PAGE));
                let pages = want.div_ceil(PAGE);
                let previous = core::arch::wasm32::memory_grow(0, pages);
                if previous == usize::MAX {
                    return None;
                }
                let base = previous * PAGE;
                if base != self.end.get() {
                    // Not contiguous with our last region (the first growth): start afresh.
                    self.next.set(base);
                }
                self.end.set(base + pages * PAGE);
                Some(base)
            }

            fn bump(&self, layout: Layout) -> *mut u8 {
                let align = layout.align();
                let size = layout.size();
                loop {
                    let start = (self.next.get() + align - 1) & !(align - 1);
                    let stop = start
                        .checked_add(size)
                        .filter(|&stop| stop <= self.end.get());
                    if let (Some(stop), true) = (stop, start != 0) {
                        self.next.set(stop);
                        return start as *mut u8;
                    }
                    if self.grow(size, align).is_none() {
                        return std::ptr::null_mut();
                    }
                }
            }
        }

        impl Default for BumpAllocator {
            fn default() -> BumpAllocator {
                BumpAllocator::new()
            }
        }

        // SAFETY: blocks never overlap: `next` only moves back over the most recent block when
        // that block is freed, and only grows a block in place when it is the most recent one.
        unsafe impl GlobalAlloc for BumpAllocator {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                self.bump(layout)
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                if ptr as usize + layout.size() == self.next.get() {
                    self.next.set(ptr as usize);
                }
            }

            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                let start = ptr as usize;
                // (No let-chains: the wasm toolchain, Debian's rustc-web, is Rust 1.85.)
                let stop = start
                    .checked_add(new_size)
                    .filter(|&stop| stop <= self.end.get());
                if let (true, Some(stop)) = (start + layout.size() == self.next.get(), stop) {
                    self.next.set(stop);
                    return ptr;
                }
                // SAFETY: the caller's contract for `realloc` is that of `alloc` for the new
                // layout; the copy reads the old block and writes the new, which do not overlap.
                unsafe {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.bump(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }

    #[cfg(target_arch = "wasm32")]
    pub use bump::BumpAllocator;

    #[cfg(target_arch = "wasm32")]
    mod wasm {
        use std::alloc::Layout;
        use std::sync::Mutex;

        use serde::Serialize;
        use serde_json::Value;

        use crate::{Finding, Input, SettingsError};

        /// The last panic message, for `kiln_last_error`.
        static LAST_ERROR: Mutex<String> = Mutex::new(String::new());

        #[derive(Serialize)]
        struct CheckOutput {
            findings: Vec<Finding>,
        }

        #[derive(Serialize)]
        struct SettingsOutput {
            errors: Vec<SettingsError>,
        }

        /// Nothing allocated here is ever freed: kiln uses a fresh instance for every call.
        pub fn alloc(len: i32) -> i32 {
            let Ok(layout) = Layout::from_size_align((len as u32 as usize).max(1), 8) else {
                return 0;
            };
            // SAFETY: the layout's size is not zero. A null result (out of memory) becomes 0,
            // which the ABI defines as "out of memory".
            unsafe { std::alloc::alloc(layout) as usize as i32 }
        }

        fn install_panic_hook() {
            std::panic::set_hook(Box::new(|info| {
                if let Ok(mut last) = LAST_ERROR.lock() {
                    *last = info.to_string();
                }
            }));
        }

        /// # Safety
        /// `[ptr, ptr + len)` must be memory this module allocated and the host filled.
        unsafe fn input<'a>(ptr: i32, len: i32) -> &'a [u8] {
            // SAFETY: guaranteed by the caller.
            unsafe {
                std::slice::from_raw_parts(ptr as u32 as usize as *const u8, len as u32 as usize)
            }
        }

        fn output<T: Serialize>(value: &T) -> i64 {
            let bytes = serde_json::to_vec(value)
                .expect("findings and settings errors always serialize to JSON");
            let bytes: &'static [u8] = Vec::leak(bytes);
            (((bytes.as_ptr() as usize as u64) << 32) | bytes.len() as u64) as i64
        }

        /// # Safety
        /// As for [`input`].
        pub unsafe fn check(ptr: i32, len: i32, check: fn(&Input) -> Vec<Finding>) -> i64 {
            install_panic_hook();
            // SAFETY: guaranteed by the caller.
            let input: Input = serde_json::from_slice(unsafe { input(ptr, len) })
                .unwrap_or_else(|e| panic!("the input is not an ABI 1 document: {e}"));
            let out = output(&CheckOutput {
                findings: check(&input),
            });
            // The instance is thrown away after this call: freeing the parsed input (thousands
            // of small blocks the bump allocator would not reuse) is wasted work.
            std::mem::forget(input);
            out
        }

        /// # Safety
        /// As for [`input`].
        pub unsafe fn validate_settings(
            ptr: i32,
            len: i32,
            validate: fn(&Value) -> Vec<SettingsError>,
        ) -> i64 {
            install_panic_hook();
            // SAFETY: guaranteed by the caller.
            let settings: Value = serde_json::from_slice(unsafe { input(ptr, len) })
                .unwrap_or_else(|e| panic!("the settings are not JSON: {e}"));
            output(&SettingsOutput {
                errors: validate(&settings),
            })
        }

        pub fn last_error() -> i64 {
            let Ok(last) = LAST_ERROR.lock() else {
                return 0;
            };
            // The string stays in the static, so the pointer stays valid for the host to read.
            (((last.as_ptr() as usize as u64) << 32) | last.len() as u64) as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_segments_are_escaped() {
        assert_eq!(escape_pointer_segment("web"), "web");
        assert_eq!(escape_pointer_segment("a/b~c"), "a~1b~0c");
        assert_eq!(escape_pointer_segment("~1"), "~01");
        assert_eq!(
            json_pointer(["sites", "example.org/api", "tls"]),
            "/sites/example.org~1api/tls"
        );
        assert_eq!(json_pointer::<[&str; 0], &str>([]), "");
        let input = test_support::input(json!({"sites": {"example.org/api": {"tls": "acme"}}}));
        assert_eq!(
            input.pointer(&json_pointer(["sites", "example.org/api", "tls"])),
            Some(&json!("acme"))
        );
    }

    #[test]
    fn finding_builder_serializes_as_the_abi_says() {
        let finding = Finding::new("web.debug-off", "DEBUG is on")
            .at("/services/web/env/DEBUG")
            .severity(Severity::Warn)
            .help("set DEBUG to #false")
            .related("/services/web", "the service")
            .at_artifact("compose/compose.yaml", 12);
        assert_eq!(
            serde_json::to_value(&finding).unwrap(),
            json!({
                "rule": "web.debug-off",
                "severity": "warn",
                "message": "DEBUG is on",
                "path": "/services/web/env/DEBUG",
                "artifact": {"path": "compose/compose.yaml", "line": 12},
                "help": "set DEBUG to #false",
                "related": [{"path": "/services/web", "message": "the service"}],
            })
        );
        assert_eq!(
            serde_json::to_value(Finding::new("a.b", "m")).unwrap(),
            json!({"rule": "a.b", "message": "m"})
        );
    }

    #[test]
    fn input_helpers() {
        let mut input = test_support::input(json!({
            "services": {"web": {"replicas": 3}, "worker": {}},
        }));
        let names: Vec<&str> = input.services().map(|(name, _)| name).collect();
        assert_eq!(names, ["web", "worker"]);
        assert_eq!(input.sites().count(), 0);
        assert!(input.is_production());
        assert_eq!(input.tiered(Severity::Error), Severity::Error);
        input.tier = Tier::Staging;
        assert_eq!(input.tiered(Severity::Error), Severity::Warn);
        assert_eq!(input.tiered(Severity::Warn), Severity::Info);
        input.tier = Tier::Development;
        assert_eq!(input.tiered(Severity::Error), Severity::Info);
        input.tier = Tier::Production;

        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Settings {
            max: u32,
        }
        assert_eq!(input.settings::<Settings>().unwrap().max, 0);
        input.policy.settings = json!({"max": 7});
        assert_eq!(input.settings::<Settings>().unwrap().max, 7);
        input.policy.settings = Value::Null;
        assert_eq!(input.settings::<Settings>().unwrap().max, 0);

        let parsed = test_support::parse_input(
            r#"{"abi":"1.0","policy":{"id":"x","settings":{}},"environment":"dev","tier":"qa","spec":{},
                "artifacts":[{"target":"nginx","path":"nginx/a.conf","text":"a\nb\n"}]}"#,
        );
        assert_eq!(parsed.tier, Tier::Other);
        let lines: Vec<(u32, &str)> = parsed.artifact("nginx/a.conf").unwrap().lines().collect();
        assert_eq!(lines, [(1, "a"), (2, "b")]);
    }

    #[test]
    fn bytes_copies_at_compile_time() {
        const TEXT: &str = "{\"id\":\"x\"}";
        static COPY: [u8; TEXT.len()] = __private::bytes(TEXT);
        assert_eq!(&COPY, TEXT.as_bytes());
    }
}
