//! The subcommands.

/// `println!` that ends the process quietly when stdout is gone (e.g.
/// piped into `head`), instead of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

pub(crate) mod call;
pub(crate) mod child;
pub(crate) mod codecs;
pub(crate) mod decode;
pub(crate) mod demo;
pub(crate) mod policy;
pub(crate) mod render;
pub(crate) mod serve;
pub(crate) mod tap;
pub(crate) mod tls;
pub(crate) mod tree;

/// Any error a subcommand reports to the user.
pub(crate) type CliError = Box<dyn std::error::Error + Send + Sync>;
