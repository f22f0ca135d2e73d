//! The operators' dashboard: one read-only page every validator can serve (`[dashboard]` in
//! node.toml), with its script and style compiled in, so it needs no network beyond the
//! validator. The page reads [`DashboardState`] once and then live over server-sent events;
//! all of it comes from the read path (`crate::reads`), never the core task. The page and its
//! assets hold no data and are served to anyone; the `/api/` routes require the bearer token
//! when one is configured (required beyond loopback).

pub mod dashboard_server;
pub mod dashboard_state;
pub mod peer_positions;

pub use dashboard_server::{serve_dashboard, Dashboard};
pub use dashboard_state::DashboardState;
pub use peer_positions::PeerPositions;
