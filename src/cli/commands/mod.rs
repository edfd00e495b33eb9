//! One module per subcommand.

pub mod compact;
pub mod del;
pub mod export;
pub mod get;
pub mod import;
pub mod ls;
pub mod put;
pub mod salvage;
pub mod stat;
pub mod verify;
