;; A valid ABI v1 module with no entry point (none of zkw_on_event, zkw_validate, zkw_on_call):
;; nothing could ever run it, so the host must refuse it at install.
(module
  (memory (export "memory") 1)
  (func (export "zkw_abi_version") (result i32) (i32.const 1))
  (func (export "zkw_alloc") (param $len i32) (result i32) (i32.const 1024)))
