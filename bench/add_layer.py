#!/usr/bin/env python3
"""Copies an OCI image layout and adds one layer to its (single) image, for the `incremental`
bench scenario.

  add_layer.py SRC_LAYOUT DEST_LAYOUT DIR PREFIX

DIR's files become one gzip layer under PREFIX (e.g. opt/app) on top of SRC's image; the
config gets the layer's diffID and the index points at the new manifest. Written here rather
than with `umoci insert`, whose Debian build wrote a truncated layer on these machines.
"""
import gzip, hashlib, io, json, os, shutil, sys, tarfile


def put(root, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest


def read(root, digest):
    with open(os.path.join(root, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return f.read()


def main():
    src, dest, tree, prefix = sys.argv[1:5]
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(tree, arcname=prefix)
    tar = raw.getvalue()
    blob = gzip.compress(tar, compresslevel=6, mtime=0)
    index = json.load(open(os.path.join(dest, "index.json")))
    entry = index["manifests"][0]
    manifest = json.loads(read(dest, entry["digest"]))
    config = json.loads(read(dest, manifest["config"]["digest"]))
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
    config.setdefault("history", []).append({"created_by": "bench/add_layer.py " + tree})
    config_bytes = json.dumps(config).encode()
    manifest["config"]["digest"] = put(dest, config_bytes)
    manifest["config"]["size"] = len(config_bytes)
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                               "digest": put(dest, blob), "size": len(blob)})
    manifest_bytes = json.dumps(manifest).encode()
    entry["digest"] = put(dest, manifest_bytes)
    entry["size"] = len(manifest_bytes)
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(index, f)


main()
