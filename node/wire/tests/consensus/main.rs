//! The consensus core's scenario tests. They live here, not in `scbe-core`, because they carry
//! messages between replicas through the real wire encoding (`scbe_wire::testkit::Cluster`),
//! which the core cannot depend on.

mod certificate_tests;
mod checkpoint_tests;
mod epoch_chain_tests;
mod epoch_tests;
mod future_view_tests;
mod heartbeat_tests;
mod normal_case_tests;
mod paper;
mod relay_tests;
mod replay_tests;
mod restore_tests;
mod size_tests;
mod state_transfer_tests;
mod suspicion_tests;
mod view_change_tests;
mod voided_slot_tests;
mod warning_tests;
mod worst_case_tests;
