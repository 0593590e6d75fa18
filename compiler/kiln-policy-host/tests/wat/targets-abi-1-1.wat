;; ABI 1.1: `targets` limits the artifacts the policy receives.
;; call: load
;; expect: ok
(module
  (@custom "kiln.policy.v1" "{\"id\":\"t\",\"version\":\"1.0.0\",\"summary\":\"test policy\",\"inputs\":[\"spec\",\"artifacts\"],\"targets\":[\"nginx\"],\"rules\":[{\"id\":\"t.rule\",\"default_severity\":\"error\",\"summary\":\"test rule\",\"docs\":{\"what\":\"w\",\"why\":\"w\",\"example\":\"e\",\"instead\":\"i\"}}]}")
  (memory (export "memory") 1)
  (func (export "kiln_abi_version") (result i32) (i32.const 0x10001))
  (func (export "kiln_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 32768) "{\"findings\":[]}")
  (func (export "kiln_check") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 32768) (i64.const 32)) (i64.const 15)))
)
