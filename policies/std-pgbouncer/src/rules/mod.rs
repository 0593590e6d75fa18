//! One rule per file: its docs (`RULE`) and its `check`.

pub mod auth;
pub mod pool_fits;
pub mod transaction_pooling;

use kiln_policy_sdk::Input;
use serde_json::Value;

/// Every database with a pgbouncer in front: (database name, database, pooler).
pub fn poolers(input: &Input) -> Vec<(&str, &Value, &Value)> {
    input
        .entries("/postgres")
        .filter_map(|(name, pg)| {
            let pooler = pg.get("pooler").filter(|p| p.is_object())?;
            Some((name, pg, pooler))
        })
        .collect()
}

/// Whether the environment renders `target`.
pub fn has_target(input: &Input, target: &str) -> bool {
    input
        .pointer("/targets")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == target))
}
