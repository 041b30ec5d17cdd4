;; A recipe that imports WASI (wasi_snapshot_preview1.fd_write): otherwise a valid ABI v1
;; module. The host must refuse it at install: recipes get no files, clock or randomness.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasi\n")
  (func (export "zkw_abi_version") (result i32) (i32.const 1))
  (func (export "zkw_alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "zkw_on_event") (param $ptr i32) (param $len i32) (result i32)
    ;; one iovec at 0: {buf = 16, len = 16}; bytes written go to 8
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.const 0)))
