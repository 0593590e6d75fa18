//! YAML emission that means the same to YAML 1.1 and 1.2 readers.
