//! The engine's container methods: create (pulling as a policy says), start, run, wait,
//! remove, prune.

use std::path::PathBuf;
use std::str::FromStr;

use strata_metadata::ContainerRecord;
use strata_runtime::state::{ContainerState, Status};

use super::{Engine, EngineError, monitor_args};
use crate::containers::create::{self, CreateOptions, ImageForContainer};
use crate::containers::lifecycle::{self, Started};
use crate::containers::{self, ContainerError, list};

/// When `create`/`run` pull the image (Docker's `--pull`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Pull only when the store lacks the image or its platform (the default).
    #[default]
    Missing,
    /// Never pull: a missing image is an error.
    Never,
}

impl FromStr for PullPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<PullPolicy, String> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \
                 \"never\""
            )),
        }
    }
}

/// What [`Engine::prune_containers`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The ids of the containers removed.
    pub deleted: Vec<String>,
    /// The bytes their writable layers held.
    pub reclaimed: u64,
}

impl Engine {
    /// The container named or identified (a unique id prefix will do) by `container`.
    pub fn container(&self, container: &str) -> Result<ContainerRecord, EngineError> {
        let found = self
            .store
            .db()
            .read(|tx| Ok(containers::lookup(tx, container)))?;
        Ok(found?)
    }

    /// `image` resolved for a container (its host-platform manifest, config and top layer),
    /// or `None` when `policy` says it must be pulled first ([`Engine::pull`]) and then asked
    /// for again.
    pub fn image_for_container(
        &self,
        image: &str,
        policy: PullPolicy,
    ) -> Result<Option<ImageForContainer>, EngineError> {
        if policy == PullPolicy::Always {
            return Ok(None);
        }
        let sn = self.snapshotter()?;
        match create::image_for_container(&self.store, sn, image) {
            Err(ContainerError::ImageNotFound(_) | ContainerError::PlatformMissing(_))
                if policy == PullPolicy::Missing =>
            {
                Ok(None)
            }
            found => Ok(Some(found?)),
        }
    }

    /// Creates a container from an image in the store (`opts.image`); returns its record.
    /// [`ContainerError::ImageNotFound`] means: pull it first.
    pub fn create_container(&self, opts: &CreateOptions) -> Result<ContainerRecord, EngineError> {
        let sn = self.snapshotter()?;
        let image = create::image_for_container(&self.store, sn, &opts.image)?;
        self.create_from(&image, opts)
    }

    /// Creates a container from an image resolved by [`Engine::image_for_container`].
    pub fn create_from(
        &self,
        image: &ImageForContainer,
        opts: &CreateOptions,
    ) -> Result<ContainerRecord, EngineError> {
        Ok(create::create(
            &self.store,
            self.snapshotter()?,
            image,
            opts,
        )?)
    }

    /// Starts a created or exited container under its own monitor process and returns once
    /// it runs, with the pid of its monitor.
    pub fn start(&self, container: &str) -> Result<i32, EngineError> {
        let record = self.container(container)?;
        match self.start_record(&record, false)? {
            Started::Detached(pid) => Ok(pid),
            Started::Exited(_) => Err(ContainerError::NotRunning(record.name).into()),
        }
    }

    /// Starts `record` detached, or (`attach`) with this process as its monitor: its stdio
    /// becomes the container's and signals are forwarded, until it exits. A container
    /// created with `auto_remove` that fails to start is removed, as Docker's daemon does
    /// (one already running was not started here, and stays).
    pub fn start_record(
        &self,
        record: &ContainerRecord,
        attach: bool,
    ) -> Result<Started, EngineError> {
        let sn = self.snapshotter()?;
        let args = monitor_args(&self.store, record, false);
        let started = lifecycle::start(&self.store, sn, record, attach, self.monitor_exe(), &args);
        let failed = match &started {
            Err(ContainerError::AlreadyRunning(_)) | Ok(_) => false,
            Err(_) => true,
        };
        if failed && self.auto_removes(record) {
            // The start failed before any monitor took the container: nothing else will.
            if let Err(e) = lifecycle::remove(&self.store, sn, record, true, true) {
                tracing::warn!("remove container {}: {e}", record.id);
            }
        }
        Ok(started?)
    }

    fn auto_removes(&self, record: &ContainerRecord) -> bool {
        let dir = containers::dir(self.store.root(), &record.id);
        containers::config::ContainerConfig::read(&dir).is_ok_and(|c| c.auto_remove)
    }

    /// Waits for the container to exit and returns its exit code.
    pub fn wait(&self, container: &str) -> Result<i32, EngineError> {
        let record = self.container(container)?;
        Ok(lifecycle::wait(&self.store, self.snapshotter()?, &record)?)
    }

    /// The container's state, after cleaning up what a dead monitor left behind.
    pub fn state(&self, record: &ContainerRecord) -> Result<ContainerState, EngineError> {
        Ok(lifecycle::reconcile(
            &self.store,
            self.snapshotter()?,
            record,
        )?)
    }

    /// Removes a container: a running one only with `force` (killed first); `volumes` also
    /// removes its anonymous volumes.
    pub fn remove_container(
        &self,
        container: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), EngineError> {
        let record = self.container(container)?;
        let sn = self.snapshotter()?;
        Ok(lifecycle::remove(&self.store, sn, &record, force, volumes)?)
    }

    /// Removes every container that is not running (`container prune`).
    pub fn prune_containers(&self) -> Result<PruneReport, EngineError> {
        let sn = self.snapshotter()?;
        let mut report = PruneReport::default();
        for c in list::list(&self.store, sn)? {
            if c.state.status == Status::Running {
                continue;
            }
            let size = c
                .record
                .snapshot_key
                .as_deref()
                .and_then(|k| list::writable_size(sn, k).ok())
                .unwrap_or(0);
            lifecycle::remove(&self.store, sn, &c.record, false, false)?;
            report.reclaimed += size;
            report.deleted.push(c.record.id);
        }
        Ok(report)
    }

    /// The path of a container's json-file log (Docker's `<id>-json.log`).
    pub fn log_path(&self, record: &ContainerRecord) -> PathBuf {
        lifecycle::log_path(self.store.root(), &record.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_parse_as_docker_spells_them() {
        assert_eq!("always".parse(), Ok(PullPolicy::Always));
        assert_eq!("missing".parse(), Ok(PullPolicy::Missing));
        assert_eq!("never".parse(), Ok(PullPolicy::Never));
        let e = "sometimes".parse::<PullPolicy>().unwrap_err();
        assert!(e.starts_with("invalid pull option: 'sometimes'"), "{e}");
    }
}
