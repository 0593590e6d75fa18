//! One rule per file: its docs (`RULE`) and its `check`.

pub mod celery_single_beat;
pub mod concurrency;
