//! The policy host: loads policy modules (core WebAssembly, ABI v1, see `policies/ABI.md`) and
//! runs them in a sandbox.
//!
//! The host knows nothing about kiln's spec model: a policy's input is JSON bytes the caller
//! builds, and its output is parsed into [`PolicyOutput`]. What the host guarantees:
//!
//! - A module with any import is refused before it is compiled, so a policy has no I/O: no file
//!   system, network, clock or randomness.
//! - Every call runs in a fresh instance with a fuel budget (deterministic), a memory cap, input
//!   and output size caps, and a wall-clock backstop (epoch interruption). Whatever a module
//!   does, a call ends with a result or a [`PolicyError`]; the host never hangs or panics.
//! - Findings are checked against the metadata: undeclared rules, unknown severities and
//!   malformed output are errors, not silently dropped findings.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kiln_policy_host::{HostConfig, PolicyHost};
//! let host = PolicyHost::new(HostConfig {
//!     cache: kiln_policy_host::CacheDir::for_user(),
//!     ..HostConfig::default()
//! })?;
//! let policy = host.load("web", &std::fs::read("stdlib/policies/std-web.wasm")?)?;
//! let output = policy.check(br#"{"abi":"1.0","policy":{"id":"web","settings":{}},"environment":"production","tier":"production","spec":{}}"#)?;
//! for finding in &output.findings {
//!     println!("{}: {}", finding.rule, finding.message);
//! }
//! # Ok(())
//! # }
//! ```

mod cache;
mod error;
mod inspect;
mod meta;
mod output;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use wasmtime::{
    Config, Engine, Instance, InstancePre, Linker, Module, OptLevel, ResourceLimiter, Store,
    Strategy, Trap,
};

pub use cache::{CacheDir, CacheKey, CacheOutcome, default_key_file};
pub use error::{PolicyError, PolicyErrorKind};
pub use inspect::METADATA_SECTION;
pub use meta::{InputKind, PolicyMeta, RuleDocs, RuleMeta, Severity};
pub use output::{ArtifactRef, PolicyOutput, RawFinding, Related, SettingsError};

use cache::{DiskCache, Lookup, ResultCache};
use error::truncate_chars;

/// The ABI major version this host implements.
pub const ABI_MAJOR: u16 = 1;
/// The ABI version as the input document's `abi` field spells it.
pub const ABI_VERSION: &str = "1.1";
/// The highest ABI minor version this host knows. Modules with a higher minor are accepted
/// (minor versions are additive), but their unknown fields are ignored instead of refused.
pub const ABI_MINOR: u16 = 1;

/// Limits and settings of a [`PolicyHost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Fuel per call: roughly the number of WebAssembly instructions a call may execute, plus
    /// [`fuel_per_input_byte`](HostConfig::fuel_per_input_byte) for each byte of its input.
    /// Deterministic: the same module and input run out at the same point on every machine.
    pub fuel_per_call: u64,
    /// Fuel added per byte of a call's input, so that a policy doing linear work judges an
    /// environment of ten thousand services as surely as one of ten (a fixed budget made the
    /// standard `run` policy run out at 6 000 services).
    pub fuel_per_input_byte: u64,
    /// How long compiling one module may take. Cranelift cannot be interrupted: past the
    /// deadline the compile is abandoned on its thread and the load fails.
    pub compile_deadline: Duration,
    /// The most linear memory a module may have, in bytes.
    pub max_memory_bytes: usize,
    /// The largest input document, in bytes.
    pub max_input_bytes: usize,
    /// The largest output document, in bytes.
    pub max_output_bytes: usize,
    /// Wall-clock time after which a call of the base fuel is stopped regardless of fuel (it
    /// grows in proportion for a call whose input earns it more fuel). A backstop only: fuel
    /// runs out first (an endless loop burns 10⁹ fuel in about 1.5 s on a 2020s x86-64 core),
    /// so which error a runaway policy gets stays deterministic.
    pub wall_clock_backstop: Duration,
    /// Where compiled modules are cached, and the key that authenticates the entries (`None`:
    /// compile every time). See [`CacheDir::for_user`].
    pub cache: Option<CacheDir>,
    /// Whether [`LoadedPolicy::check_cached`] keeps policy outputs in the cache folder (in a
    /// `policy-results` folder), keyed by the module, the limits and the input. Sound because a
    /// module has no imports: its output is a pure function of those.
    pub cache_results: bool,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            fuel_per_call: 1_000_000_000,
            fuel_per_input_byte: 400,
            compile_deadline: Duration::from_secs(60),
            max_memory_bytes: 256 << 20,
            max_input_bytes: 16 << 20,
            max_output_bytes: 4 << 20,
            wall_clock_backstop: Duration::from_secs(10),
            cache: None,
            cache_results: false,
        }
    }
}

/// kiln's cache folder: `$KILN_CACHE_DIR` if set, else `$XDG_CACHE_HOME/kiln`, else
/// `$HOME/.cache/kiln`; `None` if none of these is set. The host keeps compiled modules in a
/// `policy-modules` folder inside it.
///
/// This reads the environment, so only the CLI should call it.
pub fn default_cache_dir() -> Option<PathBuf> {
    user_path("KILN_CACHE_DIR", "XDG_CACHE_HOME", ".cache", "kiln")
}

/// `$OVERRIDE` if set, else `$XDG/<leaf>` (an absolute `$XDG` only, as the XDG base directory
/// specification says), else `$HOME/<home_dir>/<leaf>`.
pub(crate) fn user_path(
    override_var: &str,
    xdg_var: &str,
    home_dir: &str,
    leaf: &str,
) -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = var(override_var) {
        return Some(PathBuf::from(path));
    }
    if let Some(dir) = var(xdg_var).map(PathBuf::from)
        && dir.is_absolute()
    {
        return Some(dir.join(leaf));
    }
    var("HOME").map(|home| Path::new(&home).join(home_dir).join(leaf))
}

/// Reads and validates a module's metadata without compiling it: the cheap
/// pre-compile checks (no imports, the ABI exports, the metadata section) only.
/// `kiln compile --check` uses it to learn policy ids and versions in microseconds.
pub fn read_metadata(bytes: &[u8]) -> Result<PolicyMeta, PolicyErrorKind> {
    let inspection = inspect::inspect(bytes)?;
    PolicyMeta::parse(inspection.metadata)
        .map(|(meta, _)| meta)
        .map_err(|reason| PolicyErrorKind::BadMetadata { reason })
}

/// Loads policy modules. One wasmtime engine (Cranelift, fuel, epoch interruption; no WASI, no
/// component model) and one epoch ticker thread per host.
///
/// Cheap to share: [`LoadedPolicy`] values keep what they need alive on their own.
pub struct PolicyHost {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Engine,
    config: HostConfig,
    cache: Option<DiskCache>,
    results: Option<ResultCache>,
    /// The epoch deadline of a call, in ticks of the ticker thread.
    deadline_ticks: u64,
    _ticker: Ticker,
}

/// Increments the engine's epoch every `tick` until dropped.
struct Ticker {
    _stop: mpsc::Sender<()>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("kiln-policy-epoch".into())
            .spawn(move || {
                // Dropping the sender disconnects the channel and ends the loop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker { _stop: stop })
    }
}

impl PolicyHost {
    /// Creates the engine and starts the epoch ticker. Fails only if wasmtime cannot be set up
    /// on this machine (an unsupported platform) or a thread cannot be spawned.
    pub fn new(config: HostConfig) -> anyhow::Result<PolicyHost> {
        let mut wasm = Config::new();
        wasm.strategy(Strategy::Cranelift)
            .cranelift_opt_level(OptLevel::Speed)
            .consume_fuel(true)
            .epoch_interruption(true)
            .parallel_compilation(true)
            // Same results on every machine: no relaxed-SIMD or NaN-bit differences.
            .relaxed_simd_deterministic(true)
            .cranelift_nan_canonicalization(true)
            .shared_memory(false)
            .wasm_multi_memory(false);
        let engine = Engine::new(&wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
        // About 40 ticks per deadline: precise enough for a backstop, and the ticker thread
        // wakes at most every 250 ms.
        let tick = (config.wall_clock_backstop / 40)
            .clamp(Duration::from_millis(1), Duration::from_millis(250));
        let deadline_ticks = config
            .wall_clock_backstop
            .as_nanos()
            .div_ceil(tick.as_nanos())
            .max(1) as u64;
        let ticker = Ticker::start(engine.clone(), tick)?;
        if let Some(cache) = &config.cache {
            cache::prune_in_background(&cache.path);
        }
        Ok(PolicyHost {
            shared: Arc::new(Shared {
                cache: config.cache.as_ref().map(DiskCache::new),
                results: config
                    .cache
                    .as_ref()
                    .filter(|_| config.cache_results)
                    .map(ResultCache::new),
                engine,
                config,
                deadline_ticks,
                _ticker: ticker,
            }),
        })
    }

    /// The host's limits and settings.
    pub fn config(&self) -> &HostConfig {
        &self.shared.config
    }

    /// Checks, compiles (or fetches from the cache) and instantiates a policy module once to ask
    /// its ABI version.
    ///
    /// Before compiling, the module is refused if it imports anything, has no valid
    /// `kiln.policy.v1` metadata, or lacks an ABI export. `display_name` names the policy in
    /// errors (a file path or a standard policy's name).
    pub fn load(&self, display_name: &str, bytes: &[u8]) -> Result<LoadedPolicy, PolicyError> {
        let fail = |kind| PolicyError::new(display_name, kind);
        let inspection = inspect::inspect(bytes).map_err(fail)?;
        let (meta, meta_json) = PolicyMeta::parse(inspection.metadata)
            .map_err(|reason| fail(PolicyErrorKind::BadMetadata { reason }))?;
        let module_hash = blake3::hash(bytes);
        // With the result cache, a module that loaded before has its ABI version stored: it is
        // compiled only when a call misses the cache (often never, in a recompile).
        let results = self.shared.results.as_ref();
        let abi_key = ResultCache::key(
            &module_hash,
            ABI_VERSION_EXPORT,
            self.shared.limits(),
            &input_identity(b""),
        );
        let known_version = results
            .and_then(|results| results.lookup(&abi_key))
            .and_then(|bytes| Some(u32::from_le_bytes(bytes.try_into().ok()?)));
        let mut policy = LoadedPolicy {
            shared: Arc::clone(&self.shared),
            name: display_name.to_owned(),
            meta,
            module_hash,
            abi: (0, 0),
            strict: true,
            pre: OnceLock::new(),
            source: None,
            has_validate_settings: inspection.has_validate_settings,
            has_last_error: inspection.has_last_error,
            cache: CacheOutcome::Deferred,
        };
        let version = match known_version {
            Some(version) => {
                policy.source = Some(Arc::from(bytes));
                version
            }
            None => {
                let (pre, cache) = self.shared.prepare(bytes, &module_hash).map_err(fail)?;
                policy.pre = OnceLock::from(Ok(pre));
                policy.cache = cache;
                let version = policy.call_abi_version().map_err(fail)? as u32;
                if let Some(results) = results {
                    let _ = results.store(&abi_key, &version.to_le_bytes());
                }
                version
            }
        };
        let (major, minor) = ((version >> 16) as u16, version as u16);
        if major != ABI_MAJOR {
            return Err(fail(PolicyErrorKind::AbiVersion {
                found_major: major,
                found_minor: minor,
                supported_major: ABI_MAJOR,
                supported_minor: ABI_MINOR,
            }));
        }
        policy.abi = (major, minor);
        // A newer minor may add fields this host cannot know; otherwise unknown fields are
        // mistakes and refused.
        let newer_minor = minor > ABI_MINOR;
        policy.strict = !newer_minor;
        if policy.strict
            && let Some(field) = meta::unknown_fields(&meta_json, minor).first()
        {
            return Err(fail(PolicyErrorKind::BadMetadata {
                reason: format!(
                    "unknown field `{}` (ABI {major}.{minor}, which the module declares, does not define it)",
                    truncate_chars(field, 80)
                ),
            }));
        }
        Ok(policy)
    }
}

impl Shared {
    /// The limits a call's outcome depends on (the result cache's key), the input cap
    /// included: a memoized call does not build its input to check it against the cap.
    fn limits(&self) -> [u64; 5] {
        [
            self.config.fuel_per_call,
            self.config.fuel_per_input_byte,
            self.config.max_memory_bytes as u64,
            self.config.max_output_bytes as u64,
            self.config.max_input_bytes as u64,
        ]
    }

    /// Compiles (or fetches from the disk cache) and links a module.
    fn prepare(
        &self,
        bytes: &[u8],
        module_hash: &blake3::Hash,
    ) -> Result<(InstancePre<CallState>, CacheOutcome), PolicyErrorKind> {
        let (module, cache) = self.compile(bytes, module_hash)?;
        let pre = Linker::<CallState>::new(&self.engine)
            .instantiate_pre(&module)
            .map_err(|e| PolicyErrorKind::Compile {
                reason: error_text(&e),
            })?;
        Ok((pre, cache))
    }

    fn compile(
        &self,
        bytes: &[u8],
        module_hash: &blake3::Hash,
    ) -> Result<(Module, CacheOutcome), PolicyErrorKind> {
        let engine = &self.engine;
        let compile = || compile_isolated(engine, bytes, self.config.compile_deadline);
        let Some(disk) = &self.cache else {
            return Ok((compile()?, CacheOutcome::Disabled));
        };
        let key = cache::cache_key(engine, module_hash);
        let outcome = match disk.lookup(engine, &key) {
            Lookup::Hit(module) => return Ok((module, CacheOutcome::Hit)),
            Lookup::Miss => CacheOutcome::Miss,
            Lookup::Bad => CacheOutcome::Rebuilt,
        };
        let module = compile()?;
        // A cache that cannot be written (read-only home, full disk) only costs speed.
        if let Ok(serialized) = module.serialize() {
            let _ = disk.store(&key, &serialized);
        }
        Ok((module, outcome))
    }
}

/// Compiles a module with Cranelift on a plain thread that only waits, its functions spread
/// over a rayon pool of the host's own.
///
/// Callers often run on rayon's global pool, and a deferred compile runs inside a `OnceLock`
/// that other workers of that pool wait on. Were wasmtime's parallel compilation to use the
/// global pool, the compiling worker could, while waiting for its jobs, pick up another job
/// that waits on the same `OnceLock` (itself), or find every worker blocked: a deadlock. A
/// separate pool, entered from a thread that steals nothing, cannot deadlock that way.
///
/// The compile has a deadline: past it, the waiting thread gives up and the compile is left
/// to finish (or not) on its own thread, which holds only its copy of the bytes. The static
/// limits of `inspect` (functions, code size) keep that rare; the deadline bounds what they
/// cannot foresee.
fn compile_isolated(
    engine: &Engine,
    bytes: &[u8],
    deadline: Duration,
) -> Result<Module, PolicyErrorKind> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    let (engine, bytes) = (engine.clone(), bytes.to_vec());
    let (done, result) = mpsc::channel();
    let spawned = thread::Builder::new()
        .name("kiln-compile".into())
        .spawn(move || {
            let pool = POOL.get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .thread_name(|i| format!("kiln-compile-{i}"))
                    .build()
                    .ok()
            });
            let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match pool {
                Some(pool) => pool.install(|| Module::from_binary(&engine, &bytes)),
                None => Module::from_binary(&engine, &bytes),
            }))
            .unwrap_or_else(|_| Err(wasmtime::Error::msg("Cranelift panicked while compiling")));
            let _ = done.send(compiled);
        });
    if let Err(e) = spawned {
        return Err(PolicyErrorKind::Compile {
            reason: format!("cannot start a compile thread: {e}"),
        });
    }
    match result.recv_timeout(deadline) {
        Ok(compiled) => compiled.map_err(|e| PolicyErrorKind::Compile {
            reason: error_text(&e),
        }),
        Err(_) => Err(PolicyErrorKind::CompileTimeout { after: deadline }),
    }
}

/// A policy module that passed all load-time checks, ready to be called.
///
/// `Send + Sync`: [`check`](LoadedPolicy::check) may be called from many threads at once; each
/// call gets its own instance.
pub struct LoadedPolicy {
    shared: Arc<Shared>,
    name: String,
    meta: PolicyMeta,
    module_hash: blake3::Hash,
    abi: (u16, u16),
    strict: bool,
    /// The linked module: compiled at load, or on the first call that needs it when the load
    /// was deferred (then `source` holds the module's bytes until then).
    pre: OnceLock<Result<InstancePre<CallState>, PolicyErrorKind>>,
    source: Option<Arc<[u8]>>,
    has_validate_settings: bool,
    has_last_error: bool,
    cache: CacheOutcome,
}

impl fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("name", &self.name)
            .field("id", &self.meta.id)
            .field("version", &self.meta.version)
            .field("abi", &self.abi)
            .field("module_hash", &self.module_hash.to_hex().as_str())
            .finish_non_exhaustive()
    }
}

/// The export called for a request, and how its output is parsed.
const CHECK: &str = "kiln_check";
const ABI_VERSION_EXPORT: &str = "kiln_abi_version";
const VALIDATE_SETTINGS: &str = "kiln_validate_settings";
/// Fuel for `kiln_last_error`, which only returns a pointer to a message it already has.
const LAST_ERROR_FUEL: u64 = 1_000_000;
/// The longest message taken from `kiln_last_error`, in bytes.
const LAST_ERROR_MAX: usize = 1000;

impl LoadedPolicy {
    /// The name given to [`PolicyHost::load`].
    pub fn display_name(&self) -> &str {
        &self.name
    }

    /// The module's metadata.
    pub fn meta(&self) -> &PolicyMeta {
        &self.meta
    }

    /// The ABI version the module implements, `(major, minor)`.
    pub fn abi_version(&self) -> (u16, u16) {
        self.abi
    }

    /// The blake3 of the module's bytes (what `kiln.lock` records).
    pub fn module_hash(&self) -> blake3::Hash {
        self.module_hash
    }

    /// Whether the module exports `kiln_validate_settings`.
    pub fn has_validate_settings(&self) -> bool {
        self.has_validate_settings
    }

    /// What the disk cache did when this module was loaded.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// Runs `kiln_check` on an input document (see `policies/ABI.md`, "Input") and returns the
    /// findings, checked against the metadata.
    pub fn check(&self, input_json: &[u8]) -> Result<PolicyOutput, PolicyError> {
        self.call(CHECK, input_json, |bytes| {
            output::parse_check_output(bytes, &self.meta, self.strict)
        })
        .map_err(|kind| PolicyError::new(&self.name, kind))
    }

    /// [`check`](LoadedPolicy::check), through the result cache when the host has one
    /// ([`HostConfig::cache_results`]): an input this module has already judged under the same
    /// limits gets the stored output without running the module (the output is still checked
    /// against the metadata). Only successful calls are stored. Do not use it for inputs that
    /// hold secret values: the cache is a folder of files.
    pub fn check_cached(&self, input_json: &[u8]) -> Result<PolicyOutput, PolicyError> {
        self.check_memoized(&input_identity(input_json), || Cow::Borrowed(input_json))
    }

    /// [`check_cached`](LoadedPolicy::check_cached) for a caller that can name an input
    /// without building it: `identity` must determine the input document byte for byte (a
    /// digest of everything the document is built from), and `input` builds the document, only
    /// when the cache misses. kiln names a document by its stream with the spec and each file's
    /// text replaced by their blake3, so a recompile served from the cache never serializes
    /// the hundreds of KB of files an input holds. Two different documents must never share an
    /// identity; [`input_identity`] of the bytes is always a correct one.
    pub fn check_memoized<'a>(
        &self,
        identity: &blake3::Hash,
        input: impl FnOnce() -> Cow<'a, [u8]>,
    ) -> Result<PolicyOutput, PolicyError> {
        let Some(results) = &self.shared.results else {
            return self.check(&input());
        };
        let key = ResultCache::key(&self.module_hash, CHECK, self.shared.limits(), identity);
        if let Some(bytes) = results.lookup(&key)
            && let Ok(output) = output::parse_check_output(&bytes, &self.meta, self.strict)
        {
            return Ok(output);
        }
        self.call(CHECK, &input(), |bytes| {
            let output = output::parse_check_output(bytes, &self.meta, self.strict)?;
            // A cache that cannot be written only costs speed.
            let _ = results.store(&key, bytes);
            Ok(output)
        })
        .map_err(|kind| PolicyError::new(&self.name, kind))
    }

    /// Runs `kiln_validate_settings` on a settings object. `None` when the module does not
    /// export it; `Some(vec![])` when the settings are valid.
    pub fn validate_settings(
        &self,
        settings_json: &[u8],
    ) -> Result<Option<Vec<SettingsError>>, PolicyError> {
        if !self.has_validate_settings {
            return Ok(None);
        }
        self.call(VALIDATE_SETTINGS, settings_json, |bytes| {
            output::parse_settings_output(bytes, self.strict)
        })
        .map(Some)
        .map_err(|kind| PolicyError::new(&self.name, kind))
    }

    /// A store for one call on an input of `input` bytes: its fuel is the base budget plus
    /// the per-byte budget, and the wall-clock backstop grows in the same proportion.
    fn new_store(&self, input: usize) -> Store<CallState> {
        let config = &self.shared.config;
        let fuel = config
            .fuel_per_call
            .saturating_add(config.fuel_per_input_byte.saturating_mul(input as u64));
        let scale = fuel.div_ceil(config.fuel_per_call.max(1));
        let mut store = Store::new(
            &self.shared.engine,
            CallState {
                limiter: Limiter {
                    max_memory: config.max_memory_bytes,
                },
                fuel,
                input,
                backstop: config
                    .wall_clock_backstop
                    .saturating_mul(u32::try_from(scale).unwrap_or(u32::MAX)),
            },
        );
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(fuel)
            .expect("fuel consumption is enabled in the engine config");
        store.set_epoch_deadline(self.shared.deadline_ticks.saturating_mul(scale));
        store
    }

    fn instantiate(&self, store: &mut Store<CallState>) -> Result<Instance, PolicyErrorKind> {
        let pre = self
            .pre
            .get_or_init(|| match &self.source {
                Some(bytes) => self
                    .shared
                    .prepare(bytes, &self.module_hash)
                    .map(|(pre, _)| pre),
                None => unreachable!("a module loaded without deferring is already prepared"),
            })
            .as_ref()
            .map_err(Clone::clone)?;
        pre.instantiate(&mut *store)
            .map_err(|e| self.classify(e, store, None, error::INSTANTIATION))
    }

    fn call_abi_version(&self) -> Result<i32, PolicyErrorKind> {
        const F: &str = ABI_VERSION_EXPORT;
        let mut store = self.new_store(0);
        let instance = self.instantiate(&mut store)?;
        let func = instance
            .get_typed_func::<(), i32>(&mut store, F)
            .expect("the signature was checked before compiling");
        func.call(&mut store, ())
            .map_err(|e| self.classify(e, &mut store, Some(&instance), F))
    }

    /// One call: fresh instance, `kiln_alloc`, copy the input in, call `function`, parse the
    /// output in place.
    fn call<T>(
        &self,
        function: &'static str,
        input: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<T, PolicyErrorKind>,
    ) -> Result<T, PolicyErrorKind> {
        let config = &self.shared.config;
        let max_input = config.max_input_bytes.min(i32::MAX as usize);
        if input.len() > max_input {
            return Err(PolicyErrorKind::InputTooLarge {
                len: input.len(),
                max: max_input,
            });
        }
        let len = input.len() as u32;
        let mut store = self.new_store(input.len());
        let instance = self.instantiate(&mut store)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .expect("the export was checked before compiling");
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "kiln_alloc")
            .expect("the signature was checked before compiling");
        let ptr = alloc
            .call(&mut store, len as i32)
            .map_err(|e| self.classify(e, &mut store, Some(&instance), "kiln_alloc"))?
            as u32;
        if ptr == 0 {
            return Err(PolicyErrorKind::OutOfMemory {
                function: "kiln_alloc",
                detail: format!("it returned 0 when asked for {len} bytes for the input"),
            });
        }
        memory
            .write(&mut store, ptr as usize, input)
            .map_err(|_| PolicyErrorKind::BadPointer {
                function: "kiln_alloc",
                ptr,
                len,
                memory_size: memory.data_size(&store),
            })?;
        let func = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, function)
            .expect("the signature was checked before compiling");
        let packed = func
            .call(&mut store, (ptr as i32, len as i32))
            .map_err(|e| self.classify(e, &mut store, Some(&instance), function))?
            as u64;
        let (out_ptr, out_len) = ((packed >> 32) as u32, packed as u32);
        if out_len as usize > config.max_output_bytes {
            return Err(PolicyErrorKind::OutputTooLarge {
                len: out_len as usize,
                max: config.max_output_bytes,
            });
        }
        let data = memory.data(&store);
        let start = out_ptr as usize;
        let output =
            data.get(start..start + out_len as usize)
                .ok_or(PolicyErrorKind::BadPointer {
                    function,
                    ptr: out_ptr,
                    len: out_len,
                    memory_size: data.len(),
                })?;
        parse(output)
    }

    /// Turns a wasmtime error from instantiation or a call into a [`PolicyErrorKind`].
    fn classify(
        &self,
        error: wasmtime::Error,
        store: &mut Store<CallState>,
        instance: Option<&Instance>,
        function: &'static str,
    ) -> PolicyErrorKind {
        let limit = error.downcast_ref::<LimitExceeded>().or_else(|| {
            error
                .chain()
                .find_map(|e| e.downcast_ref::<LimitExceeded>())
        });
        if let Some(limit) = limit {
            return PolicyErrorKind::OutOfMemory {
                function,
                detail: limit.to_string(),
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => PolicyErrorKind::OutOfFuel {
                function,
                fuel: store.data().fuel,
                input: store.data().input,
            },
            Some(Trap::Interrupt) => PolicyErrorKind::Timeout {
                function,
                after: store.data().backstop,
            },
            trap => PolicyErrorKind::Trap {
                function,
                message: match trap {
                    Some(trap) => trap.to_string(),
                    None => error_text(&error),
                },
                policy_message: instance.and_then(|i| self.last_error(store, i)),
            },
        }
    }

    /// Asks a trapped instance for its `kiln_last_error` message (a Rust policy's panic
    /// message), with a small fresh fuel budget. Any failure just means no message.
    fn last_error(&self, store: &mut Store<CallState>, instance: &Instance) -> Option<String> {
        if !self.has_last_error {
            return None;
        }
        store.set_fuel(LAST_ERROR_FUEL).ok()?;
        store.set_epoch_deadline(self.shared.deadline_ticks);
        let func = instance
            .get_typed_func::<(), i64>(&mut *store, "kiln_last_error")
            .ok()?;
        let packed = func.call(&mut *store, ()).ok()? as u64;
        let (ptr, len) = ((packed >> 32) as usize, (packed as u32) as usize);
        let memory = instance.get_memory(&mut *store, "memory")?;
        let bytes = memory
            .data(&*store)
            .get(ptr..ptr.checked_add(len)?)?
            .get(..len.min(LAST_ERROR_MAX))?;
        // One line, for a diagnostic: Rust's "panicked at FILE:LINE:COL:\nMESSAGE" becomes
        // "panicked at FILE:LINE:COL: MESSAGE".
        let text = String::from_utf8_lossy(bytes);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        (!text.is_empty()).then_some(text)
    }
}

/// The text of a wasmtime error with its causes, cut to a readable length.
fn error_text(error: &wasmtime::Error) -> String {
    let causes: Vec<String> = error.chain().map(|c| c.to_string()).collect();
    truncate_chars(&causes.join(": "), 500)
}

/// What each call's `Store` holds.
struct CallState {
    limiter: Limiter,
    /// The call's fuel, input size and wall-clock backstop, for its error.
    fuel: u64,
    input: usize,
    backstop: Duration,
}

/// Caps a module's memory. Growing past the cap traps (instead of making `memory.grow` return
/// -1, which the WebAssembly spec would also allow) so the error says "out of memory" instead
/// of whatever the module does next (a Rust module would abort with a bare `unreachable`).
struct Limiter {
    max_memory: usize,
}

/// The identity of an input document for [`LoadedPolicy::check_memoized`]: the blake3 of its
/// bytes, in a domain of its own.
pub fn input_identity(input_json: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_derive_key("kiln-policy-host 2026 input document bytes");
    h.update(input_json);
    h.finalize()
}

/// Tables hold one pointer per element; this keeps them at 8 MiB, far more than any policy needs.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

#[derive(Debug)]
struct LimitExceeded(String);

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitExceeded {}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(wasmtime::Error::new(LimitExceeded(format!(
                "the module tried to grow its memory from {current} to {desired} bytes, over the limit of {} bytes",
                self.max_memory
            ))));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::new(LimitExceeded(format!(
                "the module tried to grow a table from {current} to {desired} elements, over the limit of {MAX_TABLE_ELEMENTS}"
            ))));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_policy_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LoadedPolicy>();
        assert_send_sync::<PolicyHost>();
    }
}
