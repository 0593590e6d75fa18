//! The command-line interface (the contract in DESIGN.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version,
    about = "Compile KDL environment specs into compose, systemd, nginx, pgbouncer and Kubernetes files, checked by WebAssembly policies."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to color diagnostics: auto honours NO_COLOR, TERM=dumb and non-terminals.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Also show information-level diagnostics (quiet by default).
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Only errors and drift: no warnings, no summary lines (for pre-commit hooks).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// The starting points of `kiln init`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitPreset {
    /// Django behind gunicorn, Celery worker and beat, PostgreSQL behind pgbouncer, Redis.
    Django,
    /// FastAPI behind uvicorn, Celery worker and beat, PostgreSQL behind pgbouncer, Redis.
    Fastapi,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

/// Formats of listings (`kiln policy list`): SARIF and annotations are for findings.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Human,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Human,
    Markdown,
    Json,
}

#[derive(Args, Debug)]
pub struct ProjectArgs {
    /// The project folder (holding kiln.kdl).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the spec, run the policies, write the outputs and kiln.lock.
    Compile {
        #[command(flatten)]
        project: ProjectArgs,
        /// Only these environments (repeatable).
        #[arg(long = "env", value_name = "NAME")]
        envs: Vec<String>,
        /// Write nothing; derive everything and exit 1 if any output or kiln.lock is missing,
        /// edited, stale or unexpected, or an error-level finding stands.
        #[arg(long)]
        check: bool,
        /// human (stderr), json (docs/schemas/compile.schema.json), sarif (code scanning) or
        /// github (workflow annotations); machine formats go to stdout.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Show what a compile would change, with the spec lines behind each change; with
    /// `--base REV`, what the spec changes in the generated files since that commit (a
    /// pull request's review).
    Diff {
        #[command(flatten)]
        project: ProjectArgs,
        /// Only these environments (repeatable).
        #[arg(long = "env", value_name = "NAME")]
        envs: Vec<String>,
        /// human (annotated unified diffs), markdown (a PR comment) or json.
        #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
        format: DiffFormat,
        /// Compare with the generated files committed in this revision (`origin/main`, a
        /// commit), not with the working tree.
        #[arg(long, value_name = "REV")]
        base: Option<String>,
        /// Exit 1 when something changes, 0 when nothing does.
        #[arg(long)]
        exit_code: bool,
        /// Bound the report (default 60000 characters for markdown, a PR comment's room;
        /// none otherwise): a summary of every changed file, then the diffs that fit.
        #[arg(long, value_name = "N")]
        max_chars: Option<usize>,
    },
    /// Print the resolved environment (the policy input) as JSON.
    Inspect {
        #[command(flatten)]
        project: ProjectArgs,
        /// The environment to resolve.
        #[arg(long = "env", value_name = "NAME")]
        env: String,
    },
    /// Which spec lines produced an output line (FILE[:LINE]), or the documentation of a rule or
    /// a diagnostic code.
    Explain {
        /// `generated/production/nginx/sites/api.example.com.conf:12`, a rule id such as
        /// `web.debug-off`, or a diagnostic code such as `port-collision`.
        what: String,
        /// The project folder, when FILE is not inside it.
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
    },
    /// Policies in force, and the policy test harness.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Secret values, judged without ever printing them.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Format spec files canonically.
    Fmt {
        #[command(flatten)]
        project: ProjectArgs,
        /// Write nothing; exit 1 and show the diff if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Start a project: write a kiln.kdl that compiles cleanly (staging and production).
    Init {
        /// The folder to start it in (created if missing; must hold no kiln.kdl).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The shape of the app.
        #[arg(long, value_enum, default_value_t = InitPreset::Django)]
        preset: InitPreset,
        /// The project name (default: the folder's name, made a valid name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print kiln's man page (roff), e.g. `kiln man > /usr/local/share/man/man1/kiln.1`.
    Man,
    /// Write a kiln spec from a docker compose file, reporting what it could not map at the
    /// compose file's lines.
    Import {
        /// The compose file (`docker-compose.yml`).
        file: PathBuf,
        /// The folder to write `kiln.kdl` in (created if missing; must hold no kiln.kdl).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// The project name (default: the output folder's name).
        #[arg(long)]
        name: Option<String>,
        /// human (stderr) or json (stdout): the report.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// A language server over stdio for editors: diagnostics as you type, completion, hover,
    /// go to definition, formatting (docs/editors.md).
    Lsp,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// The policies and rules in force for an environment, with their severities.
    List {
        #[command(flatten)]
        project: ProjectArgs,
        /// The environment whose severities, waivers and own policy modules to show (without
        /// it: the standard library's defaults).
        #[arg(long = "env", value_name = "NAME")]
        env: Option<String>,
        #[arg(long, value_enum, default_value_t = ListFormat::Human)]
        format: ListFormat,
    },
    /// Run policy test cases: specs with the findings they must produce.
    Test {
        /// A folder of cases, or one case: a `.kdl` spec whose `// finding: RULE` comments mark
        /// each line where a finding of RULE must land; in a folder named after a rule, a case
        /// without markers must have no finding of it.
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Judge the secret values in an env file against their declared kinds.
    Check {
        #[command(flatten)]
        project: ProjectArgs,
        /// The environment whose declared secrets to judge.
        #[arg(long = "env", value_name = "NAME")]
        env: String,
        /// The env file holding the values (KEY=value lines).
        #[arg(long = "env-file", value_name = "FILE")]
        env_file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}
