//! The app's processes under supervisor (`host { process-manager supervisor }`), instead of
//! systemd units: `supervisor/<project>.conf`, one program per process (per port for a web
//! service with replicas, `numprocs` for a worker) and a group of them all.
//!
//! Decisions:
//! - supervisor has no environment file: each command is `/bin/sh -c` that exports the
//!   spec's variables, then sources the env file (its values win, as the systemd units'
//!   `EnvironmentFile=` does) and `exec`s the program, so no secret is in this file. The sh runs
//!   as the app's user: the env file must be readable by its group (0640), not root-only.
//! - Logs go to `<log-dir>/<program>.log` with supervisor's own rotation off: the logrotate
//!   file of this target rotates them (copytruncate).
//! - supervisor cannot wait for a task to complete: tasks are programs that do not start by
//!   themselves (`autostart=false`) and the file's header says to run them first.

use kiln_core::Artifact;
use kiln_core::model::{Model, ServiceKind, pointer};

use crate::{Unsupported, Writer, header_text};

/// A supervisor value: `%` is its interpolation character, written `%%`. (The command is
/// split by Python's shlex: inside its double quotes only `\\` and `\"` are escapes, and
/// `$` is left for the sh that runs the script.)
fn conf(s: &str) -> String {
    s.replace('%', "%%")
}

pub(crate) fn emit(model: &Model) -> (Artifact, Vec<Unsupported>) {
    let host = &model.host;
    let project = crate::file_part(&model.project.name);
    let ports = crate::systemd::host_ports(model);
    let mut unsupported = Vec::new();
    let mut skip = |pointer: String, message: String| {
        unsupported.push(Unsupported {
            target: kiln_core::model::Target::Systemd,
            pointer,
            message,
            security: false,
        });
    };
    let mut w = Writer::new();
    w.line(format!("; {}", header_text(model)), &[]);
    w.line(
        format!("; The app's processes under supervisor: install as /etc/supervisor/conf.d/{project}.conf,"),
        &["/host/process-manager"],
    );
    w.line(
        "; then `supervisorctl reread && supervisorctl update`.",
        &["/host/process-manager"],
    );
    w.line(
        format!(
            "; The commands read {} as the app's user: make it root:{} 0640.",
            host.env_file, host.group
        ),
        &["/host/env-file", "/host/group"],
    );
    let tasks: Vec<&String> = model
        .services
        .iter()
        .filter(|(_, s)| s.kind == ServiceKind::Task)
        .map(|(k, _)| k)
        .collect();
    if !tasks.is_empty() {
        let names: Vec<String> = tasks
            .iter()
            .map(|t| format!("{project}:{project}-{}", crate::file_part(t)))
            .collect();
        w.line(
            format!(
                "; Tasks do not start by themselves: run `supervisorctl start {}` first, and",
                names.join(" ")
            ),
            &[],
        );
        w.line(
            format!("; start the rest once it has exited 0: `supervisorctl start {project}:*`."),
            &[],
        );
    }
    let mut programs = Vec::new();
    for (name, service) in &model.services {
        let svp = pointer(&["services", name]);
        if service.replicas == 0 {
            continue;
        }
        for (key, value) in &service.env {
            if let kiln_core::model::EnvValue::Secret(sec) = value
                && model.secrets.get(sec).is_some_and(|s| s.as_file)
            {
                skip(
                    format!("{svp}/env/{}", kiln_core::model::pointer_segment(key)),
                    format!(
                        "`{key}`: a secret delivered as a file needs systemd's credentials; under supervisor it is not delivered"
                    ),
                );
            }
        }
        let instance_ports: Vec<Option<u16>> = match ports.get(name) {
            Some(p) if p.len() > 1 => p.iter().copied().map(Some).collect(),
            _ => vec![service.port],
        };
        let task = service.kind == ServiceKind::Task;
        for port in &instance_ports {
            let program = match port {
                Some(p) if instance_ports.len() > 1 => {
                    format!("{project}-{}-{p}", crate::file_part(name))
                }
                _ => format!("{project}-{}", crate::file_part(name)),
            };
            let words = service.run.command_line("127.0.0.1", *port);
            let Some(exe) = words.first() else {
                skip(
                    format!("{svp}/run"),
                    format!("service `{name}` has nothing to run"),
                );
                continue;
            };
            let mut script = String::new();
            if !service.env.contains_key("PATH") {
                script.push_str(&format!(
                    "export PATH={}; ",
                    crate::sh_word(&format!("{}/bin:/usr/local/bin:/usr/bin:/bin", host.venv))
                ));
            }
            for (key, value) in &service.env {
                if value.is_secret() {
                    continue;
                }
                let Some(text) = value.render(&|h| model.host_address(h)) else {
                    continue;
                };
                script.push_str(&format!("export {key}={}; ", crate::sh_word(&text)));
            }
            script.push_str(&format!(
                "set -a; . {}; set +a; exec {}",
                crate::sh_word(&host.env_file),
                crate::sh_word(&crate::systemd::host_exe(model, exe))
            ));
            for a in &words[1..] {
                script.push(' ');
                script.push_str(&crate::sh_word(a));
            }
            let replicas = if service.kind == ServiceKind::Worker && service.replicas > 1 {
                service.replicas
            } else {
                1
            };
            if replicas > 1 && service.run.program == "celery-worker" {
                script.push_str(&format!(
                    " --hostname={}%(process_num)d@%h",
                    crate::file_part(name)
                ));
            }
            w.line("", &[]);
            w.line(format!("[program:{program}]"), &[&svp]);
            w.line(
                format!(
                    "command=/bin/sh -c \"{}\"",
                    conf(&script.replace('\\', "\\\\").replace('"', "\\\""))
                        .replace("%%(process_num)d", "%(process_num)d")
                ),
                &[
                    &format!("{svp}/run"),
                    &format!("{svp}/env"),
                    "/host/venv",
                    "/host/env-file",
                ],
            );
            if replicas > 1 {
                w.line(
                    format!("numprocs={replicas}"),
                    &[&format!("{svp}/replicas")],
                );
                w.line(
                    "process_name=%(program_name)s-%(process_num)d",
                    &[&format!("{svp}/replicas")],
                );
            }
            w.line(format!("directory={}", conf(&host.root)), &["/host/root"]);
            w.line(format!("user={}", conf(&host.user)), &["/host/user"]);
            if task {
                w.line("autostart=false", &[&svp]);
                w.line("autorestart=false", &[&svp]);
                w.line("startsecs=0", &[&svp]);
                w.line("startretries=0", &[&svp]);
                w.line("exitcodes=0", &[&svp]);
            } else {
                w.line("autostart=true", &[]);
                let restart = match service.restart.as_str() {
                    "no" => "false",
                    "on-failure" => "unexpected",
                    _ => "true",
                };
                w.line(
                    format!("autorestart={restart}"),
                    &[&format!("{svp}/restart")],
                );
                w.line("startsecs=5", &[]);
            }
            w.line("stopsignal=TERM", &[&format!("{svp}/run")]);
            w.line(
                format!("stopwaitsecs={}", service.stop_timeout.unwrap_or(30)),
                &[&format!("{svp}/stop-timeout")],
            );
            w.line("stopasgroup=true", &[]);
            w.line("killasgroup=true", &[]);
            w.line("redirect_stderr=true", &[]);
            let log = if replicas > 1 {
                format!("{program}-%(process_num)d.log")
            } else {
                format!("{program}.log")
            };
            w.line(
                format!(
                    "stdout_logfile={}/{}",
                    conf(host.log_dir.trim_end_matches('/')),
                    log
                ),
                &["/host/log-dir"],
            );
            w.line(
                "; rotated by logrotate (copytruncate), not by supervisor",
                &[],
            );
            w.line("stdout_logfile_maxbytes=0", &[]);
            programs.push(program);
        }
    }
    w.line("", &[]);
    w.line(format!("[group:{project}]"), &[]);
    w.line(format!("programs={}", programs.join(",")), &["/services"]);
    (w.finish(format!("supervisor/{project}.conf")), unsupported)
}
