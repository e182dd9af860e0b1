//! The `strata` binary: everything lives in the library's `cli` module.
fn main() -> std::process::ExitCode {
    strata::cli::main()
}
