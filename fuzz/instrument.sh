#!/bin/sh
# RUSTC_WRAPPER for the fuzz build (scripts/fuzz.sh): compiles zkw's own code (the zkw-host
# library and the fuzz targets) with libFuzzer's coverage instrumentation, the flags
# `cargo fuzz build --sanitizer none` uses, all of them stable rustc options. Every other
# crate is compiled as the normal build compiles it, so the build reuses what `cargo build`
# left in target/debug instead of rebuilding wasmtime, openraft and tokio instrumented.
rustc=$1
shift
case "${CARGO_PKG_NAME:-} $*" in
*" --crate-name build_script_build "*) ;; # a build script runs without libFuzzer
"zkw-host "* | "zkw-fuzz "*)
    exec "$rustc" "$@" \
        -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        -Cllvm-args=-sanitizer-coverage-stack-depth \
        --cfg fuzzing
    ;;
esac
exec "$rustc" "$@"
