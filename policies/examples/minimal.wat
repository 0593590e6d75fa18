;; The smallest complete kiln policy (ABI v1), in the WebAssembly text format.
;;
;; It declares one rule, `example.input-size`, and reports one finding saying how many bytes
;; its input has. It shows everything a policy needs: the metadata section, the five exports,
;; a bump allocator, reading the input length, and returning packed `(ptr << 32) | len` output.
;; See policies/ABI.md.
;;
;; Build: `wasm-tools parse minimal.wat -o minimal.wasm` (the `@custom` annotation needs a tool
;; that supports the annotations proposal: wasm-tools, or the Rust `wat` crate).
(module
  ;; Metadata: JSON in the custom section `kiln.policy.v1`. The strings are concatenated.
  (@custom "kiln.policy.v1"
    "{\"id\":\"example\",\"version\":\"1.0.0\","
    "\"summary\":\"reports the size of its input: the smallest complete kiln policy\","
    "\"inputs\":[\"spec\"],"
    "\"rules\":[{\"id\":\"example.input-size\",\"default_severity\":\"info\","
    "\"summary\":\"reports how many bytes the policy input has\","
    "\"docs\":{\"what\":\"Reports the size in bytes of the input document kiln passes to policies.\","
    "\"why\":\"Nothing is wrong: the finding shows the ABI working end to end.\","
    "\"example\":\"environment production { tier production }\","
    "\"instead\":\"(nothing to change)\"},"
    "\"upstream\":[]}],"
    "\"settings_schema\":{\"type\":\"object\",\"additionalProperties\":false}}")

  ;; One page (64 KiB) to start with; kiln_alloc grows it when an input needs more.
  (memory (export "memory") 1)

  ;; Static output pieces. The finding's text is PREFIX + decimal input length + SUFFIX.
  (data (i32.const 256)  ;; PREFIX, 93 bytes
    "{\"findings\":[{\"rule\":\"example.input-size\",\"severity\":\"info\",\"message\":\"the input document is ")
  (data (i32.const 512)  ;; SUFFIX, 93 bytes
    " bytes long\",\"path\":\"\",\"help\":\"nothing to do: this finding only shows that the policy ran\"}]}")
  (data (i32.const 768)  ;; SETTINGS_OK, 13 bytes
    "{\"errors\":[]}")
  (data (i32.const 832)  ;; SETTINGS_BAD, 66 bytes
    "{\"errors\":[{\"path\":\"\",\"message\":\"this policy takes no settings\"}]}")

  ;; The bump allocator's next free byte. Everything below 4096 is static data. Nothing is
  ;; ever freed: kiln uses a fresh instance for every call.
  (global $next (mut i32) (i32.const 4096))

  ;; ABI 1.0 = (1 << 16) | 0
  (func (export "kiln_abi_version") (result i32)
    (i32.const 0x10000))

  ;; Returns an 8-byte-aligned block of `len` bytes, growing memory as needed; 0 if it cannot.
  (func $alloc (export "kiln_alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $next) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    ;; The addition wrapped around: no 32-bit memory can hold this.
    (if (i32.lt_u (local.get $end) (local.get $ptr))
      (then (return (i32.const 0))))
    ;; pages needed = ceil(end / 65536)
    (local.set $pages
      (i32.add (i32.shr_u (local.get $end) (i32.const 16))
               (i32.ne (i32.and (local.get $end) (i32.const 0xffff)) (i32.const 0))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $next (local.get $end))
    (local.get $ptr))

  ;; Writes `n` in decimal at `p`; returns the address after the last digit.
  (func $write_u32 (param $p i32) (param $n i32) (result i32)
    (local $digits i32) (local $t i32) (local $i i32)
    (local.set $digits (i32.const 1))
    (local.set $t (local.get $n))
    (block $counted
      (loop $count
        (br_if $counted (i32.lt_u (local.get $t) (i32.const 10)))
        (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (br $count)))
    (local.set $i (i32.add (local.get $p) (local.get $digits)))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (local.get $i)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $write (i32.ne (local.get $n) (i32.const 0))))
    (i32.add (local.get $p) (local.get $digits)))

  ;; Packs an output region as (ptr << 32) | len.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; The input JSON is at [ptr, ptr + len). This policy only looks at its length.
  (func (export "kiln_check") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $p i32)
    ;; PREFIX + at most 10 digits + SUFFIX
    (local.set $out (call $alloc (i32.const 196)))
    (if (i32.eqz (local.get $out)) (then (unreachable)))
    (memory.copy (local.get $out) (i32.const 256) (i32.const 93))
    (local.set $p (call $write_u32 (i32.add (local.get $out) (i32.const 93)) (local.get $len)))
    (memory.copy (local.get $p) (i32.const 512) (i32.const 93))
    (local.set $p (i32.add (local.get $p) (i32.const 93)))
    (call $pack (local.get $out) (i32.sub (local.get $p) (local.get $out))))

  ;; Optional. The settings JSON is at [ptr, ptr + len); only exactly `{}` is accepted.
  (func (export "kiln_validate_settings") (param $ptr i32) (param $len i32) (result i64)
    (if (result i64)
        (i32.and (i32.eq (local.get $len) (i32.const 2))
                 (i32.and (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 123))    ;; {
                          (i32.eq (i32.load8_u offset=1 (local.get $ptr)) (i32.const 125)))) ;; }
      (then (call $pack (i32.const 768) (i32.const 13)))
      (else (call $pack (i32.const 832) (i32.const 66))))))
