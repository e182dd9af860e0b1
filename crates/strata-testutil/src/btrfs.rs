//! A btrfs filesystem in a sparse file, loop-mounted, for the btrfs snapshotter's tests.
//! Needs root and `mkfs.btrfs` (Debian's btrfs-progs): gate with `require_root` and
//! `require_tool("mkfs.btrfs")`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A mounted loopback btrfs; unmounted (lazily) on drop. `mount -o loop` sets autoclear, so
/// the loop device goes with the last unmount.
#[derive(Debug)]
pub struct LoopBtrfs {
    mountpoint: PathBuf,
}

impl LoopBtrfs {
    /// Creates `<dir>/btrfs.img` of `size` bytes (sparse), formats it and mounts it on
    /// `<dir>/mnt`.
    pub fn create(dir: &Path, size: u64) -> anyhow::Result<LoopBtrfs> {
        let image = dir.join("btrfs.img");
        fs::File::create(&image)
            .and_then(|f| f.set_len(size))
            .with_context(|| format!("create {}", image.display()))?;
        let mkfs =
            crate::find_tool("mkfs.btrfs").context("mkfs.btrfs not found (install btrfs-progs)")?;
        let out = Command::new(mkfs)
            .args(["-q", "-f"])
            .arg(&image)
            .output()
            .context("run mkfs.btrfs")?;
        if !out.status.success() {
            bail!("mkfs.btrfs: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mountpoint = dir.join("mnt");
        fs::create_dir_all(&mountpoint)?;
        let out = Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(&image)
            .arg(&mountpoint)
            .output()?;
        if !out.status.success() {
            bail!(
                "mount -o loop {}: {}",
                image.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(LoopBtrfs { mountpoint })
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        match Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "umount {}: {}",
                self.mountpoint.display(),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("umount {}: {e}", self.mountpoint.display()),
        }
    }
}
