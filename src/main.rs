//! The `airlock` command line: parse, call the library, print. Nothing else lives here.

mod cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cmd::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    cmd::init_tracing(&cli.global);
    let format = cli.global.format;
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            cmd::print_error(&err, format);
            cmd::exit_code_for(&err)
        }
    }
}
