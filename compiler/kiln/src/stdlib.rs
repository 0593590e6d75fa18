//! The standard policy library embedded in the binary, and what can be known
//! about it without compiling it (ids, versions, hashes, rule docs).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use kiln_policy_host::{PolicyHost, PolicyMeta};

use crate::lock::{PolicyEntry, hash};
use crate::policy::Policy;
use crate::report::RuleInfo;

/// The standard policy modules (`stdlib/policies/*.wasm`), embedded at build time.
pub const STD_MODULES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/std_policies.rs"));

/// (file stem, blake3, metadata) of every standard module, read without compiling.
pub fn metas() -> &'static [(String, String, PolicyMeta)] {
    static METAS: OnceLock<Vec<(String, String, PolicyMeta)>> = OnceLock::new();
    METAS.get_or_init(|| {
        STD_MODULES
            .iter()
            .map(|(name, bytes)| {
                let meta = kiln_policy_host::read_metadata(bytes)
                    .unwrap_or_else(|e| panic!("standard policy {name} has invalid metadata: {e}"));
                ((*name).to_owned(), hash(bytes), meta)
            })
            .collect()
    })
}

/// Compiles (or fetches from the host's cache) every standard module, in parallel.
///
/// On plain threads, not rayon's: this runs on the prefetch thread while rayon's workers may be
/// waiting for it (see `policy_cmd::build_checked`); jobs queued on their pool would never run.
pub fn load(host: &PolicyHost) -> Result<Vec<Arc<Policy>>, String> {
    std::thread::scope(|scope| {
        let loading: Vec<_> = STD_MODULES
            .iter()
            .map(|(name, bytes)| {
                let handle = scope.spawn(move || {
                    host.load(&format!("stdlib/policies/{name}.wasm"), bytes)
                        .map(|module| {
                            Arc::new(Policy {
                                module,
                                declared_at: None,
                                spec_path: None,
                            })
                        })
                        .map_err(|e| {
                            format!("internal error: standard policy {name} does not load: {e}")
                        })
                });
                (name, handle)
            })
            .collect();
        loading
            .into_iter()
            .map(|(name, handle)| {
                handle.join().unwrap_or_else(|_| {
                    Err(format!(
                        "internal error: loading standard policy {name} panicked"
                    ))
                })
            })
            .collect()
    })
}

/// Lock entries: policy id → version and blake3 of its module.
pub fn lock_entries() -> BTreeMap<String, PolicyEntry> {
    metas()
        .iter()
        .map(|(_, h, m)| {
            (
                m.id.clone(),
                PolicyEntry {
                    version: m.version.clone(),
                    hash: h.clone(),
                },
            )
        })
        .collect()
}

/// Rule documentation for SARIF and `kiln explain RULE`.
pub fn rule_infos() -> BTreeMap<String, RuleInfo> {
    let mut out = BTreeMap::new();
    for (_, _, meta) in metas() {
        for r in &meta.rules {
            out.insert(
                r.id.clone(),
                RuleInfo {
                    id: r.id.clone(),
                    summary: r.summary.clone(),
                    help: format!("{}\n\n{}", r.docs.what, r.docs.why),
                    upstream: r.upstream.clone(),
                },
            );
        }
    }
    out
}
