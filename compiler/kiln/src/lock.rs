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
        match parse_canonical(text) {
            Some(lock) => Ok(lock),
            None => Lock::parse_kdl(text),
        }
    }

    /// Reads any KDL spelling of a lock.
    fn parse_kdl(text: &str) -> Result<Lock, String> {
        use kiln_core::syntax::{Node, Value};
        let (nodes, _) = kiln_core::reader::read(text, kiln_core::FileId(0))
            .map_err(|e| format!("not KDL: {}", e.message))?;
        let mut lock = Lock::default();
        let mut version = None;
        for node in &nodes {
            let arg = |i: usize| {
                node.args
                    .get(i)
                    .and_then(|a| a.value.as_str())
                    .map(str::to_owned)
            };
            let prop = |k: &str| {
                node.children
                    .iter()
                    .rev()
                    .find(|c: &&Node| c.from_prop && c.name == k)
                    .and_then(|c| c.args.first())
                    .and_then(|a| a.value.as_str())
                    .map(str::to_owned)
            };
            let need = |v: Option<String>, what: &str| {
                v.ok_or_else(|| format!("`{}` entry without {what}", node.name))
            };
            match node.name.as_str() {
                "lock-version" => {
                    version = match node.args.first().map(|a| &a.value) {
                        Some(Value::Int(v)) => Some(*v),
                        _ => None,
                    }
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
                other => {
                    return Err(format!(
                        "unknown entry `{}`",
                        kiln_core::diagnostic::quote_for_terminal(other)
                    ));
                }
            }
        }
        match version {
            Some(v) if v == LOCK_VERSION => Ok(lock),
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

/// The fast path of [`Lock::parse`]: a lock exactly as [`Lock::render`] writes
/// it (what `kiln compile` leaves on disk), read line by line instead of
/// through the KDL parser, which costs milliseconds on a lock of a few hundred
/// lines and would dominate `kiln compile --check`. Anything else (a hand-edited,
/// reordered or non-ASCII lock) returns `None` and goes through the KDL parser.
/// The result is only used if rendering it gives back the same text, so both
/// paths read the same lock.
fn parse_canonical(text: &str) -> Option<Lock> {
    let mut lock = Lock::default();
    let mut version = false;
    for line in text.lines() {
        if line.starts_with("//") {
            continue;
        }
        let (kind, rest) = line.split_once(' ')?;
        match kind {
            "lock-version" => version = rest == LOCK_VERSION.to_string(),
            "compiler" => {
                let (v, rest) = unquote(rest)?;
                if !rest.is_empty() {
                    return None;
                }
                lock.compiler = v;
            }
            "input" | "preset" | "output" => {
                let (key, rest) = unquote(rest)?;
                let (h, rest) = unquote(rest.strip_prefix(" blake3=")?)?;
                if !rest.is_empty() {
                    return None;
                }
                let map = match kind {
                    "input" => &mut lock.inputs,
                    "preset" => &mut lock.presets,
                    _ => &mut lock.outputs,
                };
                map.insert(key, h);
            }
            "policy" => {
                let (id, rest) = unquote(rest)?;
                let (v, rest) = unquote(rest.strip_prefix(" version=")?)?;
                let (h, rest) = unquote(rest.strip_prefix(" blake3=")?)?;
                if !rest.is_empty() {
                    return None;
                }
                lock.policies.insert(
                    id,
                    PolicyEntry {
                        version: v,
                        hash: h,
                    },
                );
            }
            _ => return None,
        }
    }
    (version && lock.render() == text).then_some(lock)
}

/// A string as [`quote`] writes it, restricted to printable ASCII (where KDL
/// gives no other character a meaning), and the text after it.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => match chars.next()?.1 {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                _ => return None,
            },
            ' '..='~' => out.push(c),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        let mut l = Lock {
            compiler: "0.1.0".into(),
            ..Lock::default()
        };
        l.inputs.insert("kiln.kdl".into(), hash(b"a"));
        l.inputs
            .insert("inc/we \"ird\\ name\n.kdl".into(), hash(b"b"));
        l.presets.insert("redis".into(), hash(b"c"));
        l.policies.insert(
            "web".into(),
            PolicyEntry {
                version: "1.0.0".into(),
                hash: hash(b"d"),
            },
        );
        l.outputs
            .insert("generated/production/nginx/nginx.conf".into(), hash(b"e"));
        l
    }

    #[test]
    fn canonical_fast_path_reads_what_kdl_reads() {
        let lock = sample();
        let text = lock.render();
        assert_eq!(parse_canonical(&text).as_ref(), Some(&lock));
        assert_eq!(Lock::parse_kdl(&text).as_ref(), Ok(&lock));
        assert_eq!(Lock::parse(&text).as_ref(), Ok(&lock));
    }

    #[test]
    fn anything_but_the_canonical_text_goes_through_kdl() {
        let text = sample().render();
        let variants = [
            text.replace("lock-version 1", "lock-version 2"),
            text.replace("input \"kiln.kdl\"", "input  \"kiln.kdl\""),
            text.replace("input \"kiln.kdl\"", "input \"kiln.kdl\" // note"),
            text.replace("redis", "r\u{e9}dis"),
            text.replace("redis", "red\\u{69}s"),
            format!("{text}{}", text.lines().nth(3).unwrap()),
            text.lines().rev().collect::<Vec<_>>().join("\n"),
            text.replace('\n', "\r\n"),
            text.trim_end().to_owned(),
        ];
        for v in &variants {
            assert_eq!(parse_canonical(v), None, "{v}");
            assert_eq!(Lock::parse(v), Lock::parse_kdl(v), "{v}");
        }
    }
}
