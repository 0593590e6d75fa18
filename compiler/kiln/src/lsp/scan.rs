//! Where the cursor is in a spec, read from text that may not parse: an editor asks for
//! completions in the middle of typing a node. A forgiving tokenizer (strings, raw and
//! multi-line strings, comments, braces) and a walk over statements give the open blocks
//! around the cursor, the statement it is in, and the role of the word under it.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A bare word: a node name, an identifier, a number, `#true`.
    Word,
    Str,
    Eq,
    Open,
    Close,
    /// A newline or `;`.
    End,
    /// `(`…`)`: a type annotation, skipped.
    Annotation,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    /// A word as written; a string's value.
    text: String,
}

/// A word of the spec: its text (a string's value) and byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// Written as a quoted string.
    pub quoted: bool,
}

/// A node as far as the text says: its name, its first argument, its properties.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub name: String,
    pub name_span: (usize, usize),
    pub args: Vec<Word>,
    pub props: Vec<(Word, Option<Word>)>,
}

impl Frame {
    pub fn key(&self) -> Option<&str> {
        self.args.first().map(|w| w.text.as_str())
    }

    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k.text == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| v.text.as_str())
    }
}

/// What the cursor is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A node's name, or where one goes.
    NodeName,
    /// After a node's name, where an argument or a property goes.
    Entry,
    /// The `n`th argument of the node.
    Argument(usize),
    /// A property's name.
    PropName,
    /// The value of the property named.
    PropValue(String),
}

#[derive(Clone, Debug)]
pub struct Context {
    /// The open blocks around the cursor, outermost first.
    pub parents: Vec<Frame>,
    /// The statement the cursor is in; `None` where a new one would start.
    pub node: Option<Frame>,
    pub role: Role,
    /// The word under the cursor (or just before it, for a prefix being typed).
    pub word: Option<Word>,
}

/// The context at byte offset `cursor`.
pub fn context(text: &str, cursor: usize) -> Context {
    let tokens = tokenize(text);
    let mut parents: Vec<Frame> = Vec::new();
    let mut stmt: Vec<&Token> = Vec::new();
    let mut at: Option<usize> = None;
    for tok in &tokens {
        let entry = matches!(tok.kind, Kind::Word | Kind::Str | Kind::Eq);
        if at.is_none() {
            let past = if entry {
                tok.start > cursor
            } else {
                tok.start >= cursor
            };
            if past {
                return statement(parents, &stmt, None);
            }
        }
        match tok.kind {
            Kind::Annotation => {}
            Kind::Word | Kind::Str | Kind::Eq => {
                if at.is_none() && tok.kind != Kind::Eq && tok.start <= cursor && cursor <= tok.end
                {
                    at = Some(stmt.len());
                }
                stmt.push(tok);
            }
            Kind::End | Kind::Open | Kind::Close => {
                if at.is_some() {
                    return statement(parents, &stmt, at);
                }
                match tok.kind {
                    Kind::Open => parents.push(frame(&stmt)),
                    Kind::Close => {
                        parents.pop();
                    }
                    _ => {}
                }
                stmt.clear();
            }
        }
    }
    statement(parents, &stmt, at)
}

fn word(t: &Token) -> Word {
    Word {
        text: t.text.clone(),
        start: t.start,
        end: t.end,
        quoted: t.kind == Kind::Str,
    }
}

/// The role of each token of a statement.
fn roles(stmt: &[&Token]) -> Vec<Role> {
    let mut roles = Vec::with_capacity(stmt.len());
    let mut args = 0;
    for (i, t) in stmt.iter().enumerate() {
        let role = if i == 0 {
            Role::NodeName
        } else if t.kind == Kind::Eq {
            Role::Entry
        } else if stmt.get(i + 1).is_some_and(|n| n.kind == Kind::Eq) {
            Role::PropName
        } else if i >= 2 && stmt[i - 1].kind == Kind::Eq {
            Role::PropValue(stmt[i - 2].text.clone())
        } else {
            args += 1;
            Role::Argument(args - 1)
        };
        roles.push(role);
    }
    roles
}

fn frame(stmt: &[&Token]) -> Frame {
    let Some(first) = stmt.first() else {
        return Frame::default();
    };
    let mut f = Frame {
        name: first.text.clone(),
        name_span: (first.start, first.end),
        ..Frame::default()
    };
    for (i, role) in roles(stmt).into_iter().enumerate() {
        match role {
            Role::Argument(_) => f.args.push(word(stmt[i])),
            Role::PropName => f.props.push((word(stmt[i]), None)),
            Role::PropValue(_) => {
                if let Some(last) = f.props.last_mut() {
                    last.1 = Some(word(stmt[i]));
                }
            }
            _ => {}
        }
    }
    f
}

fn statement(parents: Vec<Frame>, stmt: &[&Token], at: Option<usize>) -> Context {
    let node = (!stmt.is_empty()).then(|| frame(stmt));
    let (role, word) = match at {
        Some(i) => (roles(stmt).swap_remove(i), Some(self::word(stmt[i]))),
        None => match stmt {
            [] => (Role::NodeName, None),
            [.., prop, eq] if eq.kind == Kind::Eq => (Role::PropValue(prop.text.clone()), None),
            _ => (Role::Entry, None),
        },
    };
    Context {
        parents,
        node,
        role,
        word,
    }
}

fn tokenize(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut parens = 0usize;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let push = |out: &mut Vec<Token>, kind, end: usize, text: String| {
            out.push(Token {
                kind,
                start,
                end,
                text,
            })
        };
        match c {
            b'\n' | b';' => {
                i += 1;
                push(&mut out, Kind::End, i, String::new());
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'\\' => {
                // A line continuation: the next newline does not end the statement.
                i += 1;
                while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r') {
                    i += 1;
                }
                if b.get(i) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'/' if b.get(i + 1) == Some(&b'-') => i += 2,
            b'{' => {
                i += 1;
                push(&mut out, Kind::Open, i, String::new());
            }
            b'}' => {
                i += 1;
                push(&mut out, Kind::Close, i, String::new());
            }
            b'=' => {
                i += 1;
                push(&mut out, Kind::Eq, i, String::new());
            }
            b'(' => {
                parens += 1;
                i += 1;
            }
            b')' => {
                parens = parens.saturating_sub(1);
                i += 1;
                push(&mut out, Kind::Annotation, i, String::new());
            }
            _ if parens > 0 => i += 1,
            b'"' => {
                let (end, value) = quoted(text, i, 0);
                i = end;
                push(&mut out, Kind::Str, i, value);
            }
            b'#' if b.get(i + 1).is_some_and(|&n| n == b'#' || n == b'"') => {
                let hashes = b[i..].iter().take_while(|&&h| h == b'#').count();
                if b.get(i + hashes) == Some(&b'"') {
                    let (end, value) = quoted(text, i + hashes, hashes);
                    i = end;
                    push(&mut out, Kind::Str, i, value);
                } else {
                    i += hashes;
                }
            }
            _ => {
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b';'
                            | b'{'
                            | b'}'
                            | b'='
                            | b'('
                            | b')'
                            | b'"'
                    )
                {
                    i += 1;
                }
                while !text.is_char_boundary(i) {
                    i += 1;
                }
                push(&mut out, Kind::Word, i, text[start..i].to_owned());
            }
        }
    }
    out
}

/// A string starting at the `"` at `open` (after `hashes` `#` for a raw one): where it ends
/// (or the end of the text, for one still being typed) and its value, escapes left as
/// written (a name kiln looks up has none).
fn quoted(text: &str, open: usize, hashes: usize) -> (usize, String) {
    let b = text.as_bytes();
    let multi = b[open..].starts_with(b"\"\"\"");
    let delim = if multi { 3 } else { 1 };
    let body = open + delim;
    let closer: String = "\"".repeat(delim) + &"#".repeat(hashes);
    let mut i = body;
    while i < b.len() {
        if hashes == 0 && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if !multi && b[i] == b'\n' {
            break;
        }
        if b[i..].starts_with(closer.as_bytes()) {
            let value = text[body..i].to_owned();
            return (i + closer.len(), value);
        }
        i += 1;
    }
    let end = i.min(b.len());
    let mut end_char = end;
    while !text.is_char_boundary(end_char) {
        end_char -= 1;
    }
    (end, text[body..end_char].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `|` marks the cursor.
    fn at(marked: &str) -> Context {
        let cursor = marked.find('|').expect("a cursor mark");
        let text = marked.replacen('|', "", 1);
        context(&text, cursor)
    }

    fn path(c: &Context) -> Vec<&str> {
        c.parents.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn open_blocks_and_roles() {
        let c = at("environment prod {\n    redis cache {\n        max|\n    }\n}\n");
        assert_eq!(path(&c), ["environment", "redis"]);
        assert_eq!(c.parents[0].key(), Some("prod"));
        assert_eq!(c.role, Role::NodeName);
        assert_eq!(c.word.unwrap().text, "max");

        let c = at("environment prod {\n    |\n}\n");
        assert_eq!(
            (path(&c), c.role.clone(), c.word.clone()),
            (vec!["environment"], Role::NodeName, None)
        );

        let c = at("environment prod {\n    redis cache |\n}\n");
        assert_eq!(c.role, Role::Entry);
        assert_eq!(c.node.unwrap().key(), Some("cache"));

        let c = at("redis cache eviction=|\n");
        assert_eq!(c.role, Role::PropValue("eviction".into()));
        let c = at("redis cache eviction=vol|atile-lru\n");
        assert_eq!(c.role, Role::PropValue("eviction".into()));
        assert_eq!(c.word.unwrap().text, "volatile-lru");
        let c = at("redis cache max|memory=\"512mb\" {\n}\n");
        assert_eq!(c.role, Role::PropName);
        assert_eq!(c.parents.len(), 0);
    }

    #[test]
    fn strings_comments_and_annotations_do_not_confuse_it() {
        let c = at(
            "// a { comment\nenvironment \"p{\" /* } */ {\n    (remove)service web {\n        |\n",
        );
        assert_eq!(path(&c), ["environment", "service"]);
        assert_eq!(c.parents[0].key(), Some("p{"));
        assert_eq!(c.parents[1].key(), Some("web"));
        let c = at("preset hard for=service extends=django-web {\n    image |\n");
        assert_eq!(c.parents[0].prop("for"), Some("service"));
        assert_eq!(c.role, Role::Entry);
        let c = at("include \"envs/pr|od.kdl\"\n");
        assert_eq!(c.role, Role::Argument(0));
        assert_eq!(c.word.unwrap().text, "envs/prod.kdl");
        // An unfinished string is a string to the end of the line.
        let c = at("environment \"unfinished|\n");
        assert_eq!(c.word.unwrap().text, "unfinished");
    }
}
