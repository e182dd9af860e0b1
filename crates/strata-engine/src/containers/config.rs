//! `container.json`: what `create` decided, kept beside the bundle for `start`, `ps`,
//! `inspect`, `commit` and `rm` (the OCI `config.json` says how to run; this says why).

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A mount of the container as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// `bind` or `volume`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume name (volumes only).
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "Source")]
    pub source: String,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    /// An anonymous volume, removed with the container by `rm -v`.
    #[serde(rename = "Anonymous", default)]
    pub anonymous: bool,
}

/// The container's creation settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The image as the user named it.
    pub image: String,
    /// The image's target digest (its ID) at creation: the container keeps this image even
    /// when the name moves.
    pub image_id: String,
    /// The manifest the container runs (the host platform's in an index).
    pub manifest: String,
    /// The image's config digest.
    pub config: String,
    /// The process arguments (entrypoint + cmd, resolved).
    pub args: Vec<String>,
    /// The entrypoint and cmd as Docker's inspect shows them.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub read_only: bool,
    pub network: String,
    /// `--rm`: removed when it exits.
    pub auto_remove: bool,
    /// Signal `stop` sends first (the image's StopSignal, else SIGTERM).
    pub stop_signal: String,
    pub mounts: Vec<MountPoint>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--privileged`, `--cap-add`, `--cap-drop`, `--security-opt` as given (the spec holds
    /// their effect; containers made before them have none).
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub security_opt: Vec<String>,
    /// `--log-driver`/`--log-opt` over the store's defaults (absent in older records:
    /// json-file, unbounded).
    #[serde(default)]
    pub log_config: strata_runtime::logs::LogConfig,
    /// The sources of the read-only binds strata makes recursively read-only itself, for a
    /// runtime without `rro` (see [`super::ro_binds`]): the n-th is staged at
    /// `ro-binds/<n>` for each run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staged_ro_binds: Vec<std::path::PathBuf>,
}

pub const FILE: &str = "container.json";

impl ContainerConfig {
    pub fn read(dir: &Path) -> io::Result<ContainerConfig> {
        let bytes = fs::read(dir.join(FILE))?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Written to a temporary file, synced and renamed over: never half a file. The owner's
    /// only: it holds the container's command and environment.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        bytes.push(b'\n');
        strata_runtime::files::write_atomic(&dir.join(FILE), &bytes, strata_runtime::files::PRIVATE)
    }

    /// `COMMAND` as `ps` shows it: the arguments joined by spaces, quoted.
    pub fn command(&self) -> String {
        format!("\"{}\"", self.args.join(" "))
    }
}
