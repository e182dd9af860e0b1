use std::os::unix::fs::symlink;

use super::*;

fn vol(name: Option<&str>, target: &str, read_only: bool, no_copy: bool) -> MountSpec {
    MountSpec::Volume {
        name: name.map(str::to_owned),
        target: target.into(),
        read_only,
        no_copy,
    }
}

fn bind(source: &str, target: &str, read_only: bool, create: bool) -> MountSpec {
    MountSpec::Bind {
        source: source.into(),
        target: target.into(),
        read_only,
        create,
    }
}

#[test]
fn volume_flags_as_docker() {
    let ok = [
        ("/data", vol(None, "/data", false, false)),
        ("/data:ro", vol(None, "/data", true, false)),
        (
            "cache:/var/cache",
            vol(Some("cache"), "/var/cache", false, false),
        ),
        (
            "cache:/var/cache:ro,nocopy",
            vol(Some("cache"), "/var/cache", true, true),
        ),
        ("/srv:/srv", bind("/srv", "/srv", false, true)),
        ("/srv:/srv:ro,z", bind("/srv", "/srv", true, true)),
    ];
    for (arg, want) in ok {
        assert_eq!(parse_volume_flag(arg).unwrap(), want, "{arg}");
    }
    for bad in [
        "data",
        "cache:relative",
        "a:/b:/c:d",
        "/x:/y:bogus",
        "-bad:/x",
    ] {
        assert!(parse_volume_flag(bad).is_err(), "{bad}");
    }
}

#[test]
fn mount_flags_as_docker() {
    assert_eq!(
        parse_mount_flag("type=volume,source=cache,target=/c,readonly").unwrap(),
        vol(Some("cache"), "/c", true, false)
    );
    assert_eq!(
        parse_mount_flag("type=volume,dst=/c,volume-nocopy").unwrap(),
        vol(None, "/c", false, true)
    );
    assert_eq!(
        parse_mount_flag("type=bind,src=/srv,target=/srv,ro=true").unwrap(),
        bind("/srv", "/srv", true, false)
    );
    for bad in [
        "type=bind,target=/x",
        "type=volume,source=x",
        "type=tmpfs,target=/x",
        "type=bind,source=rel,target=/x",
        "type=volume,target=/x,bogus=1",
    ] {
        assert!(parse_mount_flag(bad).is_err(), "{bad}");
    }
}

#[test]
fn paths_resolve_inside_the_root() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("real/dir")).unwrap();
    symlink("/real", root.join("abs")).unwrap();
    symlink("../../../../real", root.join("up")).unwrap();
    symlink("/", root.join("top")).unwrap();
    symlink("loop2", root.join("loop1")).unwrap();
    symlink("loop1", root.join("loop2")).unwrap();
    assert_eq!(
        resolve_in_root(&root, "/abs/dir"),
        Some(root.join("real/dir"))
    );
    assert_eq!(
        resolve_in_root(&root, "/up/dir"),
        Some(root.join("real/dir"))
    );
    assert_eq!(resolve_in_root(&root, "/top/etc"), None);
    assert_eq!(resolve_in_root(&root, "/top/real"), Some(root.join("real")));
    assert_eq!(
        resolve_in_root(&root, "/../../real"),
        Some(root.join("real"))
    );
    assert_eq!(resolve_in_root(&root, "/loop1"), None);
}

#[test]
fn copy_up_keeps_content_and_never_follows_links_out() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("app/sub")).unwrap();
    fs::write(root.join("app/sub/f"), b"data").unwrap();
    symlink("/etc/passwd", root.join("app/pw")).unwrap();
    // A hostile image: its /cfg points at the host's /etc.
    symlink("/etc", root.join("cfg")).unwrap();
    let data = t.path().join("vol");
    fs::create_dir(&data).unwrap();
    copy_image_content(&root, "/app", &data, 0).unwrap();
    assert_eq!(fs::read(data.join("sub/f")).unwrap(), b"data");
    assert_eq!(
        fs::read_link(data.join("pw")).unwrap(),
        Path::new("/etc/passwd")
    );
    let data2 = t.path().join("vol2");
    fs::create_dir(&data2).unwrap();
    copy_image_content(&root, "/cfg", &data2, 0).unwrap();
    assert_eq!(
        fs::read_dir(&data2).unwrap().count(),
        0,
        "copied the host's /etc"
    );
}
