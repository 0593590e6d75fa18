;; Traps, but exports `kiln_last_error` (as the Rust SDK does with its panic message).
;; expect: Trap
(module
  (@custom "kiln.policy.v1" "{\"id\":\"t\",\"version\":\"1.0.0\",\"summary\":\"test policy\",\"rules\":[{\"id\":\"t.rule\",\"default_severity\":\"error\",\"summary\":\"test rule\",\"docs\":{\"what\":\"w\",\"why\":\"w\",\"example\":\"e\",\"instead\":\"i\"}}]}")
  (memory (export "memory") 1)
  (func (export "kiln_abi_version") (result i32) (i32.const 0x10000))
  (func (export "kiln_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 2048) "index out of bounds: the len is 3 but the index is 7")
  (func (export "kiln_check") (param i32 i32) (result i64)
    (unreachable))
  (func (export "kiln_last_error") (result i64)
    (i64.or (i64.shl (i64.const 2048) (i64.const 32)) (i64.const 52)))
)
