;; A module that claims ABI version 2 (this host speaks 1). Everything else is valid v1, so the
;; version check alone must refuse it at install.
(module
  (memory (export "memory") 1)
  (func (export "zkw_abi_version") (result i32) (i32.const 2))
  (func (export "zkw_alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "zkw_on_event") (param $ptr i32) (param $len i32) (result i32) (i32.const 0)))
