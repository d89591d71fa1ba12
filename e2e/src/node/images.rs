//! The images map: image repository (tag and digest ignored) → local binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// Image repositories this node can "pull", each a binary in the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMap {
    root: PathBuf,
    binaries: BTreeMap<String, PathBuf>,
}

impl ImageMap {
    /// Reads the map from `path`; binary paths are relative to `root`.
    pub fn load(path: &Path, root: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read images map", path))?;
        Self::parse(&text, root).map_err(|source| Error::ImagesMap { path: path.to_path_buf(), source })
    }

    /// Parses `repository: binary` YAML text.
    pub fn parse(text: &str, root: &Path) -> Result<Self, serde_yaml::Error> {
        let binaries: Option<BTreeMap<String, PathBuf>> = serde_yaml::from_str(text)?;
        Ok(Self { root: root.to_path_buf(), binaries: binaries.unwrap_or_default() })
    }

    /// The binary for `image`, or why there is none.
    pub fn resolve(&self, image: &str) -> Result<PathBuf, String> {
        let repository = repository_of(image);
        let Some(relative) = self.binaries.get(repository) else {
            let known: Vec<&str> = self.binaries.keys().map(String::as_str).collect();
            return Err(format!(
                "image repository {repository:?} is not in the node's images map (known: {})",
                known.join(", ")
            ));
        };
        let binary = self.root.join(relative);
        if !binary.is_file() {
            return Err(format!(
                "image {repository:?} maps to {}, which does not exist (build it first)",
                binary.display()
            ));
        }
        Ok(binary)
    }
}

/// The repository part of an image reference: without `@digest` and `:tag`.
pub fn repository_of(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repository_drops_tag_and_digest_but_keeps_a_registry_port() {
        assert_eq!(repository_of("courier/worker:v1"), "courier/worker");
        assert_eq!(repository_of("courier/worker"), "courier/worker");
        assert_eq!(repository_of("localhost:5000/courier/worker:dev"), "localhost:5000/courier/worker");
        assert_eq!(repository_of("courier/worker@sha256:abc"), "courier/worker");
        assert_eq!(repository_of("courier/worker:v1@sha256:abc"), "courier/worker");
    }

    #[test]
    fn unknown_image_names_the_known_ones() {
        let map = ImageMap::parse("courier/worker: target/debug/courier-worker\n", Path::new("/r")).unwrap();
        let message = map.resolve("nginx:1.27").unwrap_err();
        assert!(message.contains("\"nginx\"") && message.contains("courier/worker"), "{message}");
    }

    #[test]
    fn known_image_resolves_to_an_existing_binary_under_the_root() {
        let map = ImageMap::parse("shell/sh: sh\n", Path::new("/bin")).unwrap();
        assert_eq!(map.resolve("shell/sh:latest").unwrap(), PathBuf::from("/bin/sh"));
    }

    #[test]
    fn missing_binary_is_reported_with_its_path() {
        let map = ImageMap::parse("a/b: no-such-binary\n", Path::new("/nonexistent")).unwrap();
        assert!(map.resolve("a/b").unwrap_err().contains("/nonexistent/no-such-binary"));
    }
}
