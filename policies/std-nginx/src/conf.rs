//! A small nginx configuration reader: directives and blocks with their file and line, and
//! `include` resolved against the other rendered files.

use kiln_policy_sdk::Artifact;

/// One directive (`add_header X-Frame-Options DENY always;`) or block (`location / { … }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    /// The artifact path of the file it is written in.
    pub file: String,
    /// 1-based line of its name.
    pub line: u32,
    /// The directives inside `{ … }`, with includes already spliced in; `None` for `…;`.
    pub block: Option<Vec<Directive>>,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String, u32),
    Open(u32),
    Close(u32),
    End(u32),
}

/// Splits nginx configuration text into words (quotes removed), `{`, `}` and `;`.
fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut word_line = 1;
    let flush = |word: &mut String, out: &mut Vec<Token>, at: u32| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word), at));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                flush(&mut word, &mut out, word_line);
                line += 1;
            }
            c if c.is_whitespace() => flush(&mut word, &mut out, word_line),
            '#' if word.is_empty() => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '{' => {
                flush(&mut word, &mut out, word_line);
                out.push(Token::Open(line));
            }
            '}' => {
                flush(&mut word, &mut out, word_line);
                out.push(Token::Close(line));
            }
            ';' => {
                flush(&mut word, &mut out, word_line);
                out.push(Token::End(line));
            }
            '"' | '\'' => {
                if word.is_empty() {
                    word_line = line;
                }
                // A quoted string: may hold spaces, braces and escaped quotes.
                while let Some(n) = chars.next() {
                    match n {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                if e == '\n' {
                                    line += 1;
                                }
                                if e != c {
                                    word.push('\\');
                                }
                                word.push(e);
                            }
                        }
                        n if n == c => break,
                        '\n' => {
                            line += 1;
                            word.push(n);
                        }
                        n => word.push(n),
                    }
                }
                // `""` is a word too (an empty argument).
                if word.is_empty() {
                    out.push(Token::Word(String::new(), line));
                }
            }
            c => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut out, word_line);
    out
}

/// Reads a whole configuration tree starting at `root`, splicing includes from `artifacts`.
/// Never fails: unbalanced braces close at the end of the file, unknown includes are skipped.
pub struct Reader<'a> {
    artifacts: &'a [Artifact],
    /// Every artifact an include reached (so it is not read again as a root).
    pub included: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn new(artifacts: &'a [Artifact]) -> Reader<'a> {
        Reader {
            artifacts,
            included: Vec::new(),
        }
    }

    /// The directives of one file, includes spliced in.
    pub fn read(&mut self, artifact: &Artifact) -> Vec<Directive> {
        self.read_depth(artifact, 0)
    }

    fn read_depth(&mut self, artifact: &Artifact, depth: usize) -> Vec<Directive> {
        let tokens = tokenize(&artifact.text);
        let mut pos = 0;
        self.block(&tokens, &mut pos, &artifact.path, depth)
    }

    fn block(
        &mut self,
        tokens: &[Token],
        pos: &mut usize,
        file: &str,
        depth: usize,
    ) -> Vec<Directive> {
        let mut out = Vec::new();
        let mut words: Vec<(String, u32)> = Vec::new();
        while *pos < tokens.len() {
            let token = &tokens[*pos];
            *pos += 1;
            match token {
                Token::Word(w, line) => words.push((w.clone(), *line)),
                Token::End(line) => {
                    if words.is_empty() {
                        continue;
                    }
                    let (name, line) = (words[0].0.clone(), words.first().map_or(*line, |w| w.1));
                    let args: Vec<String> = words.drain(..).skip(1).map(|(w, _)| w).collect();
                    if name == "include" && depth < 8 {
                        for path in args {
                            for target in self.resolve(file, &path) {
                                self.included.push(target.path.clone());
                                out.extend(self.read_depth(target, depth + 1));
                            }
                        }
                        continue;
                    }
                    out.push(Directive {
                        name,
                        args,
                        file: file.to_owned(),
                        line,
                        block: None,
                    });
                }
                Token::Open(line) => {
                    let (name, line) = match words.first() {
                        Some((w, l)) => (w.clone(), *l),
                        None => (String::new(), *line),
                    };
                    let args: Vec<String> = words.drain(..).skip(1).map(|(w, _)| w).collect();
                    let inner = self.block(tokens, pos, file, depth);
                    out.push(Directive {
                        name,
                        args,
                        file: file.to_owned(),
                        line,
                        block: Some(inner),
                    });
                }
                Token::Close(_) => return out,
            }
        }
        out
    }

    /// The artifacts an `include` in `file` names. nginx resolves a relative path against the
    /// folder of its main configuration file (and `/etc/nginx/` is where kiln's files go), so
    /// each folder above `file` is tried in turn, nearest first.
    fn resolve(&self, file: &str, include: &str) -> Vec<&'a Artifact> {
        let relative = include
            .strip_prefix("/etc/nginx/")
            .unwrap_or(include)
            .trim_start_matches("./");
        if relative.starts_with('/') {
            return Vec::new();
        }
        let mut folders: Vec<&str> = Vec::new();
        let mut dir = file;
        while let Some(cut) = dir.rfind('/') {
            dir = &dir[..cut];
            folders.push(dir);
        }
        folders.push("");
        for folder in folders {
            let pattern = if folder.is_empty() {
                relative.to_owned()
            } else {
                format!("{folder}/{relative}")
            };
            let mut found: Vec<&Artifact> = self
                .artifacts
                .iter()
                .filter(|a| glob(&pattern, &a.path))
                .collect();
            if !found.is_empty() {
                found.sort_by(|a, b| a.path.cmp(&b.path));
                return found;
            }
        }
        Vec::new()
    }
}

/// nginx's include globs: `*` matches within one path segment.
fn glob(pattern: &str, path: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && go(p, &s[1..])),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn art(path: &str, text: &str) -> Artifact {
        Artifact {
            target: "nginx".into(),
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn tokens_and_lines() {
        let t = tokenize("a \"b c\" 'd\\'e';\n# comment { ;\nloc ~ /\\.(?!x) {\n  h \"\" x;\n}\n");
        assert_eq!(
            t,
            [
                Token::Word("a".into(), 1),
                Token::Word("b c".into(), 1),
                Token::Word("d'e".into(), 1),
                Token::End(1),
                Token::Word("loc".into(), 3),
                Token::Word("~".into(), 3),
                Token::Word("/\\.(?!x)".into(), 3),
                Token::Open(3),
                Token::Word("h".into(), 4),
                Token::Word("".into(), 4),
                Token::Word("x".into(), 4),
                Token::End(4),
                Token::Close(5),
            ]
        );
    }

    #[test]
    fn includes_are_spliced() {
        let files = [
            art(
                "nginx/nginx.conf",
                "http {\n    include sites/*.conf;\n    include /etc/nginx/mime.types;\n}\n",
            ),
            art(
                "nginx/sites/a.conf",
                "server {\n    include snippets/h.conf;\n    location / { }\n}\n",
            ),
            art("nginx/sites/b.conf", "server { }\n"),
            art(
                "nginx/snippets/h.conf",
                "add_header X-Frame-Options DENY always;\n",
            ),
        ];
        let mut r = Reader::new(&files);
        let tree = r.read(&files[0]);
        let http = tree[0].block.as_ref().unwrap();
        assert_eq!(http.len(), 2);
        let a = http[0].block.as_ref().unwrap();
        assert_eq!(a[0].name, "add_header");
        assert_eq!(
            (a[0].file.as_str(), a[0].line),
            ("nginx/snippets/h.conf", 1)
        );
        assert_eq!(
            (a[1].name.as_str(), a[1].args[0].as_str(), a[1].line),
            ("location", "/", 3)
        );
        assert_eq!(
            r.included,
            [
                "nginx/sites/a.conf",
                "nginx/snippets/h.conf",
                "nginx/sites/b.conf"
            ]
        );
    }

    #[test]
    fn globs() {
        assert!(glob("nginx/sites/*.conf", "nginx/sites/a.conf"));
        assert!(!glob("nginx/sites/*.conf", "nginx/sites/x/a.conf"));
        assert!(!glob("sites/*.conf", "nginx/sites/a.conf"));
        assert!(glob("a", "a"));
    }

    #[test]
    fn broken_input_does_not_fail() {
        for text in ["}", "{", "server {", "a b", "include a;", "\"unterminated"] {
            let files = [art("nginx/x.conf", text), art("nginx/a", "include x.conf;")];
            let _ = Reader::new(&files).read(&files[0]);
            let _ = Reader::new(&files).read(&files[1]);
        }
    }
}
