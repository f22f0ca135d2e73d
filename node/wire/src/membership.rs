//! The validator set and requesters as a validator's `node.toml` lists them, read on their own:
//! what an offline reader (`scbe audit verify`) needs to check signatures, without the node's
//! own settings or its key. Other keys of the file are ignored.

use std::path::Path;

use scbe_core::consensus::Directory;
use serde::Deserialize;

use crate::config_error::{invalid, load_toml, ConfigError};
use crate::key_file::parse_public_key;

#[derive(Debug, Clone, Deserialize)]
pub struct MembershipFile {
    #[serde(default)]
    validators: Vec<KeyEntry>,
    #[serde(default)]
    requesters: Vec<KeyEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct KeyEntry {
    public_key: String,
}

impl MembershipFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }

    /// Who may sign: the validators (by id, in order) and the requesters.
    pub fn directory(&self) -> Result<Directory, ConfigError> {
        let keys = |list: &[KeyEntry], what: &str| {
            list.iter()
                .enumerate()
                .map(|(i, e)| {
                    parse_public_key(&e.public_key).ok_or_else(|| {
                        invalid(
                            format!("{what}[{i}].public_key"),
                            "must be 64 hex characters",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Directory::new(
            keys(&self.validators, "validators")?,
            keys(&self.requesters, "requesters")?,
        )
        .map_err(|e| invalid("validators/requesters", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_file::encode_hex;
    use scbe_core::crypto::Keypair;

    #[test]
    fn reads_the_keys_of_a_node_toml_and_ignores_the_rest() {
        let key = |i: u8| encode_hex(Keypair::from_label(&format!("m{i}")).public().as_bytes());
        let mut text = "[node]\nid = 0\n".to_string();
        for i in 0..4 {
            text.push_str(&format!(
                "[[validators]]\nid = {i}\npublic_key = \"{}\"\naddress = \"127.0.0.1:1\"\n",
                key(i)
            ));
        }
        text.push_str(&format!(
            "[[requesters]]\nname = \"r\"\npublic_key = \"{}\"\n",
            key(9)
        ));
        let m: MembershipFile =
            crate::config_error::parse_toml(Path::new("n.toml"), &text).expect("parses");
        let d = m.directory().expect("keys");
        assert_eq!(d.validators().len(), 4);
        let bad = text.replace(&key(2), "zz");
        let m: MembershipFile =
            crate::config_error::parse_toml(Path::new("n.toml"), &bad).expect("parses");
        assert!(matches!(
            m.directory(),
            Err(ConfigError::Invalid { key, .. }) if key == "validators[2].public_key"
        ));
    }
}
