//! `duet-dialog`: the Dialog Manager. It runs Rasa 3.x projects: loads and validates them
//! ([`project`], [`check`]), understands messages ([`nlu`]), keeps each conversation as an
//! event log ([`tracker`]), decides the next action with rules and memorised stories
//! ([`policy`]), runs responses and default actions ([`actions`]), and tests the assistant with
//! the project's test stories.

pub mod actions;
pub mod assistant;
pub mod check;
pub mod commands;
pub mod duckling;
mod error;
pub mod knowledge;
pub mod learned;
pub mod llm;
pub mod nlu;
pub mod policy;
pub mod project;
pub mod remote;
pub mod server;
pub mod store;
pub mod tracker;

pub use error::{Error, Result};
