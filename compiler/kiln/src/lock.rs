//! `kiln.lock`: the blake3 of every input (spec files, stdlib presets, policy
//! modules) and output of a compile. KDL, sorted, one entry a line, paths
//! relative to the project folder, so it is identical on every machine.

use std::collections::BTreeMap;

pub const LOCK_FILE: &str = "kiln.lock";
pub const LOCK_VERSION: i64 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lock {
    pub compiler: String,
    /// Spec files, by path relative to the project folder.
    pub inputs: BTreeMap<String, String>,
    /// Stdlib presets in use, by name.
    pub presets: BTreeMap<String, String>,
    /// Policy modules, by id.
    pub policies: BTreeMap<String, PolicyEntry>,
    /// Generated files, by path relative to the project folder.
    pub outputs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    pub version: String,
    pub hash: String,
}

pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Lock {
    pub fn render(&self) -> String {
        let mut out = String::from(
            "// kiln.lock: written by `kiln compile`, verified by `kiln compile --check`. Do not edit.\n",
        );
        out.push_str(&format!("lock-version {LOCK_VERSION}\n"));
        out.push_str(&format!("compiler {}\n", quote(&self.compiler)));
        for (path, h) in &self.inputs {
            out.push_str(&format!("input {} blake3={}\n", quote(path), quote(h)));
        }
        for (name, h) in &self.presets {
            out.push_str(&format!("preset {} blake3={}\n", quote(name), quote(h)));
        }
        for (id, p) in &self.policies {
            out.push_str(&format!(
                "policy {} version={} blake3={}\n",
                quote(id),
                quote(&p.version),
                quote(&p.hash)
            ));
        }
        for (path, h) in &self.outputs {
            out.push_str(&format!("output {} blake3={}\n", quote(path), quote(h)));
        }
        out
    }

    pub fn parse(text: &str) -> Result<Lock, String> {
        let doc: kdl::KdlDocument = text.parse().map_err(|e: kdl::KdlError| {
            e.diagnostics
                .first()
                .and_then(|d| d.message.clone())
                .unwrap_or_else(|| "invalid KDL".into())
        })?;
        let mut lock = Lock::default();
        let mut version = None;
        for node in doc.nodes() {
            let arg = |i: usize| {
                node.entries()
                    .iter()
                    .filter(|e| e.name().is_none())
                    .nth(i)
                    .and_then(|e| e.value().as_string())
                    .map(str::to_owned)
            };
            let prop = |k: &str| node.get(k).and_then(|v| v.as_string()).map(str::to_owned);
            let need = |v: Option<String>, what: &str| {
                v.ok_or_else(|| format!("`{}` entry without {what}", node.name().value()))
            };
            match node.name().value() {
                "lock-version" => {
                    version = node.entries().first().and_then(|e| e.value().as_integer())
                }
                "compiler" => lock.compiler = need(arg(0), "a version")?,
                "input" => {
                    lock.inputs
                        .insert(need(arg(0), "a path")?, need(prop("blake3"), "blake3")?);
                }
                "preset" => {
                    lock.presets
                        .insert(need(arg(0), "a name")?, need(prop("blake3"), "blake3")?);
                }
                "policy" => {
                    lock.policies.insert(
                        need(arg(0), "an id")?,
                        PolicyEntry {
                            version: need(prop("version"), "version")?,
                            hash: need(prop("blake3"), "blake3")?,
                        },
                    );
                }
                "output" => {
                    lock.outputs
                        .insert(need(arg(0), "a path")?, need(prop("blake3"), "blake3")?);
                }
                other => return Err(format!("unknown entry `{other}`")),
            }
        }
        match version {
            Some(v) if v as i64 == LOCK_VERSION => Ok(lock),
            Some(v) => Err(format!(
                "lock version {v} is not supported (this kiln reads version {LOCK_VERSION})"
            )),
            None => Err("no `lock-version`".into()),
        }
    }

    /// Everything but the outputs: if this matches, the outputs cannot have changed.
    pub fn same_inputs(&self, other: &Lock) -> bool {
        self.compiler == other.compiler
            && self.inputs == other.inputs
            && self.presets == other.presets
            && self.policies == other.policies
    }
}
