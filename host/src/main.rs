//! The `firehose` binary: argument parsing and exit codes live in
//! [`firehose::cli`]; this file only hands over to it.

fn main() -> std::process::ExitCode {
    firehose::cli::main()
}
