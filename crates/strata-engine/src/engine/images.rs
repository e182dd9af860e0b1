//! The engine's image methods: pull, remove, prune, garbage collection, disk usage.

use std::collections::BTreeMap;

use strata_remote::Reference;

use super::{Engine, EngineError};
use crate::df::{self, ImagesUsage};
use crate::gc::{self, Collected, GcOptions};
use crate::images::{self, Removal, is_dangling};
use crate::pull::{self, Progress, PullOptions, Pulled};
use crate::push::{self, PushEvent, PushOptions, Pushed};

impl Engine {
    /// Pulls `reference` (`busybox`, `registry:5000/app:1`, `name@sha256:…`) and unpacks it;
    /// credentials come from Docker's `config.json`, limits from the store's settings.
    pub fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<Pulled, EngineError> {
        let reference = Reference::parse(reference).map_err(Box::new)?;
        self.pull_reference(&reference, opts, progress)
    }

    /// [`Engine::pull`] of a parsed reference, its error the pull's own.
    pub fn pull_reference(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<Pulled, EngineError> {
        let remote = self.remote()?;
        let sn = self.snapshotter()?;
        let rt = self.network()?;
        Ok(pull::pull(
            &self.store,
            sn,
            &remote,
            rt,
            reference,
            opts,
            progress,
        )?)
    }

    /// Pushes the image `reference` names to its registry, as `docker push`.
    pub fn push(
        &self,
        reference: &Reference,
        opts: &PushOptions,
        progress: &mut dyn FnMut(PushEvent<'_>),
    ) -> Result<Pushed, EngineError> {
        let remote = self.remote()?;
        let rt = self.network()?;
        Ok(push::push(
            &self.store,
            &remote,
            rt,
            reference,
            opts,
            progress,
        )?)
    }

    /// A registry client with the store's hosts and settings (read anew each time: settings
    /// may change while an engine lives).
    fn remote(&self) -> Result<strata_remote::Remote, EngineError> {
        let opts = crate::runtime::store_options(&self.store)?;
        Ok(crate::runtime::remote_with(opts)?)
    }

    /// Removes an image name (or, by id, the image), as `rmi`; the content and snapshots
    /// only it used are freed by [`Engine::collect_garbage`].
    pub fn remove_image(&self, image: &str, force: bool) -> Result<Vec<Removal>, EngineError> {
        Ok(images::write(self.store.db(), |tx| {
            images::remove(tx, image, force)
        })?)
    }

    /// Removes the records of the dangling images (`all`: of every image) that no container
    /// uses, as `image prune [-a]`; what they held is freed by [`Engine::collect_garbage`].
    /// An image goes with all its names or not at all.
    pub fn prune_images(&self, all: bool) -> Result<Vec<Removal>, EngineError> {
        Ok(images::write(self.store.db(), |tx| {
            let mut by_target: BTreeMap<_, Vec<_>> = BTreeMap::new();
            for rec in tx.images()? {
                by_target
                    .entry(rec.target.digest.clone())
                    .or_default()
                    .push(rec);
            }
            let mut removals = Vec::new();
            for (digest, recs) in by_target {
                let dangling = recs.iter().all(is_dangling);
                if !(dangling || all) || !images::containers_using(tx, &digest)?.is_empty() {
                    continue;
                }
                for rec in &recs {
                    tx.delete_image(&rec.name)?;
                    if !is_dangling(rec) {
                        removals.push(Removal::Untagged(images::familiar(&rec.name)));
                    }
                }
                removals.push(Removal::Deleted(images::image_id(&recs[0])));
            }
            Ok(removals)
        })?)
    }

    /// Frees what no image, container or lease needs any more.
    pub fn collect_garbage(&self, opts: &GcOptions) -> Result<Collected, EngineError> {
        Ok(gc::collect(&self.store, opts)?)
    }

    /// What the images take on disk, shared and unique (`system df`).
    pub fn images_usage(&self) -> Result<ImagesUsage, EngineError> {
        Ok(df::images_usage(&self.store, Some(self.snapshotter()?))?)
    }
}
