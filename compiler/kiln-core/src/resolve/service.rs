//! Services: their process (`run` against the program catalog), wiring (`uses`), and unit names.

use super::*;

impl Lower<'_> {
    pub(super) fn service(&mut self, node: &Node, model: &Model) -> Option<(String, Service)> {
        let key = node.key()?;
        let ptr = format!("/services/{}", pointer_segment(&key));
        self.record(&ptr, node);
        let Some(run_node) = node.child("run") else {
            let preset_unknown = node
                .child("preset")
                .and_then(|p| p.args.first())
                .and_then(|v| v.value.as_str())
                .is_some_and(|p| !self.project.presets.contains_key(p));
            if preset_unknown {
                return None; // the unknown preset is reported
            }
            self.diags.push(
                Diagnostic::error("missing-value", format!("service `{key}` has nothing to run"))
                    .with_label(node.value_span(), "no `run` and no preset that sets one")
                    .with_help("add `preset=django-web` (or fastapi-web, daphne, celery-worker, celery-beat), or `run gunicorn \"config.wsgi:application\"`"),
            );
            return None;
        };
        let (run, derived_kind) = self.process(run_node, &format!("{ptr}/run"))?;
        let kind = match self.string(node, "kind", &format!("{ptr}/kind")).as_deref() {
            Some("web") => ServiceKind::Web,
            Some("worker") => ServiceKind::Worker,
            Some("beat") => ServiceKind::Beat,
            Some("task") => ServiceKind::Task,
            _ => derived_kind,
        };
        let port = self
            .uint(node, "port", &format!("{ptr}/port"))
            .map(|p| p as u16);
        let mut run = run;
        run.argv = run.command_line("0.0.0.0", port);
        if kind == ServiceKind::Web && port.is_none() && node.child("port").is_none() {
            self.diags.push(
                Diagnostic::error("missing-value", format!("web service `{key}` has no port"))
                    .with_label(node.value_span(), "no `port`")
                    .with_help("add `port 8000`"),
            );
        }
        // `health` is an HTTP path: a process that serves no HTTP would silently get none.
        if kind != ServiceKind::Web
            && let Some(h) = node.child("health")
        {
            let probe = match &run.probe {
                Some(_) => format!(
                    "kiln probes it with its program's own check (`{}`)",
                    run.program
                ),
                None => format!(
                    "`{}` declares no probe: declare the program with a `probe` (see Programs) to have one",
                    run.program
                ),
            };
            self.diags.push(
                Diagnostic::error(
                    "unexpected-value",
                    format!(
                        "`health` is an HTTP check, and `{key}` is a {} that serves no HTTP",
                        format!("{kind:?}").to_lowercase()
                    ),
                )
                .with_label(h.value_span(), "never probed")
                .with_help(format!("remove it: {probe}")),
            );
        }
        let health = node.child("health").and_then(|h| {
            let path = h.args.first()?.value.as_str()?.to_owned();
            let hp = format!("{ptr}/health");
            self.record(&hp, h);
            Some(Health {
                path,
                interval: self
                    .duration(h, "interval", &format!("{hp}/interval"))
                    .unwrap_or(30),
                timeout: self
                    .duration(h, "timeout", &format!("{hp}/timeout"))
                    .unwrap_or(5),
                retries: self
                    .uint(h, "retries", &format!("{hp}/retries"))
                    .unwrap_or(3),
                start_period: self
                    .duration(h, "start-period", &format!("{hp}/start-period"))
                    .unwrap_or(20),
            })
        });

        // Env: project env < wiring < secrets < service env.
        let mut env = model.env.clone();
        let uses = self.list(node, "uses", &format!("{ptr}/uses"));
        self.wire(node, &key, &uses, model, &ptr, &mut env);
        for (name, secret) in &model.secrets {
            if secret.apps && (secret.services.is_empty() || secret.services.contains(&key)) {
                env.insert(name.clone(), EnvValue::Secret(name.clone()));
                if let Some(o) = self
                    .prov
                    .map
                    .get(&format!("/secrets/{}", pointer_segment(name)))
                    .cloned()
                {
                    self.prov
                        .record(format!("{ptr}/env/{}", pointer_segment(name)), o);
                }
            }
        }
        // The project's per-target values hold where the service keeps the project's value.
        let mut env_targets = model.env_targets.clone();
        env_targets.retain(|var, _| env.get(var) == model.env.get(var));
        if let Some(env_node) = node.child("env") {
            self.env_block(
                env_node,
                &format!("{ptr}/env"),
                &model.secrets,
                &mut env,
                &mut env_targets,
            );
        }
        for name in model.env.keys() {
            let from = format!("/env/{}", pointer_segment(name));
            let to = format!("{ptr}/env/{}", pointer_segment(name));
            if !self.prov.map.contains_key(&to)
                && let Some(o) = self.prov.map.get(&from).cloned()
            {
                self.prov.record(to, o);
            }
        }

        let mut volumes = BTreeMap::new();
        for v in node.children_named("volume") {
            let Some(vk) = v.key() else { continue };
            let Some(path) = v.args.get(1).and_then(|a| a.value.as_str()) else {
                continue;
            };
            let vp = format!("{ptr}/volumes/{}", pointer_segment(&vk));
            self.record(&vp, v);
            volumes.insert(
                vk,
                Volume {
                    path: path.to_owned(),
                    read_only: self.boolean(v, "read-only", &format!("{vp}/read-only"), false),
                },
            );
        }
        let depends_on = self.depends_on(node, &ptr);
        let tmpfs = match node.child("tmpfs") {
            Some(_) => self.list(node, "tmpfs", &format!("{ptr}/tmpfs")),
            None => vec!["/tmp".to_owned()],
        };
        let mounts: Vec<&str> = tmpfs
            .iter()
            .chain(volumes.values().map(|v| &v.path))
            .map(String::as_str)
            .collect();
        let files = self.app_files(node, &ptr, &mounts);
        let service = Service {
            kind,
            preset: node
                .child("preset")
                .and_then(|p| p.args.first())
                .map(|v| v.value.to_text()),
            image: self.image(node, &format!("{ptr}/image")),
            run,
            port,
            health,
            balancer: self.string(node, "balancer", &format!("{ptr}/balancer")),
            replicas: self
                .uint(node, "replicas", &format!("{ptr}/replicas"))
                .unwrap_or(1),
            resources: self.resources(node, &format!("{ptr}/resources")),
            uses,
            depends_on,
            env,
            env_targets,
            volumes,
            files,
            read_only: self.boolean(node, "read-only", &format!("{ptr}/read-only"), true),
            tmpfs,
            user: self
                .string(node, "user", &format!("{ptr}/user"))
                .unwrap_or_else(|| format!("{}:{}", model.host.uid, model.host.gid)),
            cap_add: self.list(node, "cap-add", &format!("{ptr}/cap-add")),
            restart: self
                .string(node, "restart", &format!("{ptr}/restart"))
                .unwrap_or_else(|| {
                    if kind == ServiceKind::Task {
                        "no".into()
                    } else {
                        "always".into()
                    }
                }),
            stop_timeout: self.duration(node, "stop-timeout", &format!("{ptr}/stop-timeout")),
            unit: self.unit_name(node, &ptr),
        };
        Some((key, service))
    }

    /// `uses db cache` → DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, CELERY_RESULT_BACKEND.
    pub(super) fn wire(
        &mut self,
        node: &Node,
        service: &str,
        uses: &[String],
        model: &Model,
        ptr: &str,
        env: &mut BTreeMap<String, EnvValue>,
    ) {
        let uses_node = node.child("uses");
        let mut pg_count = 0;
        let mut redis_count = 0;
        for (i, name) in uses.iter().enumerate() {
            let span = uses_node
                .and_then(|u| {
                    if u.from_prop {
                        u.args.first()
                    } else {
                        u.args.get(i)
                    }
                })
                .map_or(node.value_span(), |a| a.span);
            let origin = vec![Origin {
                span,
                layer: uses_node.map_or_else(|| "wiring".to_owned(), |u| u.layer.to_string()),
            }];
            let set = |lower: &mut Self,
                       env: &mut BTreeMap<String, EnvValue>,
                       var: String,
                       parts: Vec<Part>| {
                lower.prov.record(
                    format!("{ptr}/env/{}", pointer_segment(&var)),
                    origin.clone(),
                );
                env.insert(var, EnvValue::Wired(parts));
            };
            if model.postgres.contains_key(name) {
                for (var, parts) in references::postgres_wiring(model, name, pg_count == 0) {
                    set(self, env, var, parts);
                }
                pg_count += 1;
            } else if model.redis.contains_key(name) {
                let prefix = if redis_count == 0 {
                    String::new()
                } else {
                    format!("{}_", env_prefix(name))
                };
                redis_count += 1;
                let url = |db| references::redis_url(model, name, db);
                set(self, env, format!("{prefix}REDIS_URL"), url(0));
                if self.celery {
                    set(self, env, format!("{prefix}CELERY_BROKER_URL"), url(1));
                    set(self, env, format!("{prefix}CELERY_RESULT_BACKEND"), url(2));
                }
            } else {
                let mut candidates: Vec<&str> = model
                    .postgres
                    .keys()
                    .chain(model.redis.keys())
                    .map(String::as_str)
                    .collect();
                candidates.sort();
                let help = if uses_node.is_some_and(|_| name == service) {
                    "a service cannot use itself".to_owned()
                } else {
                    match unknown_name_help(name, "data service", &candidates) {
                        h if h.starts_with("did you mean") => h,
                        _ if candidates.is_empty() => {
                            "declare it: `postgres db { … }` or `redis cache { … }`".to_owned()
                        }
                        h => h,
                    }
                };
                self.diags.push(
                    Diagnostic::error("unknown-reference", format!("service `{service}` uses `{name}`, which is not a declared database or cache"))
                        .with_label(span, "no such data service")
                        .with_help(help),
                );
            }
        }
    }

    /// A `run` node through the program catalog: the process and the kind the program is.
    pub(super) fn process(&mut self, node: &Node, ptr: &str) -> Option<(Process, ServiceKind)> {
        self.record(ptr, node);
        let args: Vec<String> = node.args.iter().map(|a| a.value.to_text()).collect();
        let Some(first) = node.args.first() else {
            self.diags.push(
                Diagnostic::error("missing-value", "`run` names no program")
                    .with_label(node.name_span, "no program, and no inherited `run` to change")
                    .with_help("write `run gunicorn \"config.wsgi:application\"`, or use a preset such as `preset=django-web`"),
            );
            return None;
        };
        let catalog = &self.project.programs;
        let Some(def) = catalog.select(&args) else {
            // A first word that some program starts with: the second word is what is wrong.
            let starts: Vec<&crate::programs::ProgramDef> = catalog
                .programs
                .values()
                .filter(|p| p.run.len() > 1 && p.run[0] == args[0])
                .collect();
            if !starts.is_empty() {
                let span = node.args.get(1).map_or(first.span, |a| a.span);
                let seconds: Vec<String> =
                    starts.iter().map(|p| format!("`{}`", p.run[1])).collect();
                self.diags.push(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`run {}` needs {}", args[0], seconds.join(" or ")),
                    )
                    .with_label(span, format!("expected {}", seconds.join(" or ")))
                    .with_help(format!(
                        "write `run {} {} app=config`",
                        args[0], starts[0].run[1]
                    )),
                );
                return None;
            }
            let words = catalog.first_words();
            self.diags.push(
                Diagnostic::error("type-mismatch", format!("unknown program `{}`", args[0]))
                    .with_label(first.span, "not a known program")
                    .with_help(match unknown_name_help(&args[0], "program", &words) {
                        h if h.starts_with("did you mean") => h,
                        _ => format!(
                            "the catalog has {}; declare your own with `program NAME {{ argv … }}`, or run it as `run command \"prog\" \"arg\" …`",
                            words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
                        ),
                    }),
            );
            return None;
        };
        let program = def.name.as_str();
        let rest = &args[def.run.len()..];
        let mut options = BTreeMap::new();
        let allowed = def.option_names();
        for child in &node.children {
            if !allowed.contains(&child.name.as_str()) {
                self.diags.push(
                    Diagnostic::error(
                        "unknown-property",
                        format!("`{}` is not an option of {program}", child.name),
                    )
                    .with_label(child.name_span, format!("does not apply to {program}"))
                    .with_help(unknown_name_help(
                        &child.name,
                        "option",
                        &allowed,
                    )),
                );
                continue;
            }
            let p = format!("{ptr}/options/{}", child.name);
            let ty = def.option(&child.name).map(|o| o.ty);
            if child.name == "args" || ty == Some(crate::programs::OptionType::List) {
                let v = self.list(node, &child.name, &p);
                options.insert(child.name.clone(), serde_json::Value::from(v));
            } else if let Some(v) = child.args.first().filter(|v| v.value != Value::Null) {
                self.record(&p, child);
                let json = match (&v.value, ty) {
                    (Value::Str(s), Some(crate::programs::OptionType::Duration)) => {
                        parse_duration(s)
                            .map_or_else(|| scalar_json(&v.value), serde_json::Value::from)
                    }
                    _ => scalar_json(&v.value),
                };
                if let Some(problem) = option_type_problem(&json, ty) {
                    self.diags.push(
                        Diagnostic::error(
                            "type-mismatch",
                            format!("`{}` of {program} must be {problem}", child.name),
                        )
                        .with_label(v.span, format!("this is {}", v.value.type_name()))
                        .with_help(format!(
                            "see the `{program}` program in `kiln explain` or docs/spec.md"
                        )),
                    );
                    continue;
                }
                options.insert(child.name.clone(), json);
            }
        }
        let app = options
            .remove("app")
            .and_then(|v| v.as_str().map(str::to_owned))
            .or_else(|| match def.app {
                crate::programs::AppArg::None => None,
                _ => rest.first().cloned(),
            });
        let takes_command = def.argv.iter().chain(&def.after).any(|a| a == "{command}");
        let extra_positional = match (def.app, takes_command) {
            (_, true) => &[][..],
            (crate::programs::AppArg::None, false) => rest,
            _ if rest.len() > 1 => &rest[1..],
            _ => &[][..],
        };
        if let Some(extra) = extra_positional.first() {
            let idx = node
                .args
                .iter()
                .position(|a| a.value.to_text() == *extra)
                .unwrap_or(0);
            self.diags.push(
                Diagnostic::error(
                    "unexpected-value",
                    match def.app {
                        crate::programs::AppArg::None => {
                            format!("{program} takes no positional argument")
                        }
                        _ => format!("{program} takes one application argument"),
                    },
                )
                .with_label(node.args[idx].span, "extra argument")
                .with_help("pass other flags with `args \"--flag\" \"value\"`"),
            );
        }
        if takes_command && rest.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    "missing-value",
                    format!("`run {program}` needs the command to run"),
                )
                .with_label(first.span, "nothing to run")
                .with_help(match program {
                    "manage" => "write `run manage \"migrate\" \"--noinput\"`",
                    _ => "write `run command \"python\" \"manage.py\" \"migrate\"`",
                }),
            );
            return None;
        }
        if def.app == crate::programs::AppArg::Required && app.is_none() {
            self.diags.push(
                Diagnostic::error("missing-value", format!("{program} needs an application"))
                    .with_label(first.span, "no application given")
                    .with_help(match def.kind {
                        ServiceKind::Web => format!(
                            "add the application: `run {} \"config.wsgi:application\"`",
                            def.run.join(" ")
                        ),
                        _ => format!("add `app=config` (the application `{program}` loads)"),
                    }),
            );
            return None;
        }
        if takes_command {
            options.insert("command".into(), serde_json::Value::from(rest.to_vec()));
        }
        let app_text = app.clone().unwrap_or_default();
        let template = command_template(def, &app_text, rest, &options);
        let mut process = Process {
            program: program.to_owned(),
            app,
            options,
            argv: Vec::new(),
            template,
            runtime: def.runtime.clone(),
            probe: def
                .probe
                .as_ref()
                .map(|p| p.replace("{app}", &sh_quote(&app_text))),
            stop_signal: def.stop_signal.clone(),
        };
        process.argv = process.command_line("0.0.0.0", None);
        Some((process, def.kind))
    }

    /// Two services whose systemd units would share a name (a `unit` equal to another's).
    pub(super) fn check_unit_names(&mut self, model: &Model) {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (name, s) in &model.services {
            let unit = s
                .unit
                .clone()
                .unwrap_or_else(|| format!("{}-{name}", model.project.name));
            if let Some(other) = seen.insert(unit.clone(), name) {
                // Blamed where it is written last; the other one is named too.
                let span_of = |svc: &str| {
                    let ptr = format!("/services/{}/unit", pointer_segment(svc));
                    self.prov
                        .lookup(&ptr)
                        .filter(|(found, _)| *found == ptr)
                        .map(|(_, o)| o[0].span)
                };
                let mut spans: Vec<crate::Span> = [span_of(name), span_of(other)]
                    .into_iter()
                    .flatten()
                    .collect();
                spans.sort_by_key(|s| (s.file, std::cmp::Reverse(s.start)));
                let mut d = Diagnostic::error(
                    "duplicate",
                    format!("services `{other}` and `{name}` would both be the systemd unit `{unit}.service`"),
                )
                .with_help("give one of them another `unit`");
                for (i, span) in spans.into_iter().enumerate() {
                    d = d.with_label(
                        span,
                        if i == 0 {
                            "this unit name"
                        } else {
                            "taken here"
                        },
                    );
                }
                self.diags.push(d);
            }
        }
    }

    /// A service's own systemd unit name: not one systemd reserves, without its suffix.
    pub(super) fn unit_name(&mut self, node: &Node, ptr: &str) -> Option<String> {
        let unit = self.string(node, "unit", &format!("{ptr}/unit"))?;
        let span = node.child("unit").map(Node::value_span);
        let problem = if unit.ends_with(".service") {
            Some("ends with `.service`, which kiln adds")
        } else if unit.contains('@') {
            Some("holds `@`, which makes a template unit")
        } else if [
            "network",
            "multi-user",
            "default",
            "basic",
            "sysinit",
            "shutdown",
        ]
        .iter()
        .any(|t| unit == *t)
            || unit.starts_with("systemd-")
        {
            Some("is a name systemd itself uses")
        } else {
            None
        };
        if let Some(problem) = problem {
            let mut d = Diagnostic::error("invalid-value", format!("unit `{unit}` {problem}"))
                .with_help(format!(
                    "write the name alone: `unit \"{}\"`",
                    unit.trim_end_matches(".service").replace('@', "-")
                ));
            if let Some(span) = span {
                d = d.with_label(span, "this name");
            }
            self.diags.push(d);
            return None;
        }
        Some(unit)
    }
}

/// Why an option's value does not fit its declared type, if it does not.
pub(super) fn option_type_problem(
    v: &serde_json::Value,
    ty: Option<crate::programs::OptionType>,
) -> Option<&'static str> {
    use crate::programs::OptionType;
    match (ty?, v) {
        (OptionType::Int | OptionType::Duration, serde_json::Value::Number(n)) if n.is_i64() => {
            None
        }
        (OptionType::Int, _) => Some("an integer"),
        (OptionType::Duration, _) => Some("a duration (`60s`, or seconds)"),
        (OptionType::Bool, serde_json::Value::Bool(_)) => None,
        (OptionType::Bool, _) => Some("`#true` or `#false`"),
        _ => None,
    }
}

/// A program's command line with everything but where it listens (`{host}`, `{port}`)
/// filled in: the argv template, the options in the order the program declares them, the
/// arguments after them, then `args`.
pub(super) fn command_template(
    def: &crate::programs::ProgramDef,
    app: &str,
    command: &[String],
    options: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    use crate::programs::OptionType;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = Vec::new();
    let expand = |out: &mut Vec<String>, part: &str| match part {
        "{command}" => out.extend(command.iter().cloned()),
        p => out.push(p.replace("{app}", app)),
    };
    for part in &def.argv {
        expand(&mut out, part);
    }
    for o in &def.options {
        let value = options.get(&o.name).or(o.default.as_ref());
        match (o.ty, value) {
            (OptionType::Bool, Some(v)) => {
                let arg = match v.as_bool() {
                    Some(true) => &o.if_true,
                    _ => &o.if_false,
                };
                out.extend(arg.iter().cloned());
            }
            (OptionType::List, Some(serde_json::Value::Array(items))) => {
                let items: Vec<String> = items.iter().map(text).collect();
                match (&o.flag, &o.join) {
                    (Some(flag), Some(sep)) => out.push(flag.replace("{}", &items.join(sep))),
                    (Some(flag), None) if flag.contains("{}") => {
                        out.extend(items.iter().map(|i| flag.replace("{}", i)))
                    }
                    (Some(flag), None) => {
                        out.push(flag.clone());
                        out.extend(items);
                    }
                    (None, _) => out.extend(items),
                }
            }
            (_, Some(v)) => match &o.flag {
                Some(flag) => out.push(flag.replace("{}", &text(v))),
                None => out.push(text(v)),
            },
            (_, None) => out.extend(o.otherwise.iter().cloned()),
        }
    }
    for part in &def.after {
        expand(&mut out, part);
    }
    if let Some(serde_json::Value::Array(extra)) = options.get("args") {
        out.extend(extra.iter().map(text));
    }
    out
}

impl Process {
    /// The command line, listening on `bind` and `port` (`${PORT}` when none is given).
    pub fn command_line(&self, bind: &str, port: Option<u16>) -> Vec<String> {
        let port_text = match port.unwrap_or(0) {
            0 => "${PORT}".to_owned(),
            p => p.to_string(),
        };
        self.template
            .iter()
            .map(|a| a.replace("{host}", bind).replace("{port}", &port_text))
            .collect()
    }

    /// The executable (argv[0]).
    pub fn executable(&self) -> String {
        self.command_line("0.0.0.0", Some(1))
            .into_iter()
            .next()
            .unwrap_or_default()
    }
}
