//! `kiln fmt`: canonical layout for KDL specs. Layout only — indentation by
//! nesting depth (4 spaces), no trailing whitespace, at most one blank line in
//! a row, LF, one final newline. Tokens, strings and comments are kept exactly
//! as written, so formatting can never change what a spec means.

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    Str,
    /// A raw string closed by `"` and this many `#`.
    Raw(usize),
    /// A multi-line string closed by `"""` (and this many `#` when raw).
    Multi(usize),
    /// Nested block comment depth.
    Block(usize),
}

/// Formats a KDL document canonically. Idempotent; refuses text that is not KDL.
pub fn format_kdl(text: &str) -> Result<String, String> {
    kiln_core::reader::read(text, kiln_core::FileId(0)).map_err(|e| e.message)?;
    let text = text.replace("\r\n", "\n");
    let mut out: Vec<String> = Vec::new();
    let mut state = State::Code;
    let mut depth: usize = 0;
    for line in text.split('\n') {
        let starts_in_code = state == State::Code;
        let line_depth_before = depth;
        let mut leading_closers = 0;
        let mut seen_token = false;
        let chars: Vec<char> = line.chars().collect();
        // The line with runs of blanks between tokens collapsed to one space.
        let mut rebuilt = String::with_capacity(line.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let start = i;
            let was_code = state == State::Code;
            match state {
                State::Code => match c {
                    '/' if next == Some('/') => {
                        rebuilt.extend(&chars[i..]);
                        break;
                    }
                    '/' if next == Some('*') => {
                        state = State::Block(1);
                        i += 1;
                    }
                    '"' if chars.get(i + 1..i + 3) == Some(&['"', '"']) => {
                        state = State::Multi(0);
                        i += 2;
                    }
                    '"' => state = State::Str,
                    '#' if matches!(next, Some('#') | Some('"')) => {
                        let mut hashes = 0;
                        while chars.get(i + hashes) == Some(&'#') {
                            hashes += 1;
                        }
                        if chars.get(i + hashes) == Some(&'"') {
                            if chars.get(i + hashes + 1..i + hashes + 3) == Some(&['"', '"']) {
                                state = State::Multi(hashes);
                                i += hashes + 2;
                            } else {
                                state = State::Raw(hashes);
                                i += hashes;
                            }
                        }
                    }
                    '{' => depth += 1,
                    '}' => {
                        depth = depth.saturating_sub(1);
                        if !seen_token {
                            leading_closers += 1;
                        }
                    }
                    c if c.is_whitespace() => {}
                    _ => {}
                },
                State::Str => match c {
                    '\\' => i += 1,
                    '"' => state = State::Code,
                    _ => {}
                },
                State::Raw(n) | State::Multi(n) => {
                    let multi = matches!(state, State::Multi(_));
                    let quotes = if multi { 3 } else { 1 };
                    if c == '"'
                        && chars
                            .get(i..i + quotes)
                            .is_some_and(|q| q.iter().all(|&x| x == '"'))
                        && chars
                            .get(i + quotes..i + quotes + n)
                            .is_some_and(|h| h.iter().all(|&x| x == '#'))
                    {
                        state = State::Code;
                        i += quotes + n - 1;
                    } else if c == '\\' && n == 0 && multi {
                        i += 1;
                    }
                }
                State::Block(d) => {
                    if c == '*' && next == Some('/') {
                        state = if d == 1 {
                            State::Code
                        } else {
                            State::Block(d - 1)
                        };
                        i += 1;
                    } else if c == '/' && next == Some('*') {
                        state = State::Block(d + 1);
                        i += 1;
                    }
                }
            }
            if !c.is_whitespace() && c != '}' {
                seen_token = true;
            }
            let end = (i + 1).min(chars.len());
            if was_code && (c == ' ' || c == '\t') && end == start + 1 {
                if !rebuilt.ends_with(' ') {
                    rebuilt.push(' ');
                }
            } else {
                rebuilt.extend(&chars[start..end]);
            }
            i += 1;
        }
        if !starts_in_code {
            out.push(line.to_owned()); // inside a string or comment: verbatim
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            if out.last().is_some_and(|l| !l.is_empty()) {
                out.push(String::new());
            }
            continue;
        }
        let indent = line_depth_before.saturating_sub(leading_closers);
        let body = if state == State::Code {
            rebuilt.trim().to_owned()
        } else {
            rebuilt.trim_start().to_owned()
        };
        out.push(format!("{}{body}", "    ".repeat(indent)));
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    let mut s = out.join("\n");
    s.push('\n');
    Ok(s)
}
