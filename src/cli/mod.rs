//! The command line: its types ([`args`]) and one function per subcommand
//! ([`commands`]), each a thin call into the library.

mod args;
mod commands;

pub use args::{Cli, Command};
pub use commands::dispatch;
