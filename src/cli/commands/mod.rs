//! One module per subcommand.

pub mod backup;
pub mod compact;
pub mod cp;
pub mod del;
pub mod export;
pub mod follow;
pub mod get;
pub mod import;
pub mod info;
pub mod ls;
pub mod mv;
pub mod pull;
pub mod push;
pub mod put;
pub mod remote;
pub mod salvage;
pub mod stat;
pub mod verify;
