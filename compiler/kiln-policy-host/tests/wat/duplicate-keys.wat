;; A finding with the same key twice: serde_json would keep the last `severity` (the finding
;; would silently turn from an error into a note). Refused as malformed (issue 12, D17).
;; expect: MalformedOutput
(module
  (@custom "kiln.policy.v1" "{\"id\":\"t\",\"version\":\"1.0.0\",\"summary\":\"test policy\",\"rules\":[{\"id\":\"t.rule\",\"default_severity\":\"error\",\"summary\":\"test rule\",\"docs\":{\"what\":\"w\",\"why\":\"w\",\"example\":\"e\",\"instead\":\"i\"}}]}")
  (memory (export "memory") 1)
  (func (export "kiln_abi_version") (result i32) (i32.const 0x10000))
  (func (export "kiln_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 32768) "{\"findings\":[{\"rule\":\"t.rule\",\"severity\":\"error\",\"message\":\"m\",\"severity\":\"info\"}]}")
  (func (export "kiln_check") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 32768) (i64.const 32)) (i64.const 83)))
)
