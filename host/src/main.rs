//! The `zkw` binary: everything is in [`zkw::cli`].

/// mimalloc: the request path allocates many small buffers (frames, txn bodies, log records);
/// glibc's malloc showed up as ~17% of a write-heavy profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match zkw::cli::main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!(
                "{}{}",
                zkw::cli::EXIT_ERROR_PREFIX,
                zkw::cli::error_message(&error)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
