// SPDX-License-Identifier: GPL-2.0
//! How every vslice binary reads its command line: a type deriving argh's
//! `FromArgs` (each binary depends on argh for the derive), parsed from the
//! process's arguments. `--help` prints to stdout and exits 0; a usage
//! error prints to stderr and exits `USAGE_ERROR`, because the tools exit 1
//! for "ran and failed" (argh's own `from_env` exits 1 for both).

use std::ffi::OsString;
use std::path::Path;

use argh::TopLevelCommand;

/// The exit status of a command line that does not parse.
pub const USAGE_ERROR: u8 = 2;

/// The command line as `T`, or the process exits (help: 0, error:
/// `USAGE_ERROR`).
pub fn parse<T: TopLevelCommand>() -> T {
    match outcome(std::env::args_os()) {
        Ok(t) => t,
        Err((0, help)) => {
            println!("{help}");
            std::process::exit(0)
        }
        Err((status, why)) => {
            eprintln!("{why}");
            std::process::exit(status)
        }
    }
}

/// `args` (the program first) as `T`, or (exit status, what to print).
fn outcome<T: TopLevelCommand>(args: impl IntoIterator<Item = OsString>) -> Result<T, (i32, String)> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
        .map_err(|a| (i32::from(USAGE_ERROR), format!("not UTF-8: {}", a.to_string_lossy())))?;
    let path = args.first().map_or("", String::as_str);
    let name = Path::new(path).file_name().and_then(|n| n.to_str()).unwrap_or(path);
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    T::from_args(&[name], &rest).map_err(|e| match e.status {
        Ok(()) => (0, e.output),
        Err(()) => (
            i32::from(USAGE_ERROR),
            format!("{}\nRun {name} --help for more information.", e.output),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argh::FromArgs;

    /// A test command.
    #[derive(FromArgs, Debug, PartialEq)]
    struct Cmd {
        /// a number
        #[argh(option, default = "1")]
        n: u32,
        /// a flag
        #[argh(switch)]
        flag: bool,
    }

    fn run(args: &[&str]) -> Result<Cmd, (i32, String)> {
        outcome(args.iter().map(OsString::from))
    }

    #[test]
    fn options_help_and_errors() {
        assert_eq!(run(&["/usr/bin/t", "--flag", "--n", "3"]), Ok(Cmd { n: 3, flag: true }));
        assert_eq!(run(&["t"]), Ok(Cmd { n: 1, flag: false }));
        let (status, help) = run(&["/usr/bin/t", "--help"]).unwrap_err();
        assert_eq!(status, 0);
        assert!(help.starts_with("Usage: t [--n <n>] [--flag]"), "{help}");
        for bad in [
            &["t", "--bogus"][..],
            &["t", "--n", "x"],
            &["t", "--flag", "1"],
            &["t", "--n"],
        ] {
            let (status, why) = run(bad).unwrap_err();
            assert_eq!(status, 2, "{bad:?}");
            assert!(why.ends_with("Run t --help for more information."), "{why}");
        }
    }
}
