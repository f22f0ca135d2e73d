//! The validator set every envelope target opens against (shared by the targets).

use scbe_core::consensus::Directory;
use scbe_core::crypto::Keypair;

pub fn directory() -> &'static Directory {
    static DIR: std::sync::OnceLock<Directory> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let validators: Vec<Keypair> = (0..4)
            .map(|i| Keypair::from_label(&format!("fz{i}")))
            .collect();
        let client = Keypair::from_label("fz-client");
        Directory::new(
            validators.iter().map(Keypair::public).collect(),
            vec![client.public()],
        )
        .expect("directory")
    })
}
