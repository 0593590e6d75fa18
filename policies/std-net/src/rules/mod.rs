//! One rule per file: its docs (`RULE`) and its `check`.

pub mod datastore_not_public;
pub mod docker_ufw_bypass;
pub mod firewall_baseline;
pub mod firewall_sites_open;
