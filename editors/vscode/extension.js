// Starts `kiln lsp` for the .kdl files of a workspace holding a kiln.kdl.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("kiln").get("path", "kiln");
  client = new LanguageClient(
    "kiln",
    "kiln",
    { command, args: ["lsp"] },
    { documentSelector: [{ scheme: "file", language: "kdl" }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
