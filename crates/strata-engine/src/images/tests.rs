#![allow(clippy::unwrap_used)]

use strata_metadata::{ContainerRecord, Labels};

use super::*;

fn desc(seed: &[u8]) -> Descriptor {
    Descriptor::new(
        "application/vnd.oci.image.index.v1+json",
        Digest::sha256_of(seed),
        1,
    )
}

fn db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("m.db")).unwrap();
    (dir, db)
}

const X: &str = "docker.io/library/x:latest";
const Y: &str = "docker.io/library/y:1";

/// Names X and Y, pointing at `x` and `y`.
fn name_both(db: &Db, x: &Descriptor, y: &Descriptor) {
    db.write(|tx| {
        set_image_name(tx, X, x)?;
        set_image_name(tx, Y, y)?;
        Ok(())
    })
    .unwrap();
}

fn names(db: &Db) -> Vec<String> {
    db.read(|tx| Ok(tx.images()?.into_iter().map(|r| r.name).collect()))
        .unwrap()
}

#[test]
fn moving_the_last_name_leaves_a_dangling_image_and_naming_it_again_removes_that() {
    let (_d, db) = db();
    let (a, b) = (desc(b"a"), desc(b"b"));
    db.write(|tx| {
        set_image_name(tx, X, &a)?;
        set_image_name(tx, Y, &a)?;
        // `a` keeps a name (y): no dangling record.
        set_image_name(tx, X, &b)?;
        assert!(tx.image(&dangling_name(&a.digest))?.is_none());
        // Now y moves too: `a` has no name left.
        set_image_name(tx, Y, &b)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        names(&db),
        vec![X.to_owned(), Y.to_owned(), dangling_name(&a.digest)]
    );
    db.write(|tx| set_image_name(tx, X, &a)).unwrap();
    assert!(names(&db).iter().all(|n| !n.starts_with(DANGLING_PREFIX)));
}

#[test]
fn resolves_names_ids_prefixes_and_digests() {
    let (_d, db) = db();
    let a = desc(b"a");
    db.write(|tx| set_image_name(tx, X, &a)).unwrap();
    let hex = a.digest.hex().to_owned();
    db.read(|tx| {
        for arg in ["x", "x:latest", "docker.io/library/x", &hex[..4], &hex, &format!("sha256:{hex}")] {
            let r = resolve(tx, arg).unwrap();
            assert_eq!(r.target().digest, a.digest, "{arg}");
        }
        let r = resolve(tx, &format!("x@{}", a.digest)).unwrap();
        assert!(!r.by_id && r.named.len() == 1);
        assert!(resolve(tx, &hex[..4]).unwrap().by_id);
        for (arg, msg) in [
            ("nope", "No such image: nope:latest"),
            ("y@sha256:0000000000000000000000000000000000000000000000000000000000000000", "No such image: y@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
            (&format!("y@{}", a.digest)[..], "No such image: y@"),
            ("abc", "No such image: abc:latest"),
            ("UPPER", "No such image: UPPER"),
        ] {
            let e = resolve(tx, arg).unwrap_err().to_string();
            assert!(e.starts_with(msg), "{arg}: {e}");
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn ambiguous_prefix_is_refused() {
    let (_d, db) = db();
    // Find two digests sharing a 4-hex prefix.
    let mut seen = std::collections::HashMap::new();
    let (mut p, mut q) = (None, None);
    for i in 0u32.. {
        let d = desc(&i.to_le_bytes());
        if let Some(o) = seen.insert(d.digest.hex()[..4].to_owned(), d.clone()) {
            (p, q) = (Some(o), Some(d));
            break;
        }
    }
    let (p, q) = (p.unwrap(), q.unwrap());
    name_both(&db, &p, &q);
    let prefix = p.digest.hex()[..4].to_owned();
    let e = db.read(|tx| Ok(resolve(tx, &prefix))).unwrap().unwrap_err();
    assert!(matches!(e, ImageError::Ambiguous(_)), "{e}");
}

#[test]
fn rmi_untags_deletes_and_refuses_as_docker() {
    let (_d, db) = db();
    let a = desc(b"a");
    name_both(&db, &a, &a);
    let hex = a.digest.hex()[..12].to_owned();
    // By ID with two names: refused, nothing changes.
    let e = write(&db, |tx| remove(tx, &hex, false)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to delete {hex} (must be forced) - image is referenced in multiple repositories"
        )
    );
    assert_eq!(names(&db).len(), 2);
    // By name: untag only.
    let out = write(&db, |tx| remove(tx, "x", false)).unwrap();
    assert_eq!(out, vec![Removal::Untagged("x:latest".into())]);
    // A container uses the image: the last name is refused, then forced.
    db.write(|tx| {
        tx.insert_container(&ContainerRecord {
            id: "c".repeat(64),
            name: "c1".into(),
            image: "y:1".into(),
            snapshotter: "overlayfs".into(),
            snapshot_key: None,
            runtime: "runc".into(),
            created: std::time::SystemTime::now(),
            updated: std::time::SystemTime::now(),
            labels: Labels::new(),
        })
    })
    .unwrap();
    let e = write(&db, |tx| remove(tx, "y:1", false)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to delete y:1 (must be forced) - container cccccccccccc is using its referenced image {hex}"
        )
    );
    let out = write(&db, |tx| remove(tx, "y:1", true)).unwrap();
    assert_eq!(out, vec![Removal::Untagged("y:1".into())]);
    assert_eq!(names(&db), vec![dangling_name(&a.digest)]);
    // By ID, forced: the dangling image goes.
    let out = write(&db, |tx| remove(tx, &hex, true)).unwrap();
    assert_eq!(out, vec![Removal::Deleted(a.digest.clone())]);
    assert!(names(&db).is_empty());
}

#[test]
fn rmi_of_the_last_name_deletes_the_image() {
    let (_d, db) = db();
    let a = desc(b"a");
    db.write(|tx| set_image_name(tx, X, &a)).unwrap();
    let out = write(&db, |tx| remove(tx, "x", false)).unwrap();
    assert_eq!(
        out,
        vec![
            Removal::Untagged("x:latest".into()),
            Removal::Deleted(a.digest.clone())
        ]
    );
    assert!(matches!(
        write(&db, |tx| remove(tx, "x", false)),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn a_migrated_image_keeps_its_docker_id_under_every_name_and_only_there() {
    let (_d, db) = db();
    let (a, b) = (desc(b"a"), desc(b"b"));
    let docker_id = Digest::sha256_of(b"config");
    let label = Labels::from([(
        strata_types::labels::DOCKER_IMAGE_ID.to_owned(),
        docker_id.to_string(),
    )]);
    db.write(|tx| {
        set_image_name(tx, X, &a)?;
        tx.put_image(X, &a, &label)?;
        // A new name of the same target (`tag`) shows the same ID.
        let y = set_image_name(tx, Y, &a)?;
        assert_eq!(image_id(&y), docker_id);
        Ok(())
    })
    .unwrap();
    db.read(|tx| {
        // The Docker ID resolves, by prefix too; so does the target digest.
        for arg in [&docker_id.hex()[..12], a.digest.hex()] {
            assert_eq!(resolve(tx, arg).unwrap().target().digest, a.digest, "{arg}");
        }
        Ok(())
    })
    .unwrap();
    // A name moved to another target loses the old target's ID; the dangling record of the
    // old target keeps it.
    db.write(|tx| {
        set_image_name(tx, X, &b)?;
        set_image_name(tx, Y, &b)?;
        assert_eq!(image_id(&tx.image(X)?.unwrap()), b.digest);
        assert_eq!(image_id(&tx.image(Y)?.unwrap()), b.digest);
        let old = tx.image(&dangling_name(&a.digest))?.unwrap();
        assert_eq!(image_id(&old), docker_id);
        Ok(())
    })
    .unwrap();
}
