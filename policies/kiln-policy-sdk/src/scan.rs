//! Small, tolerant scanners for the rendered files a policy receives as artifacts: the YAML
//! that compose and Kubernetes read, and systemd unit files. They keep the 1-based line of
//! everything they find, so a finding can point at it with [`Finding::at_artifact`].
//!
//! They are not full parsers: they read the block-style YAML and the unit files kiln's emitters
//! write (and most hand-written ones), and never fail. What they cannot read they skip.
//!
//! ```
//! use kiln_policy_sdk::scan::{yaml, unit};
//!
//! let doc = yaml("services:\n  web:\n    ports:\n      - \"80:80\"\n");
//! let web = doc.get("services").and_then(|s| s.get("web")).unwrap();
//! let ports: Vec<(String, u32)> = web.items("ports").map(|p| (p.text().to_owned(), p.line)).collect();
//! assert_eq!(ports, [("80:80".to_owned(), 4)]);
//!
//! let u = unit("[Service]\nUser=app\nNoNewPrivileges=yes\n");
//! assert_eq!(u.get("Service", "NoNewPrivileges").map(|e| e.value.as_str()), Some("yes"));
//! ```
//!
//! [`Finding::at_artifact`]: crate::Finding::at_artifact

/// One YAML node: a `key: value` line, a `- item` line, or the document root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct YamlNode {
    /// 1-based line (0 for the root).
    pub line: u32,
    /// The key of a `key: value` line, or of the first `key: value` of a `- key: value` item.
    pub key: Option<String>,
    /// The scalar after the key (or after `- `), unquoted; `None` when the value is a block
    /// (children on the next lines) or a block scalar (`|`, `>`).
    pub value: Option<String>,
    /// Whether the line starts with `- `.
    pub item: bool,
    /// The lines nested under this one. For a `- key: value` item: the item's other keys.
    pub children: Vec<YamlNode>,
}

impl YamlNode {
    /// The scalar value, or `""`.
    pub fn text(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }

    /// The child with this key. For an item `- name: web`, `get("name")` finds the item's own
    /// first key as well as its other keys.
    pub fn get(&self, key: &str) -> Option<&YamlNode> {
        if self.item && self.key.as_deref() == Some(key) {
            return Some(self);
        }
        self.children
            .iter()
            .find(|c| !c.item && c.key.as_deref() == Some(key))
    }

    /// The `key: value` children (a mapping's entries), in order.
    pub fn entries(&self) -> impl Iterator<Item = &YamlNode> {
        self.children.iter().filter(|c| !c.item && c.key.is_some())
    }

    /// The `- …` items under `key`, in order; a flow sequence (`key: [a, b]`) gives one
    /// synthetic item per element, on the key's line.
    pub fn items<'a>(&'a self, key: &str) -> Box<dyn Iterator<Item = YamlNode> + 'a> {
        match self.get(key) {
            Some(node) => Box::new(node.list()),
            None => Box::new(std::iter::empty()),
        }
    }

    /// This node's items (see [`items`](YamlNode::items)).
    pub fn list(&self) -> impl Iterator<Item = YamlNode> + '_ {
        let flow: Vec<YamlNode> = match self.value.as_deref().map(str::trim) {
            Some(v) if v.starts_with('[') && v.ends_with(']') && !self.item => {
                split_flow(&v[1..v.len() - 1])
                    .into_iter()
                    .map(|value| YamlNode {
                        line: self.line,
                        key: None,
                        value: Some(value),
                        item: true,
                        children: Vec::new(),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        flow.into_iter()
            .chain(self.children.iter().filter(|c| c.item).cloned())
    }

    /// Every node below this one, depth first.
    pub fn descendants(&self) -> Vec<&YamlNode> {
        let mut out = Vec::new();
        let mut stack: Vec<&YamlNode> = self.children.iter().rev().collect();
        while let Some(n) = stack.pop() {
            out.push(n);
            stack.extend(n.children.iter().rev());
        }
        out
    }
}

/// Splits the inside of a flow sequence on top-level commas and unquotes each element.
fn split_flow(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (None, ',') => {
                out.push(unquote(current.trim()));
                current.clear();
            }
            (None, c) => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        out.push(unquote(current.trim()));
    }
    out
}

/// A YAML scalar as written (`"a\"b"`, `'it''s'`, `plain # comment`), unquoted.
pub fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return out;
    }
    if let Some(inner) = raw.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    // A plain scalar ends at ` #`.
    match raw.find(" #") {
        Some(i) => raw[..i].trim_end().to_owned(),
        None => raw.to_owned(),
    }
}

/// Where `key: value` splits: the first `: ` (or a final `:`) outside quotes.
fn split_key(text: &str) -> Option<(String, &str)> {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if i == 0 => quote = Some(b),
            (None, b'#') if i > 0 && bytes[i - 1] == b' ' => return None,
            (None, b':') if i + 1 == bytes.len() || bytes[i + 1] == b' ' => {
                let key = unquote(&text[..i]);
                return Some((key, text[i + 1..].trim()));
            }
            _ => {}
        }
    }
    None
}

/// Reads block-style YAML into a tree of [`YamlNode`]s under a root node. Several documents
/// (`---`) end up as children of the same root. Never fails.
pub fn yaml(text: &str) -> YamlNode {
    // Each open node: its effective indent and the path to it in the tree. A `- ` item counts
    // half a column deeper than a key at the same column, so `key:` followed by `- a` at the
    // same column still nests the item under the key, and an item's other keys (two columns
    // right of its dash) nest under the item.
    let mut root = YamlNode::default();
    let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut block_scalar: Option<usize> = None;
    for (number, raw) in (1u32..).zip(text.lines()) {
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let body = raw.trim();
        if let Some(parent_indent) = block_scalar {
            if body.is_empty() || indent > parent_indent {
                continue;
            }
            block_scalar = None;
        }
        if body.is_empty() || body.starts_with('#') || body == "---" || body == "..." {
            continue;
        }
        let (item, rest, column) = match body
            .strip_prefix("- ")
            .or_else(|| if body == "-" { Some("") } else { None })
        {
            Some(rest) => (true, rest.trim(), indent),
            None => (false, body, indent),
        };
        let (key, value) = match split_key(rest) {
            Some((k, v)) => (Some(k), v),
            None => (None, rest),
        };
        let value = if value.is_empty() {
            None
        } else if value.starts_with('|') || value.starts_with('>') {
            block_scalar = Some(column + usize::from(item) * 2);
            None
        } else {
            Some(unquote(value))
        };
        let node = YamlNode {
            line: number,
            key,
            value,
            item,
            children: Vec::new(),
        };
        let effective = column * 2 + usize::from(item);
        while stack.last().is_some_and(|(i, _)| *i >= effective) {
            stack.pop();
        }
        let parent_path: Vec<usize> = stack.last().map(|(_, p)| p.clone()).unwrap_or_default();
        let parent = node_at(&mut root, &parent_path);
        parent.children.push(node);
        let mut path = parent_path;
        path.push(parent.children.len() - 1);
        stack.push((effective, path));
    }
    root
}

fn node_at<'a>(root: &'a mut YamlNode, path: &[usize]) -> &'a mut YamlNode {
    let mut node = root;
    for &i in path {
        node = &mut node.children[i];
    }
    node
}

/// One `Key=value` line of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitEntry {
    pub key: String,
    /// The value with continuation lines (`\` at the end) joined by a space.
    pub value: String,
    /// 1-based line of the key.
    pub line: u32,
}

/// One `[Section]` of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSection {
    pub name: String,
    /// 1-based line of the `[Section]` header.
    pub line: u32,
    pub entries: Vec<UnitEntry>,
}

/// A systemd unit file (`.service`, `.socket`, `.target` …), section by section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    pub sections: Vec<UnitSection>,
}

impl Unit {
    /// The section with this name.
    pub fn section(&self, name: &str) -> Option<&UnitSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The last entry `key` of section `section` (the one systemd uses for most settings).
    pub fn get(&self, section: &str, key: &str) -> Option<&UnitEntry> {
        self.section(section)?
            .entries
            .iter()
            .rev()
            .find(|e| e.key == key)
    }

    /// Every entry `key` of section `section`, in order (`Environment=` may repeat).
    pub fn all<'a>(&'a self, section: &str, key: &'a str) -> impl Iterator<Item = &'a UnitEntry> {
        self.section(section)
            .into_iter()
            .flat_map(move |s| s.entries.iter().filter(move |e| e.key == key))
    }
}

/// Reads a systemd unit file. Never fails; lines it cannot read are skipped.
pub fn unit(text: &str) -> Unit {
    let mut unit = Unit::default();
    let mut pending: Option<UnitEntry> = None;
    for (number, raw) in (1u32..).zip(text.lines()) {
        let body = raw.trim();
        if let Some(mut entry) = pending.take() {
            let (part, more) = match body.strip_suffix('\\') {
                Some(p) => (p.trim(), true),
                None => (body, false),
            };
            if !(body.starts_with('#') || body.starts_with(';') || part.is_empty()) {
                if !entry.value.is_empty() {
                    entry.value.push(' ');
                }
                entry.value.push_str(part);
            }
            if more {
                pending = Some(entry);
            } else if let Some(s) = unit.sections.last_mut() {
                s.entries.push(entry);
            }
            continue;
        }
        if body.is_empty() || body.starts_with('#') || body.starts_with(';') {
            continue;
        }
        if body.starts_with('[') && body.ends_with(']') {
            unit.sections.push(UnitSection {
                name: body[1..body.len() - 1].to_owned(),
                line: number,
                entries: Vec::new(),
            });
            continue;
        }
        let Some((key, value)) = body.split_once('=') else {
            continue;
        };
        let (value, more) = match value.trim().strip_suffix('\\') {
            Some(v) => (v.trim(), true),
            None => (value.trim(), false),
        };
        let entry = UnitEntry {
            key: key.trim().to_owned(),
            value: value.to_owned(),
            line: number,
        };
        if more {
            pending = Some(entry);
        } else if let Some(s) = unit.sections.last_mut() {
            s.entries.push(entry);
        }
    }
    if let (Some(entry), Some(s)) = (pending, unit.sections.last_mut()) {
        s.entries.push(entry);
    }
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPOSE: &str = r#"# generated
name: demo
services:
  web:
    image: ghcr.io/demo/api:1.0
    environment:
      DEBUG: "false"
      NAME: 'it''s' # a comment
    command:
      - sh
      - -c
      - |
        exec thing --port 1
        more: not a key
    security_opt: ["no-new-privileges:true"]
  nginx:
    ports:
    - "80:80"
    - target: 443
      published: 443
      host_ip: 127.0.0.1
networks:
  data:
    internal: true
"#;

    #[test]
    fn yaml_maps_lists_and_lines() {
        let doc = yaml(COMPOSE);
        let services = doc.get("services").unwrap();
        let names: Vec<&str> = services
            .entries()
            .map(|s| s.key.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["web", "nginx"]);
        let web = services.get("web").unwrap();
        assert_eq!(web.line, 4);
        let env: Vec<(&str, &str)> = web
            .get("environment")
            .unwrap()
            .entries()
            .map(|e| (e.key.as_deref().unwrap(), e.text()))
            .collect();
        assert_eq!(env, [("DEBUG", "false"), ("NAME", "it's")]);
        let cmd: Vec<String> = web.items("command").map(|i| i.text().to_owned()).collect();
        assert_eq!(cmd, ["sh", "-c", ""]);
        let opts: Vec<String> = web
            .items("security_opt")
            .map(|i| i.text().to_owned())
            .collect();
        assert_eq!(opts, ["no-new-privileges:true"]);

        let nginx = services.get("nginx").unwrap();
        let ports: Vec<YamlNode> = nginx.items("ports").collect();
        assert_eq!(ports.len(), 2);
        assert_eq!((ports[0].text(), ports[0].line), ("80:80", 18));
        assert_eq!(ports[1].get("target").unwrap().text(), "443");
        assert_eq!(ports[1].get("host_ip").unwrap().text(), "127.0.0.1");
        assert_eq!(ports[1].get("published").unwrap().line, 20);
        assert_eq!(
            doc.get("networks")
                .and_then(|n| n.get("data"))
                .and_then(|d| d.get("internal"))
                .map(YamlNode::text),
            Some("true")
        );
    }

    #[test]
    fn yaml_k8s_containers() {
        let text = "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          env:\n            - name: A\n              value: \"1\"\n          securityContext:\n            allowPrivilegeEscalation: false\n        - name: side\n          image: x\n";
        let doc = yaml(text);
        let containers: Vec<YamlNode> = doc
            .get("spec")
            .and_then(|s| s.get("template"))
            .and_then(|t| t.get("spec"))
            .unwrap()
            .items("containers")
            .collect();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0].get("name").unwrap().text(), "web");
        assert_eq!(containers[0].line, 6);
        let ape = containers[0]
            .get("securityContext")
            .and_then(|s| s.get("allowPrivilegeEscalation"))
            .unwrap();
        assert_eq!((ape.text(), ape.line), ("false", 11));
        let env: Vec<YamlNode> = containers[0].items("env").collect();
        assert_eq!(env[0].get("value").unwrap().text(), "1");
        assert!(containers[1].get("securityContext").is_none());
        assert_eq!(doc.descendants().len(), 13);
    }

    #[test]
    fn yaml_never_fails_on_odd_input() {
        for text in [
            "",
            ":",
            "- - -",
            "a: [b, 'c, d', \"e\"]",
            "\t\tweird: : :",
            "a:\n  - \n  -",
        ] {
            let _ = yaml(text);
        }
        let doc = yaml("a: [b, 'c, d', \"e\"]");
        let items: Vec<String> = doc.items("a").map(|i| i.text().to_owned()).collect();
        assert_eq!(items, ["b", "c, d", "e"]);
    }

    #[test]
    fn unit_sections_and_continuations() {
        let u = unit(
            "# head\n[Unit]\nDescription=x\n\n[Service]\nEnvironment=\"A=1\"\nEnvironment=B=2\nExecStart=/bin/app \\\n    --flag \\\n    --other\nNoNewPrivileges=yes\n",
        );
        assert_eq!(u.sections.len(), 2);
        assert_eq!(u.section("Service").unwrap().line, 5);
        let envs: Vec<(&str, u32)> = u
            .all("Service", "Environment")
            .map(|e| (e.value.as_str(), e.line))
            .collect();
        assert_eq!(envs, [("\"A=1\"", 6), ("B=2", 7)]);
        let exec = u.get("Service", "ExecStart").unwrap();
        assert_eq!(
            (exec.value.as_str(), exec.line),
            ("/bin/app --flag --other", 8)
        );
        assert_eq!(u.get("Service", "NoNewPrivileges").unwrap().line, 11);
        assert!(u.get("Unit", "NoNewPrivileges").is_none());
    }
}
