//! One module per subcommand.

pub mod compact;
pub mod del;
pub mod export;
pub mod follow;
pub mod get;
pub mod import;
pub mod ls;
pub mod pull;
pub mod push;
pub mod put;
pub mod remote;
pub mod stat;
pub mod verify;
