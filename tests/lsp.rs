//! `kiln lsp`, driven over its protocol as an editor drives it: initialize, open a fixture,
//! read the diagnostics it publishes, ask for completions, hovers, definitions, quick fixes
//! and formatting, then shut down.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Long enough for a first policy run on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
    /// Notifications read while waiting for something else.
    notifications: Vec<Value>,
}

impl Client {
    fn start() -> Client {
        let mut child = common::kiln_command(&["lsp"], &common::root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kiln lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, incoming) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("a Content-Length header")];
                reader.read_exact(&mut body).expect("a whole message");
                let message: Value = serde_json::from_slice(&body).expect("JSON");
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        let mut client = Client {
            child,
            stdin,
            incoming,
            next_id: 0,
            notifications: Vec::new(),
        };
        let init = client.request(
            "initialize",
            json!({ "processId": null, "rootUri": null, "capabilities": {} }),
        );
        let caps = &init["capabilities"];
        for provider in [
            "hoverProvider",
            "completionProvider",
            "definitionProvider",
            "documentFormattingProvider",
            "codeActionProvider",
        ] {
            assert!(!caps[provider].is_null(), "{provider} in {caps}");
        }
        client.notify("initialized", json!({}));
        client
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn receive(&mut self, deadline: Instant) -> Value {
        match self
            .incoming
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => panic!("kiln lsp said nothing in time"),
            Err(RecvTimeoutError::Disconnected) => panic!("kiln lsp exited"),
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let m = self.receive(deadline);
            if m["id"] == id {
                assert!(m["error"].is_null(), "{method}: {m}");
                return m["result"].clone();
            }
            self.notifications.push(m);
        }
    }

    /// The first diagnostics published for `uri` (since the last call) that `accept` takes.
    fn diagnostics(&mut self, uri: &str, accept: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let mut pending = std::mem::take(&mut self.notifications).into_iter();
        loop {
            let m = match pending.next() {
                Some(m) => m,
                None => self.receive(deadline),
            };
            if m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri {
                let list = m["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if accept(&list) {
                    self.notifications.extend(pending);
                    return list;
                }
            }
        }
    }

    fn open(&mut self, uri: &str, text: &str) {
        let doc = json!({ "uri": uri, "languageId": "kdl", "version": 1, "text": text });
        self.notify("textDocument/didOpen", json!({ "textDocument": doc }));
    }

    fn change(&mut self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": uri, "version": version },
                "contentChanges": [{ "text": text }],
            }),
        );
    }

    fn at(&mut self, method: &str, uri: &str, position: Value) -> Value {
        self.request(
            method,
            json!({ "textDocument": { "uri": uri }, "position": position }),
        )
    }

    fn stop(mut self) {
        assert_eq!(self.request("shutdown", Value::Null), Value::Null);
        self.notify("exit", Value::Null);
        let status = self.child.wait().expect("kiln lsp exits");
        assert!(status.success(), "{status}");
    }
}

fn fixture(name: &str) -> (PathBuf, String, String) {
    let path = common::root().join("fixtures").join(name).join("kiln.kdl");
    let uri = format!("file://{}", path.display());
    let text = std::fs::read_to_string(&path).expect("fixture");
    (path, uri, text)
}

/// The protocol position of the `nth` occurrence of `needle` in `text`, `into` characters in.
fn position(text: &str, needle: &str, nth: usize, into: usize) -> Value {
    let (offset, _) = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` #{nth} in the text"));
    let offset = offset + into;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..offset].matches('\n').count();
    let character: usize = text[line_start..offset].chars().map(char::len_utf16).sum();
    json!({ "line": line, "character": character })
}

fn line_of(text: &str, needle: &str) -> usize {
    let offset = text.find(needle).unwrap_or_else(|| panic!("`{needle}`"));
    text[..offset].matches('\n').count()
}

fn codes(list: &[Value]) -> Vec<&str> {
    list.iter().filter_map(|d| d["code"].as_str()).collect()
}

#[test]
fn diagnostics_as_you_type_with_policy_findings_and_quick_fixes() {
    let (_, uri, text) = fixture("tulia");
    let mut c = Client::start();
    c.open(&uri, &text);
    let clean = c.diagnostics(&uri, |_| true);
    assert!(
        !clean.iter().any(|d| d["severity"] == 1),
        "the fixture has no errors: {clean:?}"
    );

    // A typo: an error at the exact name, with a quick fix.
    let typo = text.replacen("    redis cache", "    rediss cache", 1);
    c.change(&uri, 2, &typo);
    let list = c.diagnostics(&uri, |l| codes(l).contains(&"unknown-node"));
    let d = list
        .iter()
        .find(|d| d["code"] == "unknown-node")
        .expect("unknown-node");
    let at = position(&typo, "rediss", 0, 0);
    assert_eq!(d["range"]["start"], at, "{d}");
    assert_eq!(
        d["range"]["end"]["character"],
        at["character"].as_u64().unwrap() + 6
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `redis`"),
        "{d}"
    );
    let actions = c.request(
        "textDocument/codeAction",
        json!({
            "textDocument": { "uri": uri },
            "range": d["range"],
            "context": { "diagnostics": [d] },
        }),
    );
    let edit = &actions[0]["edit"]["changes"][&uri][0];
    assert_eq!(edit["newText"], "redis", "{actions}");
    assert_eq!(edit["range"], d["range"]);

    // A policy finding, once typing pauses: DEBUG on in production.
    let debug = text.replacen("DEBUG #false", "DEBUG #true", 1);
    c.change(&uri, 3, &debug);
    let list = c.diagnostics(&uri, |l| codes(l).contains(&"web.debug-off"));
    // (Development's DEBUG is information; production's is the error.)
    let d = list
        .iter()
        .find(|d| d["code"] == "web.debug-off" && d["severity"] == 1)
        .unwrap();
    assert_eq!(
        d["range"]["start"]["line"],
        line_of(&debug, "DEBUG #true\n        ALLOWED_HOSTS \"api.tulia"),
        "{d}"
    );
    assert!(!codes(&list).contains(&"unknown-node"), "the typo is gone");
    c.stop();
}

#[test]
fn completion_offers_the_schema_values_and_references() {
    let (_, uri, text) = fixture("tulia");
    let mut c = Client::start();
    c.open(&uri, &text);
    let labels = |items: &Value| -> Vec<String> {
        items
            .as_array()
            .expect("a list of items")
            .iter()
            .map(|i| i["label"].as_str().unwrap().to_owned())
            .collect()
    };
    // Inside `postgres db { … }`, at the start of a line: its settings and blocks.
    let items = c.at(
        "textDocument/completion",
        &uri,
        position(&text, "        database tulia_db", 0, 8),
    );
    let got = labels(&items);
    for want in ["version", "database", "pooler", "backup", "replicas"] {
        assert!(got.iter().any(|l| l == want), "{want} in {got:?}");
    }
    let database = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "database")
        .unwrap();
    assert!(
        !database["documentation"]["value"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    // A setting's allowed values.
    let items = c.at(
        "textDocument/completion",
        &uri,
        position(&text, "eviction=volatile-lru", 0, 9),
    );
    assert!(
        labels(&items).contains(&"allkeys-lru".to_owned()),
        "{items}"
    );
    // The environments `extends` can name.
    let items = c.at(
        "textDocument/completion",
        &uri,
        position(&text, "extends=base", 0, 8),
    );
    assert!(labels(&items).contains(&"base".to_owned()), "{items}");
    // What `uses` can name.
    let items = c.at(
        "textDocument/completion",
        &uri,
        position(&text, "uses db cache", 0, 5),
    );
    let got = labels(&items);
    assert!(
        got.contains(&"db".to_owned()) && got.contains(&"cache".to_owned()),
        "{got:?}"
    );
    // After a node's name: its settings as properties, but for those already written.
    let items = c.at(
        "textDocument/completion",
        &uri,
        position(&text, "resources cpu=\"0.5\"", 0, 10),
    );
    let got = labels(&items);
    assert!(got.contains(&"cpu-request=".to_owned()), "{got:?}");
    assert!(
        got.contains(&"cpu=".to_owned()),
        "the one being edited: {got:?}"
    );
    assert!(!got.contains(&"memory=".to_owned()), "{got:?}");
    c.stop();
}

#[test]
fn hover_shows_the_docs_and_where_each_value_was_set() {
    let (_, uri, text) = fixture("tulia");
    let mut c = Client::start();
    c.open(&uri, &text);
    let hover = c.at(
        "textDocument/hover",
        &uri,
        position(&text, "maxmemory=", 0, 2),
    );
    let value = hover["contents"]["value"].as_str().expect("markdown");
    assert!(value.contains("`maxmemory`"), "{value}");
    assert!(value.contains("**production**"), "{value}");
    assert!(
        value.contains("\"512mb\"") || value.contains("536870912"),
        "{value}"
    );
    let base_line = line_of(&text, "maxmemory=") + 1;
    assert!(
        value.contains(&format!("set in `base` at kiln.kdl:{base_line}")),
        "{value}"
    );

    // A value production overrides: both layers, in order.
    let hover = c.at(
        "textDocument/hover",
        &uri,
        position(&text, "memory=\"4Gi\"", 0, 1),
    );
    let value = hover["contents"]["value"].as_str().expect("markdown");
    let line = line_of(&text, "memory=\"4Gi\"") + 1;
    assert!(
        value.contains(&format!(
            "set in `preset django-web` at <stdlib>/presets/django-web.kdl:8, overridden in `production` at kiln.kdl:{line}"
        )),
        "{value}"
    );
    c.stop();
}

#[test]
fn definition_follows_extends_references_and_secrets() {
    let (_, uri, text) = fixture("tulia");
    let mut c = Client::start();
    c.open(&uri, &text);
    let cases = [
        (position(&text, "extends=base", 0, 9), "environment base"),
        (position(&text, "uses db cache", 0, 5), "postgres db"),
        (position(&text, "uses db cache", 0, 9), "redis cache"),
        (
            position(&text, "password=REDIS_PASSWORD", 0, 12),
            "secret REDIS_PASSWORD",
        ),
        (position(&text, "upstream=web", 0, 10), "service web preset"),
    ];
    for (at, declared) in cases {
        let found = c.at("textDocument/definition", &uri, at.clone());
        let lines: Vec<u64> = found
            .as_array()
            .expect("locations")
            .iter()
            .map(|l| l["range"]["start"]["line"].as_u64().unwrap())
            .collect();
        assert_eq!(
            lines,
            [line_of(&text, declared) as u64],
            "{at} → {declared}: {found}"
        );
        assert_eq!(found[0]["uri"], uri);
    }
    c.stop();
}

#[test]
fn definition_opens_included_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("envs")).unwrap();
    let main = "project demo\ninclude \"envs/prod.kdl\"\n";
    std::fs::write(root.join("kiln.kdl"), main).unwrap();
    std::fs::write(
        root.join("envs/prod.kdl"),
        "environment prod {\n    tier production\n}\n",
    )
    .unwrap();
    let uri = format!("file://{}", root.join("kiln.kdl").display());
    let mut c = Client::start();
    c.open(&uri, main);
    let found = c.at(
        "textDocument/definition",
        &uri,
        position(main, "envs/prod", 0, 3),
    );
    assert_eq!(
        found[0]["uri"],
        format!("file://{}", root.join("envs/prod.kdl").display())
    );
    c.stop();
}

#[test]
fn formatting_is_kiln_fmt() {
    let (path, uri, text) = fixture("ascai");
    let messy = text.replace("\n    ", "\n  ");
    assert_ne!(messy, text);
    let mut c = Client::start();
    c.open(&uri, &messy);
    let edits = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(edits.as_array().map(Vec::len), Some(1), "{edits}");
    assert_eq!(
        edits[0]["newText"],
        text,
        "formatting restores {}",
        path.display()
    );
    // A formatted document needs no edit.
    c.change(&uri, 2, &text);
    let edits = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(edits, json!([]));
    c.stop();
}

#[test]
fn a_file_outside_any_project_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("loose.kdl");
    std::fs::write(path, "node 1\n").unwrap();
    let uri = format!("file://{}", path.display());
    let mut c = Client::start();
    c.open(&uri, "node 1\n");
    let hover = c.at(
        "textDocument/hover",
        &uri,
        json!({ "line": 0, "character": 1 }),
    );
    assert_eq!(hover, Value::Null);
    c.stop();
}

#[test]
fn an_open_buffer_does_not_widen_what_the_project_reads() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("project");
    std::fs::create_dir_all(root.join("envs")).unwrap();
    let outside = "environment prod {\n    tier production\n}\n";
    std::fs::write(base.join("outside.kdl"), outside).unwrap();
    // A link inside the project to a file outside it, which the editor has open.
    let linked = root.join("envs/linked.kdl");
    std::os::unix::fs::symlink(base.join("outside.kdl"), &linked).unwrap();
    let main = "project demo\ninclude \"envs/linked.kdl\"\n";
    std::fs::write(root.join("kiln.kdl"), main).unwrap();
    let uri = format!("file://{}", root.join("kiln.kdl").display());
    let mut c = Client::start();
    c.open(&format!("file://{}", linked.display()), outside);
    c.open(&uri, main);
    let list = c.diagnostics(&uri, |l| !l.is_empty());
    assert_eq!(codes(&list), ["unsafe-path"], "{list:?}");
    assert_eq!(
        list[0]["range"]["start"],
        position(main, "\"envs/linked.kdl\"", 0, 0)
    );
    c.stop();
}
