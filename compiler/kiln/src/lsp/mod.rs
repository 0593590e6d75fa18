//! `kiln lsp`: a language server over stdio. The same schema, pipeline and policies as
//! `kiln compile`, answering an editor as the user types:
//!
//! - diagnostics of the spec on every change, and the policies' findings once typing has
//!   paused ([`POLICY_DELAY`]) or the file is saved;
//! - completion of node and setting names, values and references, with their docs;
//! - hover: a node's or setting's documentation, and its resolved value in each environment
//!   with the layers that set and overrode it;
//! - go to definition of `extends`, presets, `uses`, `upstream`, secrets and includes;
//! - formatting (`kiln fmt`), and a quick fix for each "did you mean".
//!
//! The server writes nothing: it builds in memory, from the open documents laid over the
//! project's files (read through the same safe reader as a compile).

mod features;
mod lang;
mod scan;
mod text;
mod workspace;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    CodeActionRequest, Completion, Formatting, GotoDefinition, HoverRequest, Request as _,
};
use lsp_types::{
    CodeActionProviderCapability, CompletionOptions, GotoDefinitionResponse, Hover, HoverContents,
    HoverProviderCapability, MarkupContent, MarkupKind, OneOf, PublishDiagnosticsParams,
    ServerCapabilities, TextDocumentPositionParams, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions, Url,
};
use serde_json::Value;

use text::LineIndex;
use workspace::{Analysis, project_root};

/// How long typing must pause before the policies run.
const POLICY_DELAY: Duration = Duration::from_millis(400);

pub fn serve() -> Result<u8> {
    let (connection, io) = Connection::stdio();
    let capabilities = ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::FULL),
                save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                ..Default::default()
            },
        )),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![" ".into(), "=".into()]),
            ..Default::default()
        }),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        ..Default::default()
    };
    let init = serde_json::json!({
        "capabilities": capabilities,
        "serverInfo": { "name": "kiln", "version": env!("CARGO_PKG_VERSION") },
    });
    let (id, _params) = connection
        .initialize_start()
        .context("the editor did not initialize the server")?;
    // (The protocol error would quote the whole unexpected message, a document's text
    // included.)
    connection
        .initialize_finish(id, init)
        .map_err(|_| anyhow::anyhow!("the editor did not send `initialized` after `initialize`"))?;
    Server::default().run(&connection)?;
    drop(connection);
    io.join()?;
    Ok(crate::ui::EXIT_OK)
}

#[derive(Default)]
struct Server {
    /// Open documents' text, by absolute path.
    open: HashMap<PathBuf, String>,
    /// Each project's last build.
    projects: HashMap<PathBuf, Analysis>,
    /// The files each project last published diagnostics for.
    published: HashMap<PathBuf, BTreeSet<Url>>,
    /// When each project's policies are due to run.
    due: HashMap<PathBuf, Instant>,
}

impl Server {
    fn run(&mut self, conn: &Connection) -> Result<()> {
        loop {
            let wait = self
                .due
                .values()
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            let message = match wait {
                Some(wait) => match conn.receiver.recv_timeout(wait) {
                    Ok(m) => Some(m),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
                },
                None => match conn.receiver.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return Ok(()),
                },
            };
            match message {
                Some(Message::Request(req)) => {
                    if conn.handle_shutdown(&req)? {
                        return Ok(());
                    }
                    let response = self.request(req);
                    conn.sender.send(Message::Response(response))?;
                }
                Some(Message::Notification(n)) => self.notification(conn, n)?,
                Some(Message::Response(_)) => {}
                None => {
                    let now = Instant::now();
                    let due: Vec<PathBuf> = self
                        .due
                        .iter()
                        .filter(|(_, at)| **at <= now)
                        .map(|(root, _)| root.clone())
                        .collect();
                    for root in due {
                        self.due.remove(&root);
                        self.analyze(conn, &root, true)?;
                    }
                }
            }
        }
    }

    fn notification(&mut self, conn: &Connection, n: Notification) -> Result<()> {
        let params = n.params;
        let (path, saved) = match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let p: lsp_types::DidOpenTextDocumentParams = serde_json::from_value(params)?;
                let Some(path) = file_path(&p.text_document.uri) else {
                    return Ok(());
                };
                self.open.insert(path.clone(), p.text_document.text);
                (path, false)
            }
            DidChangeTextDocument::METHOD => {
                let p: lsp_types::DidChangeTextDocumentParams = serde_json::from_value(params)?;
                let Some(path) = file_path(&p.text_document.uri) else {
                    return Ok(());
                };
                // Full synchronisation: the last change is the whole text.
                if let Some(change) = p.content_changes.into_iter().last() {
                    self.open.insert(path.clone(), change.text);
                }
                (path, false)
            }
            DidSaveTextDocument::METHOD => {
                let p: lsp_types::DidSaveTextDocumentParams = serde_json::from_value(params)?;
                let Some(path) = file_path(&p.text_document.uri) else {
                    return Ok(());
                };
                (path, true)
            }
            DidCloseTextDocument::METHOD => {
                let p: lsp_types::DidCloseTextDocumentParams = serde_json::from_value(params)?;
                if let Some(path) = file_path(&p.text_document.uri) {
                    self.open.remove(&path);
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some(root) = project_root(&path) else {
            return Ok(());
        };
        if saved {
            self.due.remove(&root);
            return self.analyze(conn, &root, true);
        }
        self.analyze(conn, &root, false)?;
        self.due.insert(root, Instant::now() + POLICY_DELAY);
        Ok(())
    }

    /// Builds a project and publishes its diagnostics.
    fn analyze(&mut self, conn: &Connection, root: &Path, policies: bool) -> Result<()> {
        let analysis = match Analysis::run(root, &self.open, policies) {
            Ok(a) => a,
            Err(e) => {
                let message = format!("kiln: cannot read the project at {}: {e:#}", root.display());
                let params = serde_json::json!({ "type": 1, "message": message });
                conn.sender.send(Message::Notification(Notification::new(
                    "window/logMessage".into(),
                    params,
                )))?;
                return Ok(());
            }
        };
        let diagnostics = analysis.diagnostics();
        let before = self.published.remove(root).unwrap_or_default();
        for uri in before.iter().filter(|u| !diagnostics.contains_key(*u)) {
            publish(conn, uri.clone(), Vec::new())?;
        }
        for (uri, list) in &diagnostics {
            publish(conn, uri.clone(), list.clone())?;
        }
        self.published
            .insert(root.to_path_buf(), diagnostics.into_keys().collect());
        self.projects.insert(root.to_path_buf(), analysis);
        Ok(())
    }

    fn request(&mut self, req: Request) -> Response {
        let id = req.id.clone();
        match self.answer(req) {
            Ok(value) => Response::new_ok(id, value),
            Err(e) => {
                let code = match e.is::<MethodNotFound>() {
                    true => ErrorCode::MethodNotFound,
                    false => ErrorCode::InvalidParams,
                };
                Response::new_err(id, code as i32, format!("{e:#}"))
            }
        }
    }

    fn answer(&mut self, req: Request) -> Result<Value> {
        let params = req.params;
        Ok(match req.method.as_str() {
            Completion::METHOD => {
                let p: lsp_types::CompletionParams = serde_json::from_value(params)?;
                let Some((doc, ctx)) = self.cursor(&p.text_document_position) else {
                    return Ok(Value::Null);
                };
                let index = LineIndex::new(&doc.text);
                let items = features::completion(&ctx, self.analysis(&doc.path), &index);
                serde_json::to_value(items)?
            }
            HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = serde_json::from_value(params)?;
                let Some((doc, ctx)) = self.cursor(&p.text_document_position_params) else {
                    return Ok(Value::Null);
                };
                let index = LineIndex::new(&doc.text);
                let analysis = self.analysis(&doc.path);
                let file = analysis.and_then(|a| a.file_id(&doc.path));
                let Some(text) = features::hover(&ctx, analysis, file) else {
                    return Ok(Value::Null);
                };
                let range = ctx.word.as_ref().map(|w| index.range(w.start, w.end));
                serde_json::to_value(Hover {
                    contents: HoverContents::Markup(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: text,
                    }),
                    range,
                })?
            }
            GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = serde_json::from_value(params)?;
                let Some((doc, ctx)) = self.cursor(&p.text_document_position_params) else {
                    return Ok(Value::Null);
                };
                let Some(analysis) = self.analysis(&doc.path) else {
                    return Ok(Value::Null);
                };
                let found = features::definition(&ctx, analysis, &doc.path);
                serde_json::to_value(GotoDefinitionResponse::Array(found))?
            }
            Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams = serde_json::from_value(params)?;
                let Some(doc) = self.document(&p.text_document.uri) else {
                    return Ok(Value::Null);
                };
                serde_json::to_value(features::format(&doc.text))?
            }
            CodeActionRequest::METHOD => {
                let p: lsp_types::CodeActionParams = serde_json::from_value(params)?;
                let Some(doc) = self.document(&p.text_document.uri) else {
                    return Ok(Value::Null);
                };
                let actions =
                    features::code_actions(&p.text_document.uri, &doc.text, &p.context.diagnostics);
                serde_json::to_value(actions)?
            }
            _ => {
                return Err(anyhow::anyhow!(MethodNotFound(req.method)));
            }
        })
    }

    /// The document a request is about, and the cursor's context in it.
    fn cursor(&self, at: &TextDocumentPositionParams) -> Option<(Document, scan::Context)> {
        let doc = self.document(&at.text_document.uri)?;
        let offset = LineIndex::new(&doc.text).offset(at.position);
        let ctx = scan::context(&doc.text, offset);
        Some((doc, ctx))
    }

    /// A document's text: the editor's, when it is open, else the file's.
    fn document(&self, uri: &Url) -> Option<Document> {
        let path = file_path(uri)?;
        let text = match self.open.get(&path) {
            Some(text) => text.clone(),
            None => std::fs::read_to_string(&path).ok()?,
        };
        Some(Document { path, text })
    }

    /// The last build of the project holding `path`, building it when there is none yet.
    fn analysis(&mut self, path: &Path) -> Option<&Analysis> {
        let root = project_root(path)?;
        if !self.projects.contains_key(&root) {
            let analysis = Analysis::run(&root, &self.open, false).ok()?;
            self.projects.insert(root.clone(), analysis);
        }
        self.projects.get(&root)
    }
}

struct Document {
    path: PathBuf,
    text: String,
}

#[derive(Debug)]
struct MethodNotFound(String);

impl std::fmt::Display for MethodNotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kiln lsp does not answer `{}`", self.0)
    }
}

impl std::error::Error for MethodNotFound {}

fn file_path(uri: &Url) -> Option<PathBuf> {
    (uri.scheme() == "file")
        .then(|| uri.to_file_path().ok())
        .flatten()
}

fn publish(conn: &Connection, uri: Url, diagnostics: Vec<lsp_types::Diagnostic>) -> Result<()> {
    let params = PublishDiagnosticsParams::new(uri, diagnostics, None);
    conn.sender.send(Message::Notification(Notification::new(
        PublishDiagnostics::METHOD.into(),
        params,
    )))?;
    Ok(())
}
