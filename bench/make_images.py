#!/usr/bin/env python3
"""Writes an OCI image layout holding N small images for the `df` bench scenario.

  make_images.py DIR N

Every image has the same base layer (a few hundred kB of files) and a top layer of its own
(one small file), so the store holds N images, N+1 layers, and one base shared N times, the
shape of a build farm's or a CI runner's image store. Named bench/img-<i>:latest.
"""
import gzip, hashlib, io, json, os, sys, tarfile


def blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", digest)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def layer(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            t.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()


def main():
    root, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    base_files = [("base/f%03d" % i, (b"base file %d\n" % i) * (50 + i * 10)) for i in range(100)]
    base, base_diff = layer(base_files)
    base_desc = dict(blob(root, base), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
    manifests = []
    for i in range(n):
        top, top_diff = layer([("id", b"image %d\n" % i)])
        top_desc = dict(blob(root, top), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "created": "2026-01-01T00:00:%02dZ" % (i % 60),
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [base_diff, top_diff]},
        }).encode()
        config_desc = dict(blob(root, config), mediaType="application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc, "layers": [base_desc, top_desc],
        }).encode()
        desc = dict(blob(root, manifest), mediaType="application/vnd.oci.image.manifest.v1+json")
        desc["annotations"] = {"org.opencontainers.image.ref.name": "bench/img-%d:latest" % i}
        manifests.append(desc)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": manifests}, f)


if __name__ == "__main__":
    main()
