//! Unit tests of the push plan.

use super::*;
use serde_json::json;
use std::io::Write;
use strata_content::WriterOptions;
use strata_metadata::Labels;
use strata_remote::media;

/// A store in a temp dir; blobs go in with [`put`].
fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root"), "native").unwrap();
    (dir, store)
}

fn put(store: &Store, media_type: &str, bytes: &[u8], labels: &Labels) -> Descriptor {
    let digest = Digest::sha256_of(bytes);
    let size = bytes.len() as u64;
    let opts = WriterOptions {
        expected: Some(digest.clone()),
        total: Some(size),
        wait: true,
    };
    let content = store.content();
    let mut w = content
        .writer(&format!("test-{digest}"), opts, None)
        .unwrap();
    w.write_all(bytes).unwrap();
    content
        .commit(w, Some(size), Some(&digest), labels, None)
        .unwrap();
    Descriptor::new(media_type, digest, size)
}

fn desc_json(d: &Descriptor) -> serde_json::Value {
    serde_json::to_value(d).unwrap()
}

/// A layer descriptor, stored or not.
fn layer(store: &Store, text: &str, stored: bool) -> Descriptor {
    if stored {
        put(
            store,
            media::OCI_LAYER_GZIP,
            text.as_bytes(),
            &Labels::new(),
        )
    } else {
        let b = text.as_bytes();
        Descriptor::new(media::OCI_LAYER_GZIP, Digest::sha256_of(b), b.len() as u64)
    }
}

/// A manifest (stored) over a config for `arch` (stored) and `layers`.
fn manifest(store: &Store, arch: &str, layers: &[Descriptor]) -> Descriptor {
    let config = json!({"architecture": arch, "os": "linux",
                        "rootfs": {"type": "layers", "diff_ids": []}});
    let config = put(
        store,
        media::OCI_CONFIG,
        config.to_string().as_bytes(),
        &Labels::new(),
    );
    let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
                   "config": desc_json(&config),
                   "layers": layers.iter().map(desc_json).collect::<Vec<_>>()});
    put(
        store,
        media::OCI_MANIFEST,
        m.to_string().as_bytes(),
        &Labels::new(),
    )
}

/// An index (stored) over `(manifest, arch)`, `arch` "attestation" marking one.
fn index(store: &Store, entries: &[(&Descriptor, &str)]) -> Descriptor {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(d, arch)| {
            let mut v = desc_json(d);
            if *arch == "attestation" {
                v["platform"] = json!({"architecture": "unknown", "os": "unknown"});
                v["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
            } else {
                v["platform"] = json!({"architecture": arch, "os": "linux"});
            }
            v
        })
        .collect();
    let i = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests});
    put(
        store,
        media::OCI_INDEX,
        i.to_string().as_bytes(),
        &Labels::new(),
    )
}

fn dest() -> Reference {
    Reference::parse("127.0.0.1:5000/dest:1").unwrap()
}

fn plan_of(store: &Store, target: &Descriptor, platform: Option<&str>) -> Result<Plan, PushError> {
    plan_if(store, target, platform, false)
}

/// The plan when the registry holds (`registry_has`) the manifests absent locally, or not.
fn plan_if(
    store: &Store,
    target: &Descriptor,
    platform: Option<&str>,
    registry_has: bool,
) -> Result<Plan, PushError> {
    let p = platform.map(|p| p.parse::<Platform>().unwrap());
    plan(store.content(), "img", target, p.as_ref(), &dest())?.decide(registry_has)
}

fn blob_digests(plan: &Plan) -> Vec<&Digest> {
    plan.blobs.iter().map(|b| &b.desc.digest).collect()
}

fn host() -> String {
    Platform::host().architecture
}

fn other() -> &'static str {
    if host() == "s390x" {
        "ppc64le"
    } else {
        "s390x"
    }
}

#[test]
fn a_manifest_sends_its_config_and_distributable_layers_only() {
    let (_d, s) = store();
    let a = layer(&s, "a", true);
    // A foreign layer: never pushed, need not be present.
    let mut foreign = layer(&s, "foreign", false);
    foreign.media_type = media::OCI_LAYER_NONDISTRIBUTABLE_GZIP.to_owned();
    let m = manifest(&s, "amd64", &[a.clone(), foreign]);
    let plan = plan_of(&s, &m, None).unwrap();
    assert_eq!(plan.target, m);
    assert_eq!(plan.documents.len(), 1);
    assert_eq!(plan.documents[0].1.len() as u64, m.size);
    // --platform must be its platform.
    assert_eq!(plan_of(&s, &m, Some("linux/amd64")).unwrap().target, m);
    match plan_of(&s, &m, Some("linux/arm64")) {
        Err(e @ PushError::NoPlatform { .. }) => assert_eq!(
            e.to_string(),
            "img: no manifest for platform linux/arm64 present locally (present: linux/amd64)"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(blob_digests(&plan).len(), 2);
    assert_eq!(blob_digests(&plan)[1], &a.digest);
    assert!(plan.index.is_none() && plan.missing.is_empty());
}

#[test]
fn a_manifest_missing_a_layer_is_refused_naming_it() {
    let (_d, s) = store();
    let absent = layer(&s, "absent", false);
    let m = manifest(&s, "amd64", std::slice::from_ref(&absent));
    match plan_of(&s, &m, None) {
        Err(PushError::Missing { digest, .. }) => assert_eq!(digest, absent.digest),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_complete_index_goes_whole_children_first_blobs_once() {
    let (_d, s) = store();
    let shared = layer(&s, "shared", true);
    let m1 = manifest(&s, &host(), &[shared.clone(), layer(&s, "one", true)]);
    let m2 = manifest(&s, other(), std::slice::from_ref(&shared));
    let att = manifest(&s, "unknown", &[layer(&s, "in-toto", true)]);
    let i = index(&s, &[(&m1, &host()), (&m2, other()), (&att, "attestation")]);
    let plan = plan_of(&s, &i, None).unwrap();
    assert_eq!(plan.target, i);
    let docs: Vec<&Digest> = plan.documents.iter().map(|(d, _)| &d.digest).collect();
    assert_eq!(docs, vec![&m1.digest, &m2.digest, &att.digest, &i.digest]);
    // 3 configs, shared + one + in-toto.
    assert_eq!(blob_digests(&plan).len(), 6);
    assert!(plan.index.is_none() && plan.missing.is_empty());
}

#[test]
fn an_incomplete_index_falls_back_to_the_host_platform() {
    let (_d, s) = store();
    let m1 = manifest(&s, &host(), &[layer(&s, "one", true)]);
    let m2 = manifest(&s, other(), &[layer(&s, "two", false)]);
    let m3 = manifest(&s, "riscv64", &[layer(&s, "three", true)]);
    let i = index(&s, &[(&m2, other()), (&m3, "riscv64"), (&m1, &host())]);
    let plan = plan_of(&s, &i, None).unwrap();
    assert_eq!(plan.target.digest, m1.digest);
    assert_eq!(plan.index.as_ref(), Some(&i));
    assert_eq!(plan.missing, vec![format!("linux/{}", other())]);
    assert_eq!(plan.documents.len(), 1);

    // Unless the registry has what is absent here: then all that is present, and the index.
    let plan = plan_if(&s, &i, None, true).unwrap();
    assert_eq!(plan.target, i);
    assert!(plan.index.is_none());
    assert_eq!(plan.missing, vec![format!("linux/{}", other())]);
    let docs: Vec<&Digest> = plan.documents.iter().map(|(d, _)| &d.digest).collect();
    assert_eq!(docs, vec![&m3.digest, &m1.digest, &i.digest]);
    // --platform never asks the registry.
    let plan = plan_if(&s, &i, Some("linux/riscv64"), true).unwrap();
    assert_eq!(plan.target.digest, m3.digest);
}

#[test]
fn an_incomplete_index_without_the_host_platform_is_ambiguous() {
    let (_d, s) = store();
    let m2 = manifest(&s, other(), &[layer(&s, "two", true)]);
    let m3 = manifest(&s, "riscv64", &[layer(&s, "three", true)]);
    let m4 = manifest(&s, "mips64le", &[layer(&s, "four", false)]);
    let i = index(&s, &[(&m2, other()), (&m3, "riscv64"), (&m4, "mips64le")]);
    match plan_of(&s, &i, None) {
        Err(e @ PushError::Ambiguous { .. }) => {
            assert!(e.to_string().contains("missing: linux/mips64le"), "{e}");
            assert!(e.to_string().contains("push one with --platform"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A single present platform goes, whatever it is.
    let j = index(&s, &[(&m2, other()), (&m4, "mips64le")]);
    assert_eq!(plan_of(&s, &j, None).unwrap().target.digest, m2.digest);
    // --platform names one.
    let plan = plan_of(&s, &i, Some("linux/riscv64")).unwrap();
    assert_eq!(plan.target.digest, m3.digest);
    assert!(plan.index.is_none() && plan.missing.is_empty());
}

#[test]
fn mounts_come_from_the_blob_labels_for_the_target_registry() {
    let (_d, s) = store();
    let labels = Labels::from([(
        "containerd.io/distribution.source.127.0.0.1".to_owned(),
        "dest,src/repo".to_owned(),
    )]);
    let a = put(&s, media::OCI_LAYER_GZIP, b"labelled", &labels);
    let m = manifest(&s, "amd64", std::slice::from_ref(&a));
    let plan = plan_of(&s, &m, None).unwrap();
    let job = plan
        .blobs
        .iter()
        .find(|b| b.desc.digest == a.digest)
        .unwrap();
    assert_eq!(job.mount_from.as_deref(), Some("src/repo"));
    assert!(plan.blobs.iter().filter(|b| b.mount_from.is_some()).count() == 1);
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn label_hosts_drop_the_port() {
    assert_eq!(label_host("127.0.0.1:5000"), "127.0.0.1");
    assert_eq!(label_host("docker.io"), "docker.io");
    assert_eq!(label_host("[::1]:5000"), "[::1]");
    assert_eq!(label_host("[::1]"), "[::1]");
}

#[test]
fn mount_sources_read_both_label_spellings() {
    let l = labels(&[
        (
            "containerd.io/distribution.source.127.0.0.1",
            "a/b, c ,dest",
        ),
        ("containerd.io/distribution.source.127.0.0.1:5000", "x,a/b"),
        (
            "containerd.io/distribution.source.docker.io",
            "library/alpine",
        ),
    ]);
    assert_eq!(
        mount_sources(&l, "127.0.0.1:5000", "dest"),
        vec!["x", "a/b", "c"]
    );
    assert_eq!(
        mount_sources(&l, "docker.io", "library/alpine"),
        Vec::<String>::new()
    );
    assert!(mount_sources(&Labels::new(), "h", "r").is_empty());
}

#[test]
fn sources_are_appended_once() {
    let key = "containerd.io/distribution.source.127.0.0.1";
    assert_eq!(
        with_source(&Labels::new(), "127.0.0.1:5000", "a"),
        Some((key.to_owned(), "a".to_owned()))
    );
    let l = labels(&[(key, "a")]);
    assert_eq!(
        with_source(&l, "127.0.0.1:5000", "b"),
        Some((key.to_owned(), "a,b".to_owned()))
    );
    assert_eq!(with_source(&l, "127.0.0.1:6000", "a"), None);
}
