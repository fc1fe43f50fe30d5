#!/usr/bin/env python3
"""A deterministic Python job with the shape of the bug sluice exists for (standard library only).

A ThreadPoolExecutor processes N tasks; each task needs a storage "client".

  leaky_pool.py leak     every task builds a new client and keeps it in a global list (a per-call client cache that
                         is never emptied): memory grows by one client per task
  leaky_pool.py fixed    one client per worker thread in threading.local(), reused by every task: flat
  leaky_pool.py plateau  builds one big block once at start, then runs like `fixed`: a step, then flat

options: --tasks N (default 1600), --threads N (8), --task-ms MS (10; the run takes about tasks * task-ms / threads
= 2 s), --client-kib K (64), --block-mib M (200, plateau only). Used by tests/cli/watch.sh and for docs/ charts.
"""
import argparse
import concurrent.futures
import os
import sys
import threading
import time


class Client:
    """What a real storage client holds: some connection state and buffers that have been written to."""

    def __init__(self, ident, size):
        self.ident = ident
        self.headers = {"user-agent": "leaky-pool/1", "x-client": str(ident)}
        self.buf = bytearray(b"\x5a") * size  # every byte written, so every page is resident

    def get(self, task):
        self.buf[0:16] = ("GET /o/%08d" % task).encode()[:16].ljust(16)
        return self.buf[task % len(self.buf)] + self.ident


REGISTRY = []  # leak mode: every client ever made, never emptied
LOCAL = threading.local()
COUNT_LOCK = threading.Lock()
CLIENTS_MADE = 0


def new_client(size):
    global CLIENTS_MADE
    with COUNT_LOCK:
        CLIENTS_MADE += 1
        ident = CLIENTS_MADE
    return Client(ident, size)


def task_leak(task, args):
    client = new_client(args.client_kib * 1024)
    REGISTRY.append(client)
    time.sleep(args.task_ms / 1000)
    return client.get(task)


def task_fixed(task, args):
    client = getattr(LOCAL, "client", None)
    if client is None:
        client = LOCAL.client = new_client(args.client_kib * 1024)
    time.sleep(args.task_ms / 1000)
    return client.get(task)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["leak", "fixed", "plateau"])
    p.add_argument("--tasks", type=int, default=1600)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--task-ms", type=float, default=10)
    p.add_argument("--client-kib", type=int, default=64)
    p.add_argument("--block-mib", type=int, default=200)
    args = p.parse_args()

    block = None
    if args.mode == "plateau":
        block = bytearray(b"\x5a") * (args.block_mib << 20)
    work = task_leak if args.mode == "leak" else task_fixed
    checksum = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.threads) as pool:
        for value in pool.map(lambda t: work(t, args), range(args.tasks)):
            checksum += value
    if block is not None:
        checksum += block[-1]
    print("%s: %d tasks, %d clients, checksum %d" % (args.mode, args.tasks, CLIENTS_MADE, checksum))
    sys.stdout.flush()
    # Like the job that was OOM-killed, and like the C version: nothing is freed on the way out. A normal interpreter
    # exit would free the registry first, and a watcher would see the curve drop in the last tenth of a second.
    os._exit(0)


if __name__ == "__main__":
    main()
