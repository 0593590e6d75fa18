;; kiln_check is a global, not a function.
;; call: load
;; expect: WrongSignature
(module
  (@custom "kiln.policy.v1" "{\"id\":\"t\",\"version\":\"1.0.0\",\"summary\":\"test policy\",\"rules\":[{\"id\":\"t.rule\",\"default_severity\":\"error\",\"summary\":\"test rule\",\"docs\":{\"what\":\"w\",\"why\":\"w\",\"example\":\"e\",\"instead\":\"i\"}}]}")
  (memory (export "memory") 1)
  (func (export "kiln_abi_version") (result i32) (i32.const 0x10000))
  (func (export "kiln_alloc") (param i32) (result i32) (i32.const 1024))
  (global (export "kiln_check") i32 (i32.const 0))
)
