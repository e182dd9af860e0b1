//! A small real root filesystem from Debian's `busybox-static`: enough to run containers
//! (`sh`, `echo`, `printf`, `sleep`, `cat`, `id`, ...), with `/etc/passwd` and `/etc/group`
//! naming root, a `nobody` and an `app` user (1000:1000, also in group `staff`).

use crate::LayerBuilder;

/// Where Debian's busybox-static puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

const APPLETS: &[&str] = &[
    "sh", "echo", "printf", "sleep", "cat", "id", "true", "false", "ls", "rm", "mkdir", "env",
    "hostname", "touch", "head", "dd", "wc", "stat", "pwd", "kill", "ps", "grep", "sync",
];

/// The busybox root filesystem as one layer, or `None` (after saying why the test skips, or
/// failing under `STRATA_TEST_REQUIRE_ROOT=1`) when busybox-static is not installed.
pub fn busybox_layer() -> Option<LayerBuilder> {
    if !crate::require_tool("busybox") {
        return None;
    }
    let bin = match std::fs::read(BUSYBOX) {
        Ok(b) => b,
        Err(e) => {
            crate::skip(&format!(
                "cannot read {BUSYBOX}: {e}; install busybox-static"
            ));
            return None;
        }
    };
    let mut layer = LayerBuilder::new()
        .dir("bin", 0o755)
        .dir("etc", 0o755)
        .dir("root", 0o700)
        .dir("tmp", 0o1777)
        .file("bin/busybox", &bin, 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        )
        .file(
            "etc/group",
            b"root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n",
            0o644,
        );
    for applet in APPLETS {
        layer = layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    Some(layer)
}
