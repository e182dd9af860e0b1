use std::io::Read;
use std::os::unix::fs::MetadataExt;

use super::*;

type R = Result<(), Box<dyn std::error::Error>>;

/// Makes `depth` nested directories `d` under `top` (a path far past PATH_MAX) with a file
/// `f` at the bottom; returns the relative path of that file.
fn deep_tree(top: &Path, depth: usize) -> io::Result<Vec<u8>> {
    let mut dir = open_dir(top)?;
    let mut rel = Vec::new();
    for _ in 0..depth {
        rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).map_err(errno)?;
        dir = open_subdir(dir.as_fd(), b"d")?;
        rel.extend_from_slice(b"d/");
    }
    let f = rustix::fs::openat(
        &dir,
        "f",
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(errno)?;
    rustix::io::write(&f, b"bottom").map_err(errno)?;
    rel.extend_from_slice(b"f");
    Ok(rel)
}

#[test]
fn paths_past_path_max_are_walked_read_and_removed() -> R {
    let t = tempfile::tempdir()?;
    let top = t.path().join("tree");
    std::fs::create_dir(&top)?;
    let rel = deep_tree(&top, 2100)?;
    assert!(rel.len() > 4096);
    assert!(std::fs::symlink_metadata(top.join(std::str::from_utf8(&rel)?)).is_err());

    let fd = open_dir(&top)?;
    let (mut dirs, mut files) = (0, 0);
    walk(fd.as_fd(), |st| {
        match file_type(st) {
            FileType::Directory => dirs += 1,
            _ => files += 1,
        }
        true
    })?;
    assert_eq!((dirs, files), (2100, 1));

    let e = entry_beneath(fd.as_fd(), &rel)?.ok_or("bottom file not found")?;
    let mut s = String::new();
    e.open_file()?.read_to_string(&mut s)?;
    assert_eq!(s, "bottom");
    assert!(entry_beneath(fd.as_fd(), b"d/d/missing")?.is_none());

    remove_tree(&top)?;
    assert!(!top.exists());
    remove_tree(&top)?;
    Ok(())
}

#[test]
fn nothing_outside_is_followed_or_removed() -> R {
    let t = tempfile::tempdir()?;
    let outside = t.path().join("outside");
    std::fs::create_dir_all(outside.join("sub"))?;
    std::fs::write(outside.join("sub/keep"), b"host")?;
    let top = t.path().join("tree");
    std::fs::create_dir_all(top.join("a/b"))?;
    std::fs::write(top.join("a/b/f"), b"x")?;
    std::os::unix::fs::symlink(&outside, top.join("a/link"))?;
    std::os::unix::fs::symlink(&outside, top.join("dirlink"))?;

    let fd = open_dir(&top)?;
    // A symlink on the way is not walked through; a final one is the link itself.
    assert!(entry_beneath(fd.as_fd(), b"dirlink/sub/keep").is_err());
    let link = entry_beneath(fd.as_fd(), b"a/link")?.ok_or("link missing")?;
    assert_eq!(link.file_type(), FileType::Symlink);
    assert_eq!(link.read_link()?, outside.as_os_str().as_encoded_bytes());
    assert!(link.open_file().is_err());
    let mut seen = 0;
    walk(fd.as_fd(), |_| {
        seen += 1;
        true
    })?;
    assert_eq!(seen, 5);

    remove_tree(&top)?;
    assert!(!top.exists());
    assert_eq!(std::fs::read(outside.join("sub/keep"))?, b"host");
    Ok(())
}

/// The window a live container can use: a directory is listed, then swapped for a symlink to
/// the host before it is opened. The entry opened is the symlink, and nothing of the host
/// is ever read through it.
#[test]
fn an_entry_swapped_for_a_symlink_after_listing_is_the_symlink() -> R {
    let t = tempfile::tempdir()?;
    let host = t.path().join("host");
    std::fs::create_dir(&host)?;
    std::fs::write(host.join("secret"), b"host secret")?;
    let top = t.path().join("rootfs");
    std::fs::create_dir_all(top.join("etc"))?;
    std::fs::write(top.join("etc/secret"), b"container")?;

    let fd = open_dir(&top)?;
    let listed = list(fd.as_fd())?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1, FileType::Directory);
    // The swap, between the listing and the open.
    std::fs::rename(top.join("etc"), top.join("etc.old"))?;
    std::os::unix::fs::symlink(&host, top.join("etc"))?;

    let e = Entry::open(fd.as_fd(), b"etc")?.ok_or("etc missing")?;
    assert_eq!(e.file_type(), FileType::Symlink);
    assert!(e.open_dir().is_err());
    assert!(open_subdir(fd.as_fd(), b"etc").is_err());
    // An entry opened before the swap keeps reading the container's directory.
    std::fs::remove_file(top.join("etc"))?;
    std::fs::rename(top.join("etc.old"), top.join("etc"))?;
    let before = Entry::open(fd.as_fd(), b"etc")?.ok_or("etc missing")?;
    std::fs::rename(top.join("etc"), top.join("etc.old"))?;
    std::os::unix::fs::symlink(&host, top.join("etc"))?;
    let dir = before.open_dir()?;
    let secret = Entry::open(dir.as_fd(), b"secret")?.ok_or("secret missing")?;
    let mut s = String::new();
    secret.open_file()?.read_to_string(&mut s)?;
    assert_eq!(s, "container");
    assert_eq!(
        secret.stat.st_ino,
        std::fs::metadata(top.join("etc.old/secret"))?.ino()
    );
    Ok(())
}

#[test]
fn missing_parents_and_files_are_not_errors() -> R {
    let t = tempfile::tempdir()?;
    remove_tree(&t.path().join("no/such/dir"))?;
    std::fs::write(t.path().join("file"), b"x")?;
    remove_tree(&t.path().join("file"))?;
    assert!(!t.path().join("file").exists());
    assert!(remove_tree(Path::new("/")).is_err());
    Ok(())
}
