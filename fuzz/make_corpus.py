#!/usr/bin/env python3
"""Writes the seed corpus of the `load_archive` fuzz target: small archives `strata load`
reads (an OCI layout tar, a Docker legacy archive, compressed ones), the same cut short, and
hostile ones (paths out of the archive, digests that lie, sizes that lie, absurd JSON).

Deterministic (fixed mtimes, sorted entries): running it again rewrites the same bytes.
Usage: fuzz/make_corpus.py [DIR]  (default: fuzz/corpus/load_archive beside this script)
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus", "load_archive")


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def tar_of(entries):
    """entries: (name, bytes) or (name, bytes, dict of TarInfo attributes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            name, data = e[0], e[1]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            info.mode = 0o644
            for k, v in (e[2] if len(e) > 2 else {}).items():
                setattr(info, k, v)
            t.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def layer():
    return tar_of([("etc/", b"", {"type": tarfile.DIRTYPE, "mode": 0o755}),
                   ("etc/hello", b"hello from a fuzz seed\n")])


def config(diff_ids):
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()


def oci_layout(name="fuzz/seed:latest"):
    lay = layer()
    cfg = config([sha(lay)])
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(lay), "size": len(lay)}],
    }, sort_keys=True).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": sha(manifest), "size": len(manifest),
                       "annotations": {"io.containerd.image.name": "docker.io/" + name,
                                       "org.opencontainers.image.ref.name": "latest"}}],
    }, sort_keys=True).encode()
    blobs = [("blobs/sha256/" + sha(b)[7:], b) for b in (lay, cfg, manifest)]
    return blobs, index, (lay, cfg, manifest)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    blobs, index, (lay, cfg, manifest) = oci_layout()
    layout = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')] + blobs + [("index.json", index)]
    oci = tar_of(layout)
    write("oci-valid.tar", oci)
    write("oci-valid.tar.gz", gzip.compress(oci, mtime=0))
    write("oci-valid.tar.zst", subprocess.run(["zstd", "-q", "-c", "-3"], input=oci,
                                              stdout=subprocess.PIPE, check=True).stdout)

    legacy_manifest = json.dumps([{"Config": "config.json", "RepoTags": ["fuzz/legacy:1"],
                                   "Layers": ["layer/layer.tar"]}]).encode()
    legacy = tar_of([("config.json", cfg), ("layer/layer.tar", lay),
                     ("manifest.json", legacy_manifest)])
    write("docker-legacy.tar", legacy)
    # Both: what `docker save` of Docker 25+ writes.
    write("docker-and-oci.tar", tar_of(layout + [("manifest.json", json.dumps([{
        "Config": "blobs/sha256/" + sha(cfg)[7:], "RepoTags": ["fuzz/both:1"],
        "Layers": ["blobs/sha256/" + sha(lay)[7:]]}]).encode())]))

    # Cut short: inside a header, inside a blob, before the index.
    write("truncated-header.tar", oci[:700])
    write("truncated-blob.tar", oci[:len(oci) // 2])
    write("truncated-before-index.tar", oci[:oci.rfind(b"index.json") - 345])
    write("truncated.tar.gz", gzip.compress(oci, mtime=0)[:200])
    write("empty", b"")
    write("not-a-tar", b"this is not an archive\n" * 40)
    write("zstd-magic-garbage", b"\x28\xb5\x2f\xfd" + b"\xff" * 64)
    write("gzip-magic-garbage", b"\x1f\x8b\x08\x00" + b"\x00" * 64)

    # Hostile names and lies.
    write("hostile-paths.tar", tar_of([
        ("../../../../etc/passwd", b"root::0:0::/:/bin/sh\n"),
        ("/index.json", index),
        ("blobs/sha256/../../../escape", b"x"),
        ("blobs/sha256/" + "0" * 64, b"not what the name says"),
        ("./blobs//sha256/" + sha(lay)[7:], lay),
        ("index.json", index),
    ]))
    write("hostile-legacy-paths.tar", tar_of([
        ("config.json", cfg),
        ("manifest.json", json.dumps([{"Config": "../../../etc/shadow",
                                       "RepoTags": ["fuzz/evil:1", "not a name!"],
                                       "Layers": ["/etc/passwd", "../layer.tar", ""]}]).encode()),
    ]))
    write("digest-mismatch.tar", tar_of(
        [("blobs/sha256/" + sha(lay)[7:], lay + b"tampered")] + blobs[1:] + [("index.json", index)]))
    write("missing-blob.tar", tar_of(blobs[1:] + [("index.json", index)]))
    write("index-not-json.tar", tar_of(blobs + [("index.json", b"{\"manifests\": [")]))
    write("index-wrong-types.tar", tar_of(blobs + [("index.json", json.dumps({
        "schemaVersion": "two", "manifests": [{"digest": 7, "size": -1}]}).encode())]))
    write("index-deep-nesting.tar", tar_of([("index.json", b"[" * 4096 + b"]" * 4096)]))
    write("manifest-names-itself.tar", tar_of([("manifest.json", json.dumps([{
        "Config": "manifest.json", "Layers": ["manifest.json"]}]).encode())]))
    write("special-entries.tar", tar_of([
        ("index.json", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
        ("blobs/sha256/" + sha(lay)[7:], b"", {"type": tarfile.LNKTYPE,
                                                "linkname": "../../../etc/shadow"}),
        ("dev", b"", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}),
    ] + blobs[1:]))
    # A header that says the entry is far larger than the archive.
    big = bytearray(tar_of([("index.json", index)]))
    big[124:136] = b"77777777777\x00"
    big[148:156] = b" " * 8
    big[148:156] = b"%06o\x00 " % sum(big[:512])
    write("size-lies.tar", bytes(big))


if __name__ == "__main__":
    main()
