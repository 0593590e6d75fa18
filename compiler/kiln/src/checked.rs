//! The policies of a build: loading their modules (the embedded standard library and the
//! modules a spec declares, pinned by blake3), the build that runs them on every
//! environment (`build_checked`), and what reports and the lock need of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Result;
use kiln::build::Build;
use kiln::lock::{PolicyEntry, hash};
use kiln::policy::{Date, Policy};
use kiln::report::RuleInfo;
use kiln_core::diagnostic::{Diagnostic, normalize};
use kiln_core::model::Model;
use kiln_core::project::Project;
use kiln_core::source::Span;
use kiln_policy_host::{HostConfig, PolicyHost};

use crate::disk::{self, OutputLock, ProjectDir};

fn host() -> &'static Result<PolicyHost, String> {
    static HOST: OnceLock<Result<PolicyHost, String>> = OnceLock::new();
    HOST.get_or_init(|| {
        let config = HostConfig {
            // Entries are authenticated by a per-user key kept outside the cache folder, so a
            // cache restored from another branch's CI run can be neither trusted nor forged.
            cache: kiln_policy_host::CacheDir::for_user(),
            // Policy outputs are cached unless KILN_NO_RESULT_CACHE is set (for benchmarks
            // and for suspicion); the inputs of `kiln secrets check` never are.
            cache_results: std::env::var_os("KILN_NO_RESULT_CACHE").is_none_or(|v| v.is_empty()),
            ..HostConfig::default()
        };
        PolicyHost::new(config).map_err(|e| format!("{e:#}"))
    })
}

/// The standard library, loaded (compiled or fetched from the cache) once.
fn stdlib() -> Result<&'static [Arc<Policy>], String> {
    static STD: OnceLock<Result<Vec<Arc<Policy>>, String>> = OnceLock::new();
    STD.get_or_init(|| kiln::stdlib::load(host().as_ref().map_err(Clone::clone)?))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// Starts loading the standard library on another thread, so that fetching
/// the compiled modules from the cache (or compiling them) overlaps with
/// parsing, resolving and emitting. [`build_checked`] then finds it loaded, or
/// waits for it. If the build fails first, the work is simply not used.
pub fn prefetch_stdlib() {
    let _ = std::thread::Builder::new()
        .name("kiln-stdlib-prefetch".into())
        .spawn(|| {
            let _ = stdlib();
        });
}

pub fn policy_entries() -> BTreeMap<String, PolicyEntry> {
    kiln::stdlib::lock_entries()
}

pub fn rule_infos() -> BTreeMap<String, RuleInfo> {
    kiln::stdlib::rule_infos()
}

pub fn std_metas() -> &'static [(String, String, kiln_policy_host::PolicyMeta)] {
    kiln::stdlib::metas()
}

fn today() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Date::from_unix_days((secs / 86_400) as i64)
}

/// A spec's module, or why it cannot be used.
type Loaded = Result<Arc<Policy>, Box<Diagnostic>>;

/// The modules the environments' specs declare, each read, checked against its
/// pin and loaded once (environments share them), on first use.
pub struct SpecModules<'a> {
    root: &'a ProjectDir,
    /// By path and pin (environments may pin one path differently): the module, or why it
    /// cannot be used (the diagnostic without its label, which depends on the declaration).
    loaded: Mutex<BTreeMap<(String, Option<String>), Loaded>>,
}

impl SpecModules<'_> {
    pub fn new(root: &ProjectDir) -> SpecModules<'_> {
        SpecModules {
            root,
            loaded: Mutex::new(BTreeMap::new()),
        }
    }

    /// The modules `model` declares, and the diagnostics of those that cannot be used.
    pub fn for_env(&self, model: &Model) -> (Vec<Arc<Policy>>, Vec<Diagnostic>) {
        let mut modules = Vec::new();
        let mut diags = Vec::new();
        for (path, m) in &model.policies.modules {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            let entry = loaded
                .entry((path.clone(), m.blake3.clone()))
                .or_insert_with(|| self.load(path, m.blake3.as_deref(), m.span));
            match entry {
                Ok(p) => modules.push(p.clone()),
                Err(d) => diags.push(match m.span {
                    Some(s) => (**d).clone().with_label(s, "declared here"),
                    None => (**d).clone(),
                }),
            }
        }
        (modules, diags)
    }

    fn load(&self, path: &str, pin: Option<&str>, span: Option<Span>) -> Loaded {
        if !kiln::build::safe_relative(path) {
            return Err(Box::new(
                Diagnostic::error(
                    "module-path",
                    format!("module path `{}` leaves the project folder", path),
                )
                .with_help("keep policy modules inside the project and name them by relative path"),
            ));
        }
        let bytes = self.root.read(path, disk::MAX_MODULE_BYTES).map_err(|e| {
            let d = match e {
                disk::FsError::Refused(r) => Diagnostic::error(
                    "unsafe-path",
                    format!(
                        "cannot read policy module `{}`: {}",
                        kiln_core::diagnostic::quote_for_terminal(path),
                        r.describe("project")
                    ),
                )
                .with_help(r.help()),
                e => Diagnostic::error(
                    "module-missing",
                    format!(
                        "cannot read policy module `{}`: {e}",
                        kiln_core::diagnostic::quote_for_terminal(path)
                    ),
                )
                .with_help("check the path; it is relative to the project folder"),
            };
            Box::new(d)
        })?;
        let actual = hash(&bytes);
        match pin {
            None => {
                return Err(Box::new(
                    Diagnostic::error(
                        "module-unpinned",
                        format!("policy module `{}` is not pinned", path),
                    )
                    .with_help(format!(
                        "add `blake3=\"{actual}\"` so a changed module cannot slip in unreviewed"
                    )),
                ));
            }
            Some(pin) if pin != actual => {
                return Err(Box::new(Diagnostic::error("module-hash-mismatch", format!("policy module `{}` does not match its pin", path))
                    .with_help(format!("the file's blake3 is {actual}; if this change is intended and reviewed, update the pin"))
                    .with_note(format!("pinned: {pin}"))));
            }
            Some(_) => {}
        }
        let host = host().as_ref().map_err(|e| {
            let d = Diagnostic::error(
                "policy-host",
                format!("cannot start the policy engine: {e}"),
            )
            .with_help("this is a bug in kiln; please report it");
            Box::new(d)
        })?;
        match host.load(path, &bytes) {
            Ok(module) => Ok(Arc::new(Policy {
                module,
                declared_at: span,
                spec_path: Some(path.to_owned()),
            })),
            Err(e) => Err(Diagnostic::error(
                "policy-invalid",
                format!(
                    "policy module `{}` cannot be used: {}",
                    kiln_core::diagnostic::quote_for_terminal(path),
                    kiln_core::diagnostic::quote_for_terminal(&e.kind().to_string())
                ),
            )
            .with_help(e.help())
            .into()),
        }
    }
}

/// What [`build_checked`] keeps of each environment once its policies ran.
pub enum Keep<'a> {
    /// Everything: models and line provenance, which `diff` and `explain` map output lines
    /// back to the spec with.
    All,
    /// The files' text only.
    Files,
    /// The text of the files that differ from the disk only: files already on disk byte for
    /// byte move to [`EnvBuild::settled`](kiln::build::EnvBuild::settled) with their hash.
    /// For `kiln compile`, which holds the output folder's lock for the whole build, so the
    /// disk cannot change between this comparison and the write.
    Changed {
        /// The output folder, whose lock is held.
        output: &'a OutputLock,
    },
}

/// Builds the selected environments and judges each with every policy as soon
/// as it is built, in parallel. Policy findings are kept only when the build
/// itself has no error (a broken spec is reported alone).
///
/// Unless `keep` is [`Keep::All`], each environment's model and line provenance
/// are dropped once its policies ran, so that a build of a thousand
/// environments holds their files, not their models.
/// A progress line for long compiles: only on a terminal, only for many environments.
fn progress_bar(show: bool, project: &Project, envs: &[String]) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return None;
    }
    let total = kiln::build::select_environments(project, envs, &mut Vec::new()).len();
    if total < PROGRESS_FROM {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "kiln: compiling {pos}/{len} environments [{bar:30}] {elapsed}, about {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Some(bar)
}

/// From how many environments a compile on a terminal shows its progress.
const PROGRESS_FROM: usize = 20;

pub fn build_checked(
    root: &ProjectDir,
    project: Project,
    diags: Vec<Diagnostic>,
    envs: &[String],
    keep: Keep<'_>,
    show_progress: bool,
) -> Build {
    let modules = SpecModules::new(root);
    let today = today();
    let tripped = kiln::policy::Tripped::default();
    let bar = progress_bar(show_progress, &project, envs);
    let (mut b, found) = kiln::build::build_with(project, diags, envs, |project, env| {
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        let mut out = Vec::new();
        if let Some(model) = &env.model {
            match stdlib() {
                Ok(std) => {
                    let (extra, mut failed) = modules.for_env(model);
                    out.append(&mut failed);
                    out.extend(kiln::policy::check_env(
                        env,
                        std,
                        &extra,
                        today,
                        &project.sources,
                        &tripped,
                    ));
                }
                Err(e) => out.push(
                    Diagnostic::error("policy-host", e)
                        .with_help("this is a bug in kiln; please report it"),
                ),
            }
        }
        if matches!(keep, Keep::All) {
            return out;
        }
        env.model = None;
        for a in &mut env.artifacts {
            a.lines = Default::default();
        }
        if let Keep::Changed { output } = keep
            && !out.iter().any(Diagnostic::is_error)
        {
            let (same, differ): (Vec<_>, Vec<_>) = std::mem::take(&mut env.artifacts)
                .into_iter()
                .partition(|a| output.same(&a.path, a.text.as_bytes()));
            env.settled = same
                .into_iter()
                .map(|a| {
                    let h = hash(a.text.as_bytes());
                    (a.path, h)
                })
                .collect();
            env.artifacts = differ;
        }
        out
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if !b.has_errors() {
        b.diagnostics.extend(found);
        kiln::build::merge_across_environments(&mut b.diagnostics);
        normalize(&mut b.diagnostics);
    }
    b
}

/// Evaluates every policy that asks for secret values over one environment.
pub fn secret_policies(b: &Build, values: &BTreeMap<String, String>) -> Result<Vec<Diagnostic>> {
    let std = stdlib().map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    for env in &b.envs {
        let Some(model) = &env.model else { continue };
        let spec = model.to_json();
        for p in std.iter().filter(|p| {
            p.module
                .meta()
                .inputs
                .contains(&kiln_policy_host::InputKind::SecretValues)
        }) {
            out.extend(kiln::policy::evaluate(
                p,
                model,
                &spec,
                &env.artifacts,
                Some(values),
                &b.project.sources,
            ));
        }
    }
    Ok(out)
}
