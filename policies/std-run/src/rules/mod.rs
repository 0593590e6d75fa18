//! One rule per file: its docs (`RULE`) and its `check`.

pub mod alerts;
pub mod image_consistent;
pub mod image_pinned;
pub mod no_new_privileges;
pub mod non_root;
pub mod resource_limits;
