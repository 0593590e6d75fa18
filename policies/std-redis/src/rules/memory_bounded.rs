//! `redis.memory-bounded`: a Redis without `maxmemory`, or with one its memory limit cannot hold.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "redis.memory-bounded",
    default_severity: Severity::Error,
    summary: "a Redis has no maxmemory, or one above its memory limit",
    what: "Reports a `redis` whose `maxmemory` is larger than its `resources memory` limit \
           (an error in every tier: the limit is reached first), and, in production, a \
           `redis` with no `maxmemory` at all (a warning; information in staging). Redis \
           counts only its dataset against `maxmemory`: keep it well under the limit (about \
           three quarters) for fragmentation, client buffers and the fork that writes the \
           RDB snapshot.",
    why: "Without `maxmemory` Redis grows until the kernel or the container runtime kills it, \
          losing everything since the last snapshot; with a `maxmemory` above the memory \
          limit, the OOM killer strikes before the eviction policy (or `noeviction`'s refusal \
          of writes) ever applies, so the policy the spec chose never runs.",
    example: "redis cache {\n    maxmemory \"1gb\"\n    resources memory=\"512Mi\"\n}",
    instead: "redis cache {\n    maxmemory \"192mb\"\n    resources memory=\"256Mi\"\n}",
    upstream: &["RD eviction", "RD memory-optimization"],
};

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, redis) in input.entries("/redis") {
        let max = redis.get("maxmemory").and_then(Value::as_u64);
        let limit = redis.pointer("/resources/memory").and_then(Value::as_u64);
        match (max, limit) {
            (Some(m), Some(l)) if m > l => out.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "redis `{name}` may use {} MiB (maxmemory) but its memory limit is {} MiB: it is killed before its eviction policy applies",
                        m >> 20,
                        l >> 20
                    ),
                )
                .at(json_pointer(["redis", name, "maxmemory"]))
                .help(format!(
                    "set maxmemory to about three quarters of the limit (`maxmemory \"{}mb\"`), or raise `resources memory`",
                    (l * 3 / 4) >> 20
                ))
                .related(json_pointer(["redis", name, "resources", "memory"]), "the memory limit"),
            ),
            (None, _) => {
                if input.tier == kiln_policy_sdk::Tier::Development {
                    continue; // a development Redis may grow
                }
                let severity = input.tiered(Severity::Warn);
                let hint = limit.map_or_else(
                    || "`maxmemory \"256mb\"` and a memory limit above it".to_owned(),
                    |l| format!("`maxmemory \"{}mb\"` (three quarters of its limit)", (l * 3 / 4) >> 20),
                );
                out.push(
                    Finding::new(
                        RULE.id,
                        format!("redis `{name}` has no maxmemory: it grows until it is killed"),
                    )
                    .at(json_pointer(["redis", name]))
                    .help(format!("set {hint}"))
                    .severity(severity),
                );
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::Tier;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn run(redis: Value, tier: Tier) -> Vec<Finding> {
        let mut i = input(json!({ "redis": { "cache": redis } }));
        i.tier = tier;
        check(&i)
    }

    #[test]
    fn limits() {
        let mib = 1u64 << 20;
        let over = json!({"maxmemory": 1024 * mib, "resources": {"memory": 512 * mib}});
        let f = run(over.clone(), Tier::Development);
        assert_eq!(f.len(), 1, "over the limit: in every tier");
        assert_eq!(f[0].path.as_deref(), Some("/redis/cache/maxmemory"));
        assert!(
            f[0].help.as_deref().is_some_and(|h| h.contains("384mb")),
            "{f:#?}"
        );
        let fits = json!({"maxmemory": 192 * mib, "resources": {"memory": 256 * mib}});
        assert!(run(fits, Tier::Production).is_empty());
        let unbounded = json!({"resources": {"memory": 256 * mib}});
        let f = run(unbounded.clone(), Tier::Production);
        assert_eq!((f.len(), f[0].severity), (1, Some(Severity::Warn)));
        assert_eq!(
            run(unbounded.clone(), Tier::Staging)[0].severity,
            Some(Severity::Info)
        );
        assert!(run(unbounded, Tier::Development).is_empty());
    }
}
