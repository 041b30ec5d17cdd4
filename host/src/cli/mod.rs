//! `cli`: the clap command tree of the `zkw` binary. (skeleton)
pub fn main() -> anyhow::Result<std::process::ExitCode> {
    todo!()
}
