//! `depends-on`: the order in which a target starts an environment's services, and the
//! conditions a service waits for (a migration task completed, an API healthy).

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, unknown_name_help};
use crate::model::{Condition, Dependency, Model, ServiceKind, pointer_segment};
use crate::syntax::Node;

use super::Lower;

impl Lower<'_> {
    /// The `depends-on` nodes of a service, with the conditions written (`Started` where
    /// none is: [`Lower::check_dependencies`] fills in defaults once every service is known).
    pub(super) fn depends_on(&mut self, node: &Node, ptr: &str) -> BTreeMap<String, Dependency> {
        let mut out = BTreeMap::new();
        for d in node.children_named("depends-on") {
            let Some(key) = d.key() else { continue };
            let dp = format!("{ptr}/depends-on/{}", pointer_segment(&key));
            self.record(&dp, d);
            let condition = self
                .string(d, "condition", &format!("{dp}/condition"))
                .and_then(|c| Condition::parse(&c));
            out.insert(
                key,
                Dependency {
                    condition: condition.unwrap_or(Condition::Started),
                    explicit: condition.is_some(),
                },
            );
        }
        out
    }

    /// Checks every `depends-on` against the services, sets default conditions, and refuses
    /// cycles.
    pub(super) fn check_dependencies(&mut self, model: &mut Model) {
        let names: Vec<String> = model.services.keys().cloned().collect();
        let kinds: BTreeMap<String, (ServiceKind, bool)> = model
            .services
            .iter()
            .map(|(k, s)| (k.clone(), (s.kind, s.health.is_some())))
            .collect();
        for (name, service) in &mut model.services {
            let mut dropped = Vec::new();
            for (dep, d) in &mut service.depends_on {
                let ptr = format!(
                    "/services/{}/depends-on/{}",
                    pointer_segment(name),
                    pointer_segment(dep)
                );
                let span = self.prov.lookup(&ptr).map(|(_, o)| o[0].span);
                let cspan = self
                    .prov
                    .lookup(&format!("{ptr}/condition"))
                    .map(|(_, o)| o[0].span)
                    .or(span);
                let mut fail = |d: Diagnostic, at: Option<crate::source::Span>| {
                    self.diags.push(match at {
                        Some(s) => d.with_label(s, "here"),
                        None => d,
                    });
                };
                let Some(&(kind, has_health)) = kinds.get(dep) else {
                    let data = model.postgres.contains_key(dep) || model.redis.contains_key(dep);
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    fail(
                        Diagnostic::error(
                            "unknown-reference",
                            format!("service `{name}` depends on `{dep}`, which is not a service of this environment"),
                        )
                        .with_help(match data {
                            true => format!("a data service is waited for through `uses {dep}`, which also wires its address"),
                            false => unknown_name_help(dep, "service", &refs),
                        }),
                        span,
                    );
                    dropped.push(dep.clone());
                    continue;
                };
                if dep == name {
                    fail(
                        Diagnostic::error(
                            "depends-cycle",
                            format!("service `{name}` depends on itself"),
                        )
                        .with_help("remove this `depends-on`"),
                        span,
                    );
                    dropped.push(dep.clone());
                    continue;
                }
                if !d.explicit {
                    d.condition = match (kind, has_health) {
                        (ServiceKind::Task, _) => Condition::Completed,
                        (_, true) => Condition::Healthy,
                        _ => Condition::Started,
                    };
                }
                match d.condition {
                    Condition::Completed if kind != ServiceKind::Task => fail(
                        Diagnostic::error(
                            "type-mismatch",
                            format!("`{dep}` never completes: it is a long-running process, not a task"),
                        )
                        .with_help("wait for it with `condition=healthy` (it needs a `health` check) or `condition=started`"),
                        cspan,
                    ),
                    Condition::Healthy if !has_health => fail(
                        Diagnostic::error(
                            "missing-value",
                            format!("`{dep}` has no health check, so nothing can wait for it to be healthy"),
                        )
                        .with_help(format!("give `{dep}` a `health` check, or use `condition=started`")),
                        cspan,
                    ),
                    _ => {}
                }
            }
            for dep in dropped {
                service.depends_on.remove(&dep);
            }
        }
        self.dependency_cycles(model);
    }

    /// Cycles among `depends-on`: an error each, naming the cycle (a depth-first walk with
    /// colours, without recursion).
    fn dependency_cycles(&mut self, model: &Model) {
        #[derive(Clone, Copy, PartialEq)]
        enum Colour {
            White,
            Grey,
            Black,
        }
        let names: Vec<&String> = model.services.keys().collect();
        let index: BTreeMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let next: Vec<Vec<usize>> = names
            .iter()
            .map(|n| {
                model.services[*n]
                    .depends_on
                    .keys()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut colour = vec![Colour::White; names.len()];
        for start in 0..names.len() {
            if colour[start] != Colour::White {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            colour[start] = Colour::Grey;
            while let Some(&mut (v, ref mut e)) = stack.last_mut() {
                let Some(&w) = next[v].get(*e) else {
                    colour[v] = Colour::Black;
                    stack.pop();
                    continue;
                };
                *e += 1;
                match colour[w] {
                    Colour::White => {
                        colour[w] = Colour::Grey;
                        stack.push((w, 0));
                    }
                    Colour::Grey => {
                        let from = stack
                            .iter()
                            .position(|&(n, _)| n == w)
                            .expect("on the stack");
                        let mut cycle: Vec<&str> = stack[from..]
                            .iter()
                            .map(|&(n, _)| names[n].as_str())
                            .collect();
                        cycle.push(names[w]);
                        let ptr = format!(
                            "/services/{}/depends-on/{}",
                            pointer_segment(names[v]),
                            pointer_segment(names[w])
                        );
                        let mut d = Diagnostic::error(
                            "depends-cycle",
                            format!(
                                "services wait for each other in a cycle: {}",
                                cycle.join(" → ")
                            ),
                        )
                        .with_help("no target could start any of them: remove one `depends-on`");
                        if let Some((_, o)) = self.prov.lookup(&ptr) {
                            d = d.with_label(o[0].span, "closes the cycle");
                        }
                        self.diags.push(d);
                    }
                    Colour::Black => {}
                }
            }
        }
    }
}
