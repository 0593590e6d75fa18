//! One rule per file: its docs (`RULE`) and its `check`.

pub mod auth_acl;
pub mod evicting_broker;
pub mod memory_bounded;
