//! The `zkw` binary: everything is in [`zkw::cli`].

fn main() -> std::process::ExitCode {
    match zkw::cli::main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("zkw: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
