//! Preshared keys, kept only as SHA-256 digests and compared in constant time: the time a
//! comparison takes reveals neither how much of a key matched, nor its length, nor which
//! key matched.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::config::{AuthConfigError, Secret};

pub(crate) struct PresharedKeys {
    digests: Vec<[u8; 32]>,
}

impl PresharedKeys {
    pub(crate) fn empty() -> PresharedKeys {
        PresharedKeys {
            digests: Vec::new(),
        }
    }

    pub(crate) fn new(keys: &[Secret]) -> Result<PresharedKeys, AuthConfigError> {
        let mut digests = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let k = key.expose();
            let reason = if k.is_empty() {
                Some("empty")
            } else if k.trim() != k {
                Some("surrounded by whitespace (which a bearer header cannot carry)")
            } else if k.chars().any(char::is_control) {
                Some("made of control characters in part (which a header cannot carry)")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(AuthConfigError::BadPresharedKey { index: i, reason });
            }
            digests.push(Sha256::digest(k.as_bytes()).into());
        }
        Ok(PresharedKeys { digests })
    }

    pub(crate) fn len(&self) -> usize {
        self.digests.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The index of the key equal to `token`, examining every key whatever the outcome.
    pub(crate) fn find(&self, token: &str) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, d) in self.digests.iter().enumerate() {
            let eq = d.ct_eq(&digest);
            // Keep the first match without branching on secret-dependent data.
            let take = eq & !found;
            index = u64::conditional_select(&index, &(i as u64), take);
            found |= eq;
        }
        if bool::from(found) {
            usize::try_from(index).ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_matching_key_index() {
        let keys = PresharedKeys::new(&[Secret::new("alpha-key"), Secret::new("beta-key")])
            .expect("valid");
        assert_eq!(keys.find("alpha-key"), Some(0));
        assert_eq!(keys.find("beta-key"), Some(1));
        assert_eq!(keys.find("beta-ke"), None);
        assert_eq!(keys.find("beta-key "), None);
        assert_eq!(keys.find(""), None);
    }

    #[test]
    fn refuses_unusable_keys() {
        assert!(matches!(
            PresharedKeys::new(&[Secret::new("ok"), Secret::new("")]),
            Err(AuthConfigError::BadPresharedKey { index: 1, .. })
        ));
        assert!(PresharedKeys::new(&[Secret::new(" padded")]).is_err());
        assert!(PresharedKeys::new(&[Secret::new("a\nb")]).is_err());
    }
}
