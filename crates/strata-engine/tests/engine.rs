//! The engine driven through its API, as a program that embeds it would: pull from a real
//! registry, create, start and wait for a container, account for the disk, remove the image
//! and collect what it held. No `strata` command is run, except as the containers' monitor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use strata_engine::containers::create::CreateOptions;
use strata_engine::gc::GcOptions;
use strata_engine::images::Removal;
use strata_engine::pull::{NoProgress, PullOptions};
use strata_engine::{Engine, EngineOptions, PullPolicy};
use strata_runtime::spec::SpecOptions;
use strata_testutil::{
    Compression, ImageBuilder, Registry, busybox_layer, push_image, require_root, require_tool,
};

/// The `strata` binary this workspace built (the containers' monitor): `target/<profile>/`,
/// beside the directory of this test's executable.
fn strata_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("strata");
    assert!(
        bin.exists(),
        "{} is missing: cargo build --workspace",
        bin.display()
    );
    bin
}

#[test]
fn an_engine_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Engine>();
}

#[test]
fn pull_run_account_remove_and_collect() {
    if !(require_root("mounts overlays and runs containers")
        && require_tool("runc")
        && require_tool("docker-registry"))
    {
        return;
    }
    let Some(layer) = busybox_layer() else { return };
    let registry = Registry::start().unwrap();
    let image = ImageBuilder::new()
        .layer(layer.build(Compression::Gzip))
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["sh"]))
        .build();
    push_image(&registry.url(), "engine/busybox", "1", &image).unwrap();
    let name = format!("{}/engine/busybox:1", registry.addr());

    let dir = tempfile::tempdir().unwrap();
    let mut opts = EngineOptions::new(dir.path().join("root"));
    opts.monitor_exe = strata_bin();
    let engine = Engine::open(opts).unwrap();

    let pulled = engine
        .pull(&name, &PullOptions::default(), &NoProgress)
        .unwrap();
    assert!(!pulled.up_to_date);
    assert_eq!(pulled.manifests.len(), 1);
    assert!(pulled.manifests[0].top.is_some(), "one layer, unpacked");

    let create = CreateOptions {
        image: name.clone(),
        runtime: "runc".to_owned(),
        spec: SpecOptions {
            cmd: ["sh", "-c", "echo hello from the engine; exit 3"]
                .map(String::from)
                .to_vec(),
            ..SpecOptions::default()
        },
        ..CreateOptions::default()
    };
    let record = engine.create_container(&create).unwrap();
    engine.start(&record.name).unwrap();
    assert_eq!(engine.wait(&record.id).unwrap(), 3);
    let log = std::fs::read_to_string(engine.log_path(&record)).unwrap();
    assert!(log.contains("hello from the engine"), "{log}");

    let usage = engine.images_usage().unwrap();
    assert_eq!(usage.images.len(), 1);
    assert_eq!(usage.active(), 1, "the container uses the image");
    assert!(
        usage.total.unpacked > 0 && usage.total.content > 0,
        "{usage:?}"
    );

    // The policy decides whether create must pull first.
    assert!(
        engine
            .image_for_container(&name, PullPolicy::Missing)
            .unwrap()
            .is_some()
    );
    assert!(
        engine
            .image_for_container(&name, PullPolicy::Always)
            .unwrap()
            .is_none()
    );
    let absent = format!("{}/engine/absent:1", registry.addr());
    assert!(
        engine
            .image_for_container(&absent, PullPolicy::Missing)
            .unwrap()
            .is_none()
    );
    let never = engine
        .image_for_container(&absent, PullPolicy::Never)
        .unwrap_err();
    assert_eq!(never.kind(), strata_types::ErrorKind::NotFound, "{never}");

    // A second container, removed by name; the exited first one goes with the prune.
    let second = engine.create_container(&create).unwrap();
    engine.remove_container(&second.name, false, false).unwrap();
    assert!(engine.container(&second.id).is_err());
    assert!(
        engine.prune_images(false).unwrap().is_empty(),
        "a named image is not dangling"
    );
    let pruned = engine.prune_containers().unwrap();
    assert_eq!(pruned.deleted, vec![record.id.clone()]);
    let removals = engine.remove_image(&name, false).unwrap();
    assert!(
        removals.iter().any(|r| matches!(r, Removal::Deleted(_))),
        "{removals:?}"
    );
    let collected = engine.collect_garbage(&GcOptions::default()).unwrap();
    assert_eq!(collected.removed_layers().count(), 1);
    assert!(
        collected.reclaimed() >= usage.total.total() / 2,
        "{collected:?}"
    );
    let after = engine.images_usage().unwrap();
    assert!(after.images.is_empty());
    assert_eq!(after.unreferenced.total(), 0, "{after:?}");
}
