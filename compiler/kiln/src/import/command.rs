//! A compose `command` as a kiln `run`: which program of the catalog it starts, its
//! application, the port it binds, and its options — read from each program's own
//! declaration (`stdlib/programs.kdl`: its `run` words, its `argv` template, each option's
//! flag), not from a second list of flags here.

use kiln_core::model::ServiceKind;
use kiln_core::programs::{AppArg, Catalog, OptionType, ProgramDef};

/// What `run` says, and what the command said that it cannot.
#[derive(Debug, PartialEq)]
pub struct Run {
    /// `run` words (`gunicorn`, `celery worker`), or `command` for a command kiln does not
    /// know.
    pub words: Vec<String>,
    /// Arguments after the words: the application, or a command's words.
    pub args: Vec<String>,
    /// Options, as `name=value` (a value already written as KDL).
    pub options: Vec<(String, String)>,
    /// The port the command binds (`--bind 0.0.0.0:8000`).
    pub port: Option<u16>,
    /// Arguments with no option of the program: kept in `args=`.
    pub extra: Vec<String>,
    /// Arguments dropped, with why (`--reload`: a development server's).
    pub dropped: Vec<(String, &'static str)>,
    /// The kind of process the program is.
    pub kind: ServiceKind,
}

impl Run {
    fn new(words: Vec<String>, kind: ServiceKind) -> Run {
        Run {
            words,
            args: Vec::new(),
            options: Vec::new(),
            port: None,
            extra: Vec::new(),
            dropped: Vec::new(),
            kind,
        }
    }
}

/// Splits a compose command (a string is split as a shell would, then `sh -c "…"` is
/// unwrapped to its last command).
pub fn words(command: &str) -> Vec<String> {
    shlex::split(command).unwrap_or_else(|| command.split_whitespace().map(str::to_owned).collect())
}

fn unwrap_shell(argv: Vec<String>) -> Vec<String> {
    let is_shell = argv
        .first()
        .is_some_and(|a| matches!(basename(a), "sh" | "bash" | "ash" | "dash"));
    if is_shell && argv.len() >= 3 && argv[1] == "-c" {
        // `sh -c "python manage.py migrate && gunicorn …"`: the last command is the process.
        let script = &argv[2];
        let last = script
            .rsplit("&&")
            .next()
            .unwrap_or(script)
            .rsplit(';')
            .next()
            .unwrap_or(script)
            .trim();
        let last = last.strip_prefix("exec ").unwrap_or(last);
        return words(last);
    }
    argv
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// The words that name a program in a command line: its `run` words, or the literal start of
/// its `argv` (`python manage.py`).
fn key(def: &ProgramDef) -> Vec<String> {
    let literal: Vec<String> = def
        .argv
        .iter()
        .take_while(|w| !w.contains('{') && !w.starts_with('-'))
        .cloned()
        .collect();
    match def.run.first() {
        Some(first) if literal.first() == Some(first) => def.run.clone(),
        _ => literal,
    }
}

/// Whether `key` names the command `argv`: its first word is the command's, and the rest
/// appear, in order, among the command's other words that are not flags.
fn matches(key: &[String], argv: &[String]) -> bool {
    let Some((first, rest)) = key.split_first() else {
        return false;
    };
    // `python3` runs what `python` does; `/opt/app/manage.py` is `manage.py`.
    let program = |w: &str| match basename(w) {
        "python3" => "python".to_owned(),
        b => b.to_owned(),
    };
    if argv.first().map(|a| program(a)).as_deref() != Some(first.as_str()) {
        return false;
    }
    let mut positional = argv[1..].iter().filter(|w| !w.starts_with('-'));
    rest.iter().all(|k| positional.any(|w| basename(w) == k))
}

/// An option's flag as written in a command line: `--workers` of `--workers={}`.
fn flag_name(template: &str) -> &str {
    template.split(['=', ' ']).next().unwrap_or(template)
}

fn kdl_value(ty: OptionType, value: &str) -> String {
    match ty {
        OptionType::Int if value.parse::<i64>().is_ok() => value.to_owned(),
        OptionType::Duration if value.parse::<i64>().is_ok() => value.to_owned(),
        _ => format!("{value:?}"),
    }
}

/// The port of a bind address: `0.0.0.0:8000`, `:8000`, `8000`.
fn port_of(bind: &str) -> Option<u16> {
    bind.rsplit(':').next()?.parse().ok()
}

/// Reads `argv` against the catalog.
pub fn read(catalog: &Catalog, argv: Vec<String>) -> Run {
    let argv = unwrap_shell(argv);
    let best = catalog
        .programs
        .values()
        .filter(|d| d.name != "command")
        .map(|d| (key(d), d))
        .filter(|(k, _)| matches(k, &argv))
        .max_by_key(|(k, _)| k.len());
    let Some((key, def)) = best else {
        return Run {
            args: argv,
            ..Run::new(vec!["command".into()], ServiceKind::Task)
        };
    };
    let mut run = Run::new(def.run.clone(), def.kind);
    // The flags the template fills in itself: the app's and the bind address's.
    let template_flag = |placeholder: &str| {
        def.argv
            .iter()
            .position(|w| w.contains(placeholder))
            .and_then(|i| {
                let w = &def.argv[i];
                if w.starts_with('-') {
                    Some(flag_name(w).to_owned())
                } else if i > 0 && def.argv[i - 1].starts_with('-') && w == placeholder {
                    Some(def.argv[i - 1].clone())
                } else {
                    None
                }
            })
    };
    let app_flag = template_flag("{app}");
    let host_flag = template_flag("{host}");
    let port_flag = template_flag("{port}");
    let mut key_left: Vec<&String> = key[1..].iter().collect();
    let mut i = 1;
    while i < argv.len() {
        let word = &argv[i];
        i += 1;
        if let Some(pos) = key_left.iter().position(|k| k.as_str() == basename(word)) {
            key_left.remove(pos);
            continue;
        }
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if word.starts_with('-') => (f.to_owned(), Some(v.to_owned())),
            _ => (word.clone(), None),
        };
        let value = |i: &mut usize| -> Option<String> {
            inline.clone().or_else(|| {
                let v = argv.get(*i).filter(|v| !v.starts_with('-')).cloned();
                if v.is_some() {
                    *i += 1;
                }
                v
            })
        };
        if !word.starts_with('-') {
            // A positional: the application, or the command's words.
            let app = def.app != AppArg::None && app_flag.is_none() && run.args.is_empty();
            if app || def.argv.iter().any(|w| w == "{command}") {
                run.args.push(word.clone());
            } else {
                run.extra.push(word.clone());
            }
            continue;
        }
        let is = |f: &Option<String>| f.as_deref() == Some(flag.as_str());
        if is(&app_flag) || (app_flag.is_some() && matches!(flag.as_str(), "-A" | "--app")) {
            if let Some(app) = value(&mut i) {
                run.options.push(("app".into(), format!("{app:?}")));
            }
            continue;
        }
        if is(&host_flag) || is(&port_flag) || matches!(flag.as_str(), "--bind" | "-b") {
            if let Some(v) = value(&mut i)
                && let Some(port) = port_of(&v).filter(|_| !is(&host_flag) || v.contains(':'))
            {
                run.port = Some(port);
            }
            continue;
        }
        if flag == "--reload" {
            run.dropped
                .push((word.clone(), "a development server's auto-reload"));
            continue;
        }
        let option = def.options.iter().find(|o| {
            o.flag.as_deref().map(flag_name) == Some(flag.as_str())
                || o.if_true.as_deref() == Some(word.as_str())
                || o.if_false.as_deref() == Some(word.as_str())
        });
        match option {
            Some(o) if o.if_true.as_deref() == Some(word.as_str()) => {
                run.options.push((o.name.clone(), "#true".into()))
            }
            Some(o) if o.if_false.as_deref() == Some(word.as_str()) => {
                run.options.push((o.name.clone(), "#false".into()))
            }
            Some(o) => match value(&mut i) {
                Some(v) => run.options.push((o.name.clone(), kdl_value(o.ty, &v))),
                None => run.extra.push(word.clone()),
            },
            None => run.extra.push(word.clone()),
        }
    }
    // A flag given twice (`-A saleor --app=saleor.celeryconf:app`): the last one counts, as
    // for the program itself.
    let mut seen = std::collections::HashSet::new();
    let mut options: Vec<(String, String)> = run
        .options
        .drain(..)
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    options.reverse();
    run.options = options;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut sources = kiln_core::Sources::new();
        kiln_core::programs::stdlib(&mut sources, &mut Vec::new())
    }

    fn run(command: &str) -> Run {
        read(&catalog(), words(command))
    }

    #[test]
    fn programs_come_from_the_catalog() {
        let r =
            run("gunicorn hello_django.wsgi:application --bind 0.0.0.0:8000 --workers=3 -k gevent");
        assert_eq!(r.words, ["gunicorn"]);
        assert_eq!(r.args, ["hello_django.wsgi:application"]);
        assert_eq!(r.port, Some(8000));
        assert_eq!(r.options, [("workers".to_owned(), "3".to_owned())]);
        assert_eq!(r.extra, ["-k", "gevent"]);

        let r = run("uvicorn main:app --host 0.0.0.0 --port 8000 --reload --proxy-headers");
        assert_eq!((r.words[0].as_str(), r.port), ("uvicorn", Some(8000)));
        assert_eq!(
            r.options,
            [("proxy-headers".to_owned(), "#true".to_owned())]
        );
        assert_eq!(r.dropped.len(), 1);

        let r = run(
            "celery -A saleor --app=saleor.celeryconf:app worker --loglevel=info --concurrency 4",
        );
        assert_eq!(r.words, ["celery", "worker"]);
        assert!(
            r.options
                .contains(&("app".into(), "\"saleor.celeryconf:app\"".into()))
        );
        assert!(r.options.contains(&("log-level".into(), "\"info\"".into())));
        assert!(r.options.contains(&("concurrency".into(), "4".into())));

        let r =
            run("sh -c \"python manage.py migrate && python manage.py runserver 0.0.0.0:8000\"");
        assert_eq!(r.words, ["manage"]);
        assert_eq!(r.args, ["runserver", "0.0.0.0:8000"]);

        let r = run("python3 /opt/netbox/netbox/manage.py rqworker");
        assert_eq!(
            (r.words.as_slice(), r.args.as_slice()),
            (&["manage".to_owned()][..], &["rqworker".to_owned()][..])
        );

        let r = run("npm start -- --host 0.0.0.0");
        assert_eq!(r.words, ["command"]);
        assert_eq!(r.args, ["npm", "start", "--", "--host", "0.0.0.0"]);
    }
}
