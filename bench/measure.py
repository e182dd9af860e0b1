#!/usr/bin/env python3
"""Runs one command for the benchmark and prints a JSON line: wall seconds, peak RSS, status.

  measure.py [--drop-caches] [--wait-idle] [--stdin FILE] [--daemon PID]...
             [--record FILE SCENARIO SYSTEM RUN] -- CMD ARGS...

--drop-caches: sync and drop the page cache first (root only; otherwise an error), as every
  timed unpack or write must: extraction right after deleting a tree is 2-9x slower otherwise.
--wait-idle: wait (up to 30 s) until the CPUs are at least 90% idle over a quarter second,
  and (after the sync) until the disks are quiet: deleting the previous run's gigabyte on a
  filesystem mounted with `discard` keeps the disk busy for seconds after `rm` returns.
--daemon PID: the command is a client of the daemon PID (containerd, dockerd), which does the
  work: the peak RSS of PID and of its descendants is measured too (their high-water marks
  reset before the run through /proc/PID/clear_refs) and recorded as daemon_kib, their sum,
  beside daemon_rest_kib, what they held before the run. Without it a client's peak RSS
  (rss_kib) is the CLI's alone.
--record: append the result, labelled, to FILE (failures too, with their exit status and the
  end of stderr) and print one line for people instead (one process per timed run: the bench
  makes hundreds).
"""
import json, os, resource, subprocess, sys, time


def cpu_idle_fraction(interval=0.25):
    def sample():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return vals[3] + vals[4], sum(vals)  # idle + iowait, total
    i0, t0 = sample()
    time.sleep(interval)
    i1, t1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


def disk_busy_sectors(interval=0.25):
    def sample():
        total = 0
        with open("/proc/diskstats") as f:
            for line in f:
                p = line.split()
                if p[2].startswith(("loop", "ram")):
                    continue
                # sectors read + written + discarded (fields 6, 10, 17 of the 1-based layout)
                total += int(p[5]) + int(p[9]) + (int(p[16]) if len(p) > 16 else 0)
        return total
    a = sample()
    time.sleep(interval)
    return sample() - a


def descendants(pids):
    """PIDs and every live process below them."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peaks(pids):
    """Resets each process' peak RSS to its current RSS; returns their RSS now."""
    rest = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5\n")
        except OSError:
            continue
        rest += status_kib(pid, "VmRSS")
    return rest


def main():
    args = sys.argv[1:]
    drop = wait = False
    stdin = record = None
    daemons = []
    while args and args[0] != "--":
        a = args.pop(0)
        if a == "--drop-caches":
            drop = True
        elif a == "--wait-idle":
            wait = True
        elif a == "--stdin":
            stdin = args.pop(0)
        elif a == "--daemon":
            daemons.append(int(args.pop(0)))
        elif a == "--record":
            record = args[:4]
            del args[:4]
        else:
            sys.exit(f"measure.py: unknown option {a}")
    cmd = args[1:]
    if wait:
        deadline = time.time() + 30
        while cpu_idle_fraction() < 0.9 and time.time() < deadline:
            pass
    if drop:
        os.sync()
    if wait:
        deadline = time.time() + 30
        while disk_busy_sectors() > 1024 and time.time() < deadline:
            pass
    if drop:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    daemon_pids = descendants(daemons) if daemons else []
    daemon_rest = reset_peaks(daemon_pids)
    start = time.perf_counter()
    p = subprocess.run(cmd, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_kib": ru.ru_maxrss,
           "status": p.returncode}
    if daemons:
        # Processes started during the run and gone by now (a pull's short-lived helpers)
        # are not counted: only what was there before and still is.
        res["daemon_kib"] = sum(status_kib(pid, "VmHWM") for pid in daemon_pids)
        res["daemon_rest_kib"] = daemon_rest
    if p.returncode != 0:
        res["stderr"] = p.stderr.decode(errors="replace")[-2000:]
    if record:
        path, scenario, system, run = record
        res.update(scenario=scenario, system=system, run=int(run))
        with open(path, "a") as f:
            f.write(json.dumps(res) + "\n")
    if record and p.returncode == 0:
        print(f"  {scenario:<8} {system:<10} run {run}: {wall:.3f} s")
    else:
        print(json.dumps(res))
    sys.exit(0 if p.returncode == 0 else 1)


main()
