//! `scbe-sim up --dir` on a directory that already holds a cluster: it is reused as it is (the
//! same genesis, keys, ports and configs, so its data is never paired with new configuration),
//! and a request for another shape is refused with nothing changed.

use std::path::Path;

use scbe_sim::local::{Launch, LocalCluster, LocalError, LocalOptions, GENESIS};

fn launch() -> Launch {
    // Nothing is started here; the command is only recorded.
    Launch::binaries(Path::new("/nonexistent/scbe-node"))
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_file() {
            out.push((
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read(&p).expect("read"),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn an_existing_cluster_directory_is_reused_as_it_is() {
    let d = tempfile::tempdir().expect("tmp");
    let opts = LocalOptions {
        agents: 3,
        ..LocalOptions::default()
    };
    let first = LocalCluster::generate(&launch(), d.path(), 4, &opts).expect("new");
    let before = files(d.path());
    let keys_before = files(&d.path().join("keys"));
    // Other settings on the second run change nothing: the directory's own are kept.
    let other = LocalOptions {
        window: opts.window * 2,
        ..opts.clone()
    };
    let again = LocalCluster::generate(&launch(), d.path(), 4, &other).expect("reused");
    assert_eq!(again.genesis, first.genesis);
    let addrs = |c: &LocalCluster| -> Vec<String> {
        c.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .chain(c.agents.iter().map(|a| a.addr.to_string()))
            .collect()
    };
    assert_eq!(addrs(&again), addrs(&first));
    assert_eq!(files(d.path()), before, "no file rewritten");
    assert_eq!(
        files(&d.path().join("keys")),
        keys_before,
        "no key replaced"
    );
}

#[test]
fn a_request_for_another_shape_is_refused_and_changes_nothing() {
    let d = tempfile::tempdir().expect("tmp");
    let opts = LocalOptions {
        agents: 2,
        ..LocalOptions::default()
    };
    LocalCluster::generate(&launch(), d.path(), 4, &opts).expect("new");
    let genesis = std::fs::read(d.path().join(GENESIS)).expect("genesis");
    let more_agents = LocalOptions {
        agents: 3,
        ..opts.clone()
    };
    match LocalCluster::generate(&launch(), d.path(), 4, &more_agents) {
        Err(LocalError::Shape {
            agents,
            asked_agents,
            ..
        }) => assert_eq!((agents, asked_agents), (2, 3)),
        Err(e) => panic!("expected a shape refusal, got {e}"),
        Ok(_) => panic!("expected a shape refusal, the directory was reused"),
    }
    assert!(LocalCluster::generate(&launch(), d.path(), 7, &opts).is_err());
    assert_eq!(
        std::fs::read(d.path().join(GENESIS)).expect("genesis"),
        genesis
    );
}
