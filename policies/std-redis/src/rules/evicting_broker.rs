//! `redis.evicting-broker`: a Redis that holds queued jobs may evict them.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "redis.evicting-broker",
    default_severity: Severity::Error,
    summary: "A Redis used as a queue or Celery broker evicts keys that have no expiry",
    what: "Reports a `redis` whose `role` is `queue` or `broker` (kiln sets `broker` when a \
           Celery process uses it) with an `allkeys-*` `eviction` (`maxmemory-policy`): \
           an error in production, a warning in staging, information in development. \
           `noeviction` (kiln's default for these roles) and the `volatile-*` policies, \
           which only evict keys that have an expiry, pass.",
    why: "When Redis reaches `maxmemory` under an `allkeys-*` policy it deletes keys to make \
          room, whatever they hold: a Celery queue is a Redis list without an expiry, so a \
          full server silently drops queued tasks (emails not sent, payments not \
          reconciled), and nothing reports it. With `noeviction` a full server refuses \
          writes instead, which the app sees and alerts on. A Redis shared by a cache and a \
          broker can use `volatile-lru`: cache entries carry timeouts, queued tasks do not.",
    example: "redis cache {\n    eviction allkeys-lru\n}",
    instead: "redis cache {\n    eviction noeviction\n}",
    upstream: &["RD eviction", "Celery redis-caveats"],
};

pub fn check(input: &Input) -> Vec<Finding> {
    let severity = input.tiered(RULE.default_severity);
    let mut out = Vec::new();
    for (name, redis) in input.entries("/redis") {
        let role = redis.get("role").and_then(Value::as_str).unwrap_or("cache");
        if role != "queue" && role != "broker" {
            continue;
        }
        let Some(policy) = redis.get("eviction").and_then(Value::as_str) else {
            continue;
        };
        if !policy.starts_with("allkeys-") {
            continue;
        }
        let what = match role {
            "broker" => "a Celery broker",
            _ => "a queue",
        };
        let f = Finding::new(
            RULE.id,
            format!("redis `{name}` is {what} but evicts any key when full (`{policy}`): queued jobs would be dropped"),
        )
        .at(json_pointer(["redis", name, "eviction"]))
        .help(format!(
            "write `eviction noeviction` (a full server then refuses writes, visibly), or `volatile-lru` if `{name}` also holds cache entries with timeouts"
        ));
        out.push(if severity == RULE.default_severity {
            f
        } else {
            f.severity(severity)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::Tier;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn run(role: &str, eviction: &str) -> Vec<String> {
        let spec = json!({"redis": {"q": {"role": role, "eviction": eviction}}});
        check(&input(spec))
            .into_iter()
            .map(|f| f.path.unwrap())
            .collect()
    }

    #[test]
    fn only_brokers_and_queues_with_allkeys_policies() {
        assert_eq!(run("broker", "allkeys-lru"), ["/redis/q/eviction"]);
        assert_eq!(run("queue", "allkeys-random"), ["/redis/q/eviction"]);
        assert!(run("broker", "noeviction").is_empty());
        assert!(run("broker", "volatile-lru").is_empty());
        assert!(run("cache", "allkeys-lru").is_empty());
    }

    #[test]
    fn by_tier() {
        let mut i = input(json!({"redis": {"q": {"role": "broker", "eviction": "allkeys-lfu"}}}));
        i.tier = Tier::Staging;
        assert_eq!(check(&i)[0].severity, Some(Severity::Warn));
    }
}
