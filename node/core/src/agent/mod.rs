//! The fleet agent's decisions, pure: which orders to obey and what their outcome means
//! ([`AgentCore`]), what the agent runs ([`AgentState`]), and the seeded synthetic health model
//! demos and the simulator sample. The `scbe-agent` daemon runs hooks and health sources around
//! them; the simulator drives them directly.

pub mod agent_core;
pub mod agent_state;
pub mod order_checker;
pub mod synthetic;

pub use agent_core::{AgentCore, HookOutcome, OrderChecker, OrderRefusal, Step};
pub use agent_state::{AgentState, Installed};
pub use synthetic::SyntheticModel;
