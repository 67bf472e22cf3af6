//! The subcommands.

pub(crate) mod codecs;
pub(crate) mod decode;
pub(crate) mod demo;
pub(crate) mod render;
pub(crate) mod serve;

/// Any error a subcommand reports to the user.
pub(crate) type CliError = Box<dyn std::error::Error + Send + Sync>;
