//! `system df` end to end: the real binary on a store with images sharing a base layer, a
//! container, a volume and leftovers no image uses; the figures checked against the files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Strata, bytes, du, pseudo_random};
use serde_json::Value;
use strata_format::human_size;
use strata_testutil::{
    Compression, ImageBuilder, LayerBuilder, LayoutEntry, busybox_layer, require_root,
    require_tool, tar_dir, write_layout,
};

fn rows(s: &Strata, args: &[&str]) -> Vec<Value> {
    s.ok(args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn df_counts_shared_layers_once_and_matches_du() {
    if !(require_root("runs a container") && require_tool("runc") && require_tool("busybox")) {
        return;
    }
    let Some(busybox) = busybox_layer() else {
        return;
    };
    let s = Strata::new();
    // Random data does not compress: blobs and snapshots are both about 6 MB a layer.
    let base_layer = busybox
        .file("data/base.bin", &pseudo_random(6 << 20, 1), 0o644)
        .build(Compression::Gzip);
    let app_layer = LayerBuilder::new()
        .file("app.bin", &pseudo_random(3 << 20, 2), 0o644)
        .build(Compression::Gzip);
    let base = ImageBuilder::new().layer(base_layer.clone()).build();
    let app = ImageBuilder::new()
        .layer(base_layer)
        .layer(app_layer.clone())
        .build();
    let layout = s.scratch("layout");
    write_layout(
        &layout,
        &[
            ("df/base:1", LayoutEntry::Image(&base)),
            ("df/app:1", LayoutEntry::Image(&app)),
        ],
    )
    .unwrap();
    s.ok_input(&["load"], &tar_dir(&layout).unwrap());

    // Before any container: the images' total is what the content and snapshot trees hold.
    let summary = rows(&s, &["system", "df", "--format", "json"]);
    assert_eq!(summary.len(), 4);
    let images = &summary[0];
    assert_eq!(images["Type"], "Images");
    assert_eq!(images["TotalCount"], "2");
    assert_eq!(images["Active"], "0");
    let on_disk = du(&s.root().join("content/blobs")) + du(&s.root().join("snapshots"));
    let shown = bytes(images["Size"].as_str().unwrap());
    let off = (shown - on_disk as f64).abs() / on_disk as f64;
    assert!(off < 0.01, "df says {shown}, du {on_disk} ({off:.4})");
    assert!(bytes(images["ContentSize"].as_str().unwrap()) > 9e6);
    assert!(bytes(images["UnpackedSize"].as_str().unwrap()) > 9e6);
    assert_eq!(summary[1]["Type"], "Containers");
    assert_eq!(summary[2]["Type"], "Local Volumes");
    assert_eq!(summary[3]["Type"], "Build Cache");

    // A container of app that wrote 5 bytes, a volume with 4 bytes, a blob no image uses.
    s.ok(&[
        "run",
        "--name",
        "writer",
        "df/app:1",
        "sh",
        "-c",
        "printf hello > /out.txt",
    ]);
    s.ok(&["volume", "create", "data"]);
    std::fs::write(s.root().join("volumes/data/_data/f"), b"1234").unwrap();
    s.ingest(&pseudo_random(1000, 3));

    let summary = rows(&s, &["system", "df", "--format", "json"]);
    let (images, containers, volumes) = (&summary[0], &summary[1], &summary[2]);
    assert_eq!(images["Active"], "1");
    assert_eq!(
        (
            containers["TotalCount"].as_str(),
            containers["Active"].as_str()
        ),
        (Some("1"), Some("0"))
    );
    assert_eq!(containers["Size"], "5B");
    assert_eq!(containers["Reclaimable"], "5B (100%)");
    assert_eq!(volumes["TotalCount"], "1");
    assert_eq!(volumes["Size"], "4B");
    assert_eq!(volumes["Reclaimable"], "4B (100%)");

    let df = common::DfVerbose::of(&s);
    let verbose = &df.0;
    let image = |repo: &str| df.image(repo);
    let (b, a) = (image("df/base"), image("df/app"));
    assert_eq!(a["Containers"], "1");
    assert_eq!(b["Containers"], "0");
    // They share the busybox+base layer (blob and snapshot): equal shared sizes, base's own
    // part only its manifest and config.
    assert_eq!(a["SharedSize"], b["SharedSize"]);
    assert!(bytes(b["SharedSize"].as_str().unwrap()) > 12e6);
    assert!(bytes(b["UniqueSize"].as_str().unwrap()) < 10e3);
    let app_unique = bytes(a["UniqueSize"].as_str().unwrap());
    assert!((6e6..6.5e6).contains(&app_unique), "{app_unique}");
    // Shared bytes count once: the total is less than the sum of the images.
    let total = bytes(images["Size"].as_str().unwrap());
    let sum = bytes(a["Size"].as_str().unwrap()) + bytes(b["Size"].as_str().unwrap());
    assert!(total < sum - 12e6, "{total} vs {sum}");
    // Reclaimable: what base holds alone (app is in use).
    assert_eq!(
        images["Reclaimable"].as_str().unwrap().split(' ').next(),
        b["UniqueSize"].as_str()
    );
    assert_eq!(verbose["Containers"][0]["Names"], "writer");
    assert_eq!(verbose["Containers"][0]["Size"], "5B");
    assert_eq!(verbose["Volumes"][0]["Name"], "data");
    assert_eq!(verbose["Volumes"][0]["Links"], "0");

    // The tables, as Docker prints them, and the breakdown after them.
    let table = s.ok(&["system", "df"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    assert!(table.contains("compressed content +"), "{table}");
    assert!(
        table.contains(&format!(
            "Not used by any image: {} content",
            human_size(1000)
        )),
        "{table}"
    );
    let table = s.ok(&["system", "df", "-v"]);
    for section in [
        "Images space usage:",
        "REPOSITORY   TAG       IMAGE ID       CREATED",
        "SHARED SIZE   UNIQUE SIZE   CONTAINERS",
        "Containers space usage:",
        "CONTAINER ID   IMAGE",
        "LOCAL VOLUMES",
        "Local Volumes space usage:",
        "VOLUME NAME   LINKS     SIZE",
        "Build cache usage: 0B",
    ] {
        assert!(table.contains(section), "{section} in\n{table}");
    }
    let err = s.fails(&["system", "df", "-v", "--format", "{{.Size}}"], b"");
    assert!(
        err.contains("json only") || err.contains("takes only json"),
        "{err}"
    );
    // The stray blob is reclaimed by prune, and df says so.
    s.ok(&["image", "prune", "-f"]);
    assert!(!s.ok(&["system", "df"]).contains("Not used by any image"));
}
