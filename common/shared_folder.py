"""Every process of a multi-machine job must see one output folder: the trial's record, a pretraining run's
checkpoints and resume all assume that rank 0's files are the files of every node.

`check_shared_folder(folder)`, called by every rank before training: rank 0 writes a token (a random nonce
in a file named after it) in the folder, a barrier, every rank reads it back, and the ranks agree (one
all-reduce) on who did not see it. If any did not, every rank raises the same SharedFolderError, which names
the ranks and their hosts. One process (no process group): nothing to check."""
from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path

import torch.distributed as dist

from mocobench.common.agreement import distributed, ranks_with
from mocobench.common.errors import UsageError

TOKEN_PREFIX = ".shared-folder-check-"


class SharedFolderError(UsageError):
    """Some ranks of a job do not see the folder rank 0 writes to."""


def _sees(path: Path, nonce: str, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s  # a network file system may show a new file a moment later
    while True:
        try:
            if path.read_text() == nonce:
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def check_shared_folder(folder: str | Path, *, device=None, wait_s: float = 5.0, what: str = "output folder") -> None:
    """Refuse (on every rank, with one line) when a rank does not see the token rank 0 wrote in `folder`."""
    if not distributed():
        return
    folder, rank = Path(folder), dist.get_rank()
    box = [secrets.token_hex(16) if rank == 0 else None]
    dist.broadcast_object_list(box, src=0, device=device)
    nonce = box[0]
    path = folder / f"{TOKEN_PREFIX}{nonce}"
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(nonce)
    dist.barrier()
    missing = ranks_with(not _sees(path, nonce, wait_s), device=device)
    hosts: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(hosts, socket.gethostname())
    dist.barrier()  # every rank has read it before rank 0 removes it
    if rank == 0:
        path.unlink(missing_ok=True)
    if missing:
        where = ", ".join(f"rank {r} on {hosts[r]}" for r in missing)
        raise SharedFolderError(f"{where} cannot see the file rank 0 (on {hosts[0]}) wrote in the {what} {folder}: "
                                f"a multi-machine run needs its {what} on a file system shared by every node, at "
                                f"the same path (e.g. NFS or Lustre, not a node's local disk); every rank stops "
                                f"here (docs/cluster-and-ddp.md)")
